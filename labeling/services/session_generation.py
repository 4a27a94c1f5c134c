"""The worker's side of a conversation turn: make the alternatives of the turns waiting for them.

A task takes its turn and the other turns of its template waiting at that moment (up to
``PREFLAB_INTERACTIVE_BATCH``), so several trainers' turns share one model batch, with one shared
prefill per prompt. The turns' statuses move only in ``labeling.services.sessions``.
"""

from __future__ import annotations

from django.conf import settings

from comparisons.models import Candidate
from labeling.models import Turn
from labeling.services.sessions import turn_alternatives_store, turn_fail, turns_claim
from model_runner.backends.base import BackendError
from model_runner.services.interactive import SampleRequest, generation_samples_make

#: Candidates of one assistant turn take sample indices turn.pk * SAMPLE_STRIDE + j (j < K <= 9),
#: so a turn's alternatives never collide with another turn's on a shared prompt, and a retry
#: asks for the very same indices (writing nothing twice).
SAMPLE_STRIDE = 16


def turn_sample_indices(turn: Turn, count: int) -> list[int]:
    """The sample indices of a turn's ``count`` alternatives."""
    return [turn.pk * SAMPLE_STRIDE + j for j in range(count)]


def turns_generate(*, turn_id: int) -> int:
    """Make the alternatives of this turn (and of the template's other waiting turns); returns how
    many turns were answered. A turn already taken or settled returns 0. Alternative ``j`` of a
    turn comes from the template's ``j % n``-th generator (by id), so K alternatives spread over
    several models. A model that cannot load, or fails the batch, fails its turns with the reason
    (the trainer may retry); a prompt the model refuses fails that turn only."""
    turns = turns_claim(turn_id=turn_id, limit=settings.PREFLAB_INTERACTIVE_BATCH)
    if not turns:
        return 0
    template = turns[0].session.queue.template
    generators = list(template.generators.order_by("id"))
    k = template.alternatives
    slots = {t.pk: turn_sample_indices(t, k) for t in turns}
    made: dict[tuple[int, int], Candidate] = {}
    failed: dict[int, str] = {}
    generation_ms = 0
    for g, generator in enumerate(generators):
        requests = [
            SampleRequest(
                prompt=t.prompt,
                sample_indices=[i for j, i in enumerate(slots[t.pk]) if j % len(generators) == g],
            )
            for t in turns
            if t.prompt is not None
        ]
        requests = [r for r in requests if r.sample_indices]
        if not requests:
            continue
        try:
            result = generation_samples_make(
                generator=generator, requests=requests, sampling=template.sampling
            )
        except BackendError as exc:
            failed.update((t.pk, str(exc)) for t in turns)
            break
        except Exception as exc:
            # Say why on the turns (they would sit GENERATING until stale), then let Celery see it.
            for t in turns:
                turn_fail(turn=t, reason=f"{type(exc).__name__}: {exc}")
            raise
        generation_ms += result.generation_ms
        made.update(result.candidates)
        for t in turns:
            if t.prompt_id in result.errors:
                failed.setdefault(t.pk, result.errors[t.prompt_id])
    answered = 0
    for t in turns:
        if t.pk in failed:
            turn_fail(turn=t, reason=failed[t.pk])
            continue
        candidates = [made[(t.prompt.pk, i)] for i in slots[t.pk]] if t.prompt is not None else []
        if not candidates:
            turn_fail(turn=t, reason="the turn has no conversation to answer")
            continue
        turn_alternatives_store(turn=t, candidates=candidates, generation_ms=generation_ms)
        answered += 1
    return answered
