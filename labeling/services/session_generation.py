"""The worker's side of a conversation turn: make the alternatives of the turns waiting for them.

A task takes its turn and the other turns of its template waiting at that moment (up to
``PREFLAB_INTERACTIVE_BATCH``), so several trainers' turns share one model batch, with one shared
prefill per prompt. Before it takes them it waits a moment (``PREFLAB_INTERACTIVE_GATHER_MS``) for
the template's other trainers who are talking right now, so that turns sent together go together.
The turns' statuses move only in ``labeling.services.sessions``; a starting worker asks again
for the turns left waiting (``turns_resume_all``).
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from comparisons.models import Candidate
from labeling.models import Session, Turn
from labeling.services import sessions
from labeling.services.sessions import turn_alternatives_store, turn_fail, turns_claim
from model_runner.backends.base import BackendError
from model_runner.models import Generator
from model_runner.services.interactive import SampleRequest, generation_samples_make

#: Candidates of one assistant turn take sample indices turn.pk * SAMPLE_STRIDE + j (j < K <= 9),
#: so a turn's alternatives never collide with another turn's on a shared prompt, and a retry
#: asks for the very same indices (writing nothing twice).
SAMPLE_STRIDE = 16
#: A session counts as talking right now when it asked for a model turn this recently.
TALKING_SECONDS = 30


def turn_sample_indices(turn: Turn, count: int) -> list[int]:
    """The sample indices of a turn's ``count`` alternatives."""
    return [turn.pk * SAMPLE_STRIDE + j for j in range(count)]


def turns_generate(*, turn_id: int, gather: bool = True) -> int:
    """Make the alternatives of this turn (and of the template's other waiting turns); returns how
    many turns were answered. A turn already taken or settled returns 0. Alternative ``j`` of a
    turn comes from the template's ``j % n``-th generator (by id), so K alternatives spread over
    several models; a red-team session's turns come from its target alone. A model that cannot load, or fails the batch, fails its turns with the reason
    (the trainer may retry); a prompt the model refuses fails that turn only. ``gather``: first wait
    for the template's other talking trainers (``_gather``); pointless when run inside a request."""
    if gather:
        _gather(turn_id)
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
            SampleRequest(prompt=t.prompt, sample_indices=_indices_of(t, slots[t.pk], generators, g))
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


def _indices_of(turn: Turn, slots: list[int], generators: list[Generator], g: int) -> list[int]:
    """The sample indices of ``turn`` that generator ``g`` makes: every one for a red-team
    session's target (the only model it talks to), else alternative ``j`` when ``j % n == g``."""
    target = turn.session.target_id
    if target is not None:
        return slots if generators[g].pk == target else []
    return [i for j, i in enumerate(slots) if j % len(generators) == g]


def _gather(turn_id: int) -> None:
    """Wait, at most ``PREFLAB_INTERACTIVE_GATHER_MS``, until every other session of the turn's
    template that is talking right now (active, asked for a turn in the last ``TALKING_SECONDS``,
    and not being answered) has its next turn waiting too. Without it, trainers who send at nearly
    the same moment take turns behind each other's batches (measured: each turn then waits a
    whole batch). A lone trainer, and a turn that is not waiting, go at once."""
    deadline = time.monotonic() + settings.PREFLAB_INTERACTIVE_GATHER_MS / 1000
    queue_id = (
        Turn.objects.filter(pk=turn_id, status=Turn.Status.PENDING, requested_at__isnull=False)
        .values_list("session__queue_id", flat=True)
        .first()
    )
    while queue_id is not None and time.monotonic() < deadline:
        latest = dict(  # each talking session's latest model turn: its status
            Turn.objects.filter(
                session__queue_id=queue_id,
                session__status=Session.Status.ACTIVE,
                role=Turn.Role.ASSISTANT,
                abandoned=False,
                requested_at__gte=timezone.now() - timedelta(seconds=TALKING_SECONDS),
            )
            .order_by("requested_at", "id")
            .values_list("session_id", "status")
        )
        if all(status in (Turn.Status.PENDING, Turn.Status.GENERATING) for status in latest.values()):
            return
        time.sleep(0.02)


def turns_resume_all() -> int:
    """Enqueue again every pending turn, and every generating turn whose worker has gone quiet: at
    once if it has, else for the moment it will have (a worker that died just before this one
    started leaves its turn GENERATING, and a filesystem broker forgets its message). A worker that
    starts calls this; a turn still being made elsewhere is claimed by one worker only."""
    now, stale = timezone.now(), timedelta(seconds=settings.PREFLAB_TURN_STALE_SECONDS)
    waiting = Turn.objects.filter(
        abandoned=False,
        role=Turn.Role.ASSISTANT,
        requested_at__isnull=False,
        session__status=Session.Status.ACTIVE,
    )
    delays = {
        pk: 0.0
        if status == Turn.Status.PENDING or since is None
        else (since + stale - now).total_seconds() + 1
        for pk, status, since in waiting.filter(
            status__in=[Turn.Status.PENDING, Turn.Status.GENERATING]
        ).values_list("pk", "status", "claimed_at")
    }
    transaction.on_commit(lambda: sessions._enqueue(list(delays), delays))
    return len(delays)
