"""Safe replies ranked by raters: the second way a confirmed attack gets the ``chosen`` reply of its
training pair (the first is a reviewer's or red-teamer's written ``ideal_reply``).

``attack_safe_replies_request`` takes the confirmed training-side attacks with a harmful outcome,
no written ideal reply and no request yet (``attacks_needing_safe_replies``), and starts two
ordinary things over their prompts:

- a generation job (``model_runner.services.jobs.generation_job_create``): the prompts x the
  generator x K samples, on the ``gpu`` queue;
- a ranking queue (``queue_create_with_items``: kind ``ranking`` K-way, or ``pairwise`` for K = 2),
  marked disturbing, empty at first (the prompts have only the harmful reply yet).

The candidates come after the queue, so ``attack_safe_replies_build`` (Celery beat, every minute:
``labeling.tasks.redteam_safe_replies_build_task``) adds the items of every request whose job has
finished: the prompts' K-way sets of the generator's candidates, built as any queue builds items
added later (``comparisons_build`` with the queue's own pairing, dedupe and interleave, then
``queue_add_comparisons``). It is idempotent: items that exist are left as they are, and a
prompt that already has an item is not built again. A prompt whose candidates hold fewer than K
different texts gets no item (as in any queue build). Raters then rank the candidates like any
ranking task, and the export takes the best-ranked refusal (``export.selectors.redteam``).

The request is recorded as one audit event (``labeling.selectors.redteam_safe_replies``), written
in the same transaction as the job and the queue, so a prompt is never asked for twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Max

from comparisons.models import Candidate, Prompt
from comparisons.services import comparisons_build
from labeling.audit import audit_record
from labeling.errors import ApplicationError
from labeling.models import Attack, Queue, Rubric, User
from labeling.selectors.redteam_safe_replies import (
    SAFE_REPLIES_ACTION,
    attacks_needing_safe_replies,
    safe_replies_requests,
)
from labeling.services.attacks import harm_category_check
from labeling.services.queue_admin import queue_update_settings
from labeling.services.queues import queue_add_comparisons, queue_create_with_items
from model_runner.models import GenerationJob, Generator
from model_runner.services.job_status import FINISHED
from model_runner.services.jobs import MAX_SAMPLES_PER_PROMPT, generation_job_create

MIN_SAMPLES = 2
MAX_SAMPLES = 9


@dataclass(frozen=True)
class SafeRepliesRequested:
    """What a request started: the generation ``job``, the ranking ``queue``, and the ``attacks``
    whose prompts they cover."""

    job: GenerationJob
    queue: Queue
    attacks: list[Attack]


def _samples_clean(samples: Any) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or not MIN_SAMPLES <= samples <= MAX_SAMPLES:
        raise ApplicationError(
            f"samples: K must be a whole number from {MIN_SAMPLES} to {MAX_SAMPLES}", field="samples"
        )
    return samples


def attack_safe_replies_request(
    *,
    generator: Generator,
    samples: Any = 4,
    queue_name: str,
    rubric: Rubric,
    members: Iterable[User] = (),
    category: str | None = None,
    created_by: Any = None,
) -> SafeRepliesRequested:
    """Start K fresh candidates and a ranking queue for the attacks that need a safe reply.

    ``samples`` (K, 2..9) is the number of fresh candidates per prompt and the size of each ranked
    set. The generator's own earlier candidates of a prompt (when it is the attacked model, its
    harmful reply) hold sample indices the job would skip, so the job asks for K more than the
    most any prompt has, and every prompt gets at least K fresh ones. All or nothing: the job, the
    queue and the request's audit event commit together. Raises ApplicationError naming
    ``samples``, ``category``, ``generators`` or a queue setting on bad input, and 409 when no
    attack needs a safe reply (every one has a written reply or a request already).
    """
    samples = _samples_clean(samples)
    if category:
        harm_category_check(category)
    with transaction.atomic():
        # Lock the candidates so two requests at once cannot both take the same prompts.
        wanted = [a.pk for a in attacks_needing_safe_replies(category=category or None)]
        list(Attack.objects.select_for_update().filter(pk__in=wanted).order_by("id").values_list("id"))
        attacks = attacks_needing_safe_replies(category=category or None)
        if not attacks:
            raise ApplicationError(
                "attacks: no confirmed training-side attack with a harmful outcome needs a safe reply "
                "(each has a written ideal reply, or fresh candidates were requested already)",
                field="attacks",
                status_code=409,
            )
        prompts = list({a.prompt_id: a.prompt for a in attacks}.values())
        held = (
            Candidate.objects.filter(prompt__in=prompts, generator=generator)
            .values("prompt_id")
            .annotate(n=Count("id"))
            .aggregate(most=Max("n"))["most"]
            or 0
        )
        if samples + held > MAX_SAMPLES_PER_PROMPT:
            raise ApplicationError(
                f"samples: {generator.name!r} already holds {held} candidates of one of these prompts; "
                f"K + {held} must be at most {MAX_SAMPLES_PER_PROMPT}",
                field="samples",
            )
        job = generation_job_create(
            prompts=prompts, generators=[generator], samples_per_prompt=samples + held, created_by=created_by
        )
        created = queue_create_with_items(
            name=queue_name,
            rubric=rubric,
            kind=Queue.Kind.RANKING if samples > 2 else Queue.Kind.PAIRWISE,
            size=samples,
            members=members,
            content_warning="Red-team prompts: the requests may be harmful.",
            allow_empty=True,  # the candidates come later (attack_safe_replies_build)
        )
        queue = queue_update_settings(queue=created.queue, disturbing=True)
        audit_record(
            SAFE_REPLIES_ACTION,
            target=queue,
            changes={
                "job": job.pk,
                "generator": generator.pk,
                "samples": samples,
                "prompts": sorted(p.pk for p in prompts),
                "attacks": [a.pk for a in attacks],
            },
        )
    return SafeRepliesRequested(job=job, queue=queue, attacks=attacks)


def attack_safe_replies_build() -> int:
    """Add the items of every request whose generation job has finished (succeeded, failed or
    cancelled: what was generated is ranked), for its prompts that have no item in its queue yet.
    Returns how many items were added. Idempotent; run by Celery beat every minute."""
    added = 0
    for request in safe_replies_requests():
        status = GenerationJob.objects.filter(pk=request.job_id).values_list("status", flat=True).first()
        if status not in FINISHED:
            continue
        queue = Queue.objects.filter(pk=request.queue_id).first()
        generator = Generator.objects.filter(pk=request.generator_id).first()
        if queue is None or generator is None:
            continue
        built = set(queue.items.values_list("comparison__prompt_id", flat=True))
        missing = [pid for pid in request.prompt_ids if pid not in built]
        if not missing:
            continue
        with transaction.atomic():
            comparisons = comparisons_build(
                prompts=Prompt.objects.filter(pk__in=missing),
                pairing=Queue.Pairing.ALL_PAIRS if request.samples == 2 else queue.pairing,
                size=request.samples,
                generators=[generator],
                dedupe=queue.dedupe,
                similarity=queue.similarity,
            )
            added += queue_add_comparisons(queue=queue, comparisons=comparisons, interleave=queue.interleave)
    return added
