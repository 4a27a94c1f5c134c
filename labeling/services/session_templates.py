"""Conversation templates: a queue of kind ``conversation`` and what its sessions are."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction

from comparisons.models import Prompt
from labeling.audit import audit_record
from labeling.errors import ApplicationError, Conflict, column_check
from labeling.models import Queue, Rubric, SessionSeed, SessionTemplate, User
from labeling.models.sessions import MAX_ALTERNATIVES
from model_runner.backends.base import SamplingError, sampling_validate
from model_runner.models import Generator


def session_template_create(
    *,
    name: str,
    rubric: Rubric,
    generators: Sequence[Generator],
    alternatives: int | None = None,
    max_turns: int = 10,
    system_prompt: str = "",
    sampling: dict[str, Any] | None = None,
    mode: str = SessionTemplate.Mode.CHAT,
    members: Iterable[User] = (),
    guidelines: str = "",
    seeds: Iterable[Prompt] = (),
    overlap: int = 1,
    priority: int = 0,
    lease_seconds: int | None = None,
    review_queue: Queue | None = None,
) -> Queue:
    """A conversation queue and its template, all or nothing. ``seeds`` are openings sessions
    start from (each by at most ``overlap`` trainers); without them the trainer writes the opening.

    ``alternatives`` defaults to 4 for chat and 1 for red-team templates. A red-team template's
    queue is marked disturbing, and its claimed successes go to ``review_queue`` (a queue of kind
    ``redteam``), or else to a new one named "<name> review" (same rubric, disturbing)."""
    if alternatives is None:
        alternatives = 1 if mode == SessionTemplate.Mode.REDTEAM else 4
    if Queue.objects.filter(name=name).exists():
        raise Conflict(f'name: a queue named "{name}" exists', field="name")
    column_check(Queue._meta.get_field("name"), name, name="name")
    if mode not in SessionTemplate.Mode.values:
        raise ApplicationError(f"mode: must be one of {', '.join(SessionTemplate.Mode.values)}", field="mode")
    if (
        isinstance(alternatives, bool)
        or not isinstance(alternatives, int)
        or not 1 <= alternatives <= MAX_ALTERNATIVES
    ):
        raise ApplicationError(
            f"alternatives: must be a whole number from 1 to {MAX_ALTERNATIVES}", field="alternatives"
        )
    column_check(SessionTemplate._meta.get_field("max_turns"), max_turns, name="max_turns", low=1)
    column_check(Queue._meta.get_field("overlap"), overlap, name="overlap", low=1, high=50)
    column_check(Queue._meta.get_field("priority"), priority, name="priority")
    if lease_seconds is not None:
        column_check(Queue._meta.get_field("lease_seconds"), lease_seconds, name="lease_seconds", low=30)
    generators = list(generators)
    if not generators:
        raise ApplicationError("generators: name at least one model to talk to", field="generators")
    if len({g.pk for g in generators}) != len(generators):
        raise ApplicationError("generators: each model once", field="generators")
    try:
        sampling = sampling_validate(sampling)
    except SamplingError as exc:
        raise ApplicationError(f"sampling.{exc}", field="sampling")
    redteam = mode == SessionTemplate.Mode.REDTEAM
    if review_queue is not None and not redteam:
        raise ApplicationError("review_queue: only a red-team template has one", field="review_queue")
    if review_queue is not None and review_queue.kind != Queue.Kind.REDTEAM:
        raise ApplicationError(
            f"review_queue: '{review_queue.name}' is not a queue of kind redteam", field="review_queue"
        )
    review_name = f"{name} review"
    if redteam and review_queue is None:
        if Queue.objects.filter(name=review_name).exists():
            raise Conflict(
                f'review_queue: a queue named "{review_name}" exists; name it as the review queue '
                "or pick another name",
                field="review_queue",
            )
        column_check(Queue._meta.get_field("name"), review_name, name="name")
    seed_prompts = list(dict.fromkeys(seeds))
    with transaction.atomic():
        if redteam and review_queue is None:
            review_queue = Queue.objects.create(
                name=review_name, kind=Queue.Kind.REDTEAM, rubric=rubric, disturbing=True
            )
            audit_record(action="queue.create", target=review_queue, changes={"kind": Queue.Kind.REDTEAM})
        queue = Queue.objects.create(
            name=name,
            kind=Queue.Kind.CONVERSATION,
            rubric=rubric,
            overlap=overlap,
            priority=priority,
            guidelines=guidelines,
            lease_seconds=lease_seconds or Queue._meta.get_field("lease_seconds").get_default(),
            disturbing=redteam,
        )
        template = SessionTemplate.objects.create(
            queue=queue,
            mode=mode,
            alternatives=alternatives,
            max_turns=max_turns,
            system_prompt=system_prompt,
            sampling=sampling,
            review_queue=review_queue,
        )
        template.generators.set(generators)
        queue.members.add(*members)
        SessionSeed.objects.bulk_create([SessionSeed(queue=queue, prompt=p) for p in seed_prompts])
        audit_record(action="session_template.create", target=queue, changes={"alternatives": alternatives})
    return queue
