"""Test-set runs: the held-out red-team test set replayed against one generator. The only writer of
``RedteamEvalRun.status``:

    QUEUED --a worker starts--> RUNNING --every test attack answered--> REVIEWING
    REVIEWING --every attempt has a verdict (``redteam_eval_settle``)--> DONE
    QUEUED / RUNNING --the model fails, or a test attack cannot be answered--> FAILED
    QUEUED / RUNNING / REVIEWING --a person cancels--> CANCELLED
    FAILED / CANCELLED --a person retries--> QUEUED (answered attempts stay; the rest are made)

Each answer becomes an attempt: an ``Attack`` of source ``eval`` linked to the run and to the test
attack it replays, with the test attack's family and labels and no outcome, pending in the run's
review queue. The database allows one attempt per (run, test attack) and the reply's sample index
is the run's own, so a redelivered or repeated run writes nothing twice.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from labeling.audit import audit_record
from labeling.errors import ApplicationError, Conflict
from labeling.models import Attack, Queue, RedteamEvalRun
from labeling.selectors.redteam import attacks_on_side
from labeling.selectors.redteam_runs import redteam_eval_pending_count, redteam_eval_test_attacks
from labeling.services.attacks import attack_create, harm_category_check
from model_runner.backends import GENERATING_BACKENDS
from model_runner.backends.base import BackendError
from model_runner.models import Generator

Status = RedteamEvalRun.Status
#: The run writes nothing more in these (REVIEWING waits for verdicts only).
STOPPED = frozenset({Status.REVIEWING, Status.DONE, Status.FAILED, Status.CANCELLED})
#: Test attacks answered per model call when the generator's options name no ``batch_size``.
DEFAULT_BATCH = 8
#: A run's replies take this sample index plus the run id: two runs of one generator sample anew,
#: and none takes a generation job's (0..K-1), a session turn's or an adversary exchange's index.
SAMPLE_INDEX_BASE = 2_000_000_000


def redteam_eval_start(
    *, queue: Queue, generator: Generator, category: Any = "", created_by: Any = None
) -> RedteamEvalRun:
    """Create a run of the held-out test set (``attacks_on_side("test")``, of one category when
    given) against ``generator`` and enqueue it on the ``gpu`` queue (after commit). Raises
    ``ApplicationError`` naming the field (``queue``, ``generator``, ``category``); also when the
    test set (of that category) is empty. Nothing is written then."""
    if not isinstance(queue, Queue) or queue.kind != Queue.Kind.REDTEAM:
        raise ApplicationError(
            f"queue: '{getattr(queue, 'name', queue)}' is not a red-team review queue", field="queue"
        )
    if not isinstance(generator, Generator):
        raise ApplicationError("generator: choose a generator", field="generator")
    if generator.backend not in GENERATING_BACKENDS:
        raise ApplicationError(
            f"generator: {generator.name!r} has backend {str(generator.backend)!r}, which does not generate",
            field="generator",
        )
    if not generator.is_active:
        raise ApplicationError(f"generator: {generator.name!r} is not active", field="generator")
    category = harm_category_check(category, allow_blank=True)
    tests = attacks_on_side(side="test", category=category or None)
    if not tests:
        where = f" in category {category!r}" if category else ""
        raise ApplicationError(
            f"category: the held-out test set has no confirmed attacks{where} yet", field="category"
        )
    with transaction.atomic():
        run = RedteamEvalRun.objects.create(
            queue=queue, generator=generator, category=category, total=len(tests), created_by=created_by
        )
        audit_record(
            "redteam_eval_run.start",
            target=run,
            actor=created_by,
            changes={"generator": generator.pk, "category": category, "total": len(tests)},
        )
        transaction.on_commit(lambda: _enqueue(run))
    return run


def _enqueue(run: RedteamEvalRun) -> None:
    from labeling.tasks import redteam_eval_run_task

    redteam_eval_run_task.apply_async((run.pk,), queue=run.generator.queue or "gpu")


def redteam_eval_cancel(*, run: RedteamEvalRun) -> RedteamEvalRun:
    """Stop a run (attempts made stay, and may still be reviewed). Raises ``Conflict`` when it is
    done, failed or cancelled already."""
    with transaction.atomic():
        locked = RedteamEvalRun.objects.select_for_update().get(pk=run.pk)
        if locked.status in (Status.DONE, Status.FAILED, Status.CANCELLED):
            raise Conflict(f"red-team test run {locked.pk} already {locked.status}; nothing to cancel")
        locked.status = Status.CANCELLED  # stopped by a person
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "finished_at"])
    return locked


def redteam_eval_retry(*, run: RedteamEvalRun) -> RedteamEvalRun:
    """Run a failed or cancelled run again: answered test attacks stay, the rest are answered.
    Raises ``Conflict`` otherwise."""
    with transaction.atomic():
        locked = RedteamEvalRun.objects.select_for_update().select_related("generator").get(pk=run.pk)
        if locked.status not in (Status.FAILED, Status.CANCELLED):
            raise Conflict(
                f"red-team test run {locked.pk} is {locked.status}; only failed or cancelled runs can be retried"
            )
        locked.status = Status.QUEUED  # retried: enqueued again
        locked.error = ""
        locked.finished_at = None
        locked.save(update_fields=["status", "error", "finished_at"])
        transaction.on_commit(lambda: _enqueue(locked))
    return locked


def redteam_eval_runs_resume_all() -> int:
    """Enqueue again every queued or running run (after commit): for a starting ``gpu`` worker on
    a broker that forgets a dead worker's message. A second run of one test run writes nothing twice."""
    runs = list(
        RedteamEvalRun.objects.filter(status__in=[Status.QUEUED, Status.RUNNING]).select_related("generator")
    )
    for run in runs:
        transaction.on_commit(lambda run=run: _enqueue(run))  # type: ignore[misc]
    return len(runs)


def redteam_eval_settle(*, run: RedteamEvalRun) -> RedteamEvalRun:
    """REVIEWING -> DONE once every attempt of the run has a verdict (a reviewer's confirm or
    reject); otherwise nothing changes. Called where either condition can become true: after each
    verdict on an attempt (``attack_review_submit``) and when the last reply is stored."""
    if run.status != Status.REVIEWING or redteam_eval_pending_count(run=run):
        return run
    with transaction.atomic():
        locked = RedteamEvalRun.objects.select_for_update().get(pk=run.pk)
        if locked.status == Status.REVIEWING and not redteam_eval_pending_count(run=locked):
            locked.status = Status.DONE  # every attempt has a verdict
            locked.finished_at = timezone.now()
            locked.save(update_fields=["status", "finished_at"])
    run.refresh_from_db()
    return run


def redteam_eval_run(*, run: RedteamEvalRun) -> int:
    """Answer the run's test attacks that have no attempt yet; return how many attempts this call
    stored. Loads the model in this process (a ``gpu`` worker); saves after each model batch. A
    model that cannot load fails the run with the reason; a test attack it cannot answer (too
    long) fails the run naming it, after the others are answered."""
    from model_runner.services.interactive import SampleRequest, generation_samples_make

    with transaction.atomic():
        locked = RedteamEvalRun.objects.select_for_update().get(pk=run.pk)
        if locked.status in STOPPED:
            return 0
        tests = redteam_eval_test_attacks(run=locked)
        locked.status = Status.RUNNING  # the generator is answering
        locked.total = len(tests)
        locked.save(update_fields=["status", "total"])
    run.refresh_from_db()
    index = SAMPLE_INDEX_BASE + run.pk
    answered = set(run.attempts.values_list("test_attack_id", flat=True))
    todo = [t for t in tests if t.pk not in answered]
    batch = int((run.generator.options or {}).get("batch_size") or DEFAULT_BATCH)
    failed: dict[int, str] = {}
    stored = 0
    try:
        for start in range(0, len(todo), batch):
            run.refresh_from_db()
            if run.status != Status.RUNNING:
                return stored
            chunk = todo[start : start + batch]
            made = generation_samples_make(
                generator=run.generator,
                requests=[SampleRequest(prompt=t.prompt, sample_indices=[index]) for t in chunk],
            )
            for test in chunk:
                if test.prompt_id in made.errors:
                    failed[test.pk] = made.errors[test.prompt_id]
                    continue
                stored += _attempt_store(run, test, made.candidates[(test.prompt_id, index)])
    except BackendError as exc:
        _mark_failed(run, str(exc))
        return stored
    except Exception as exc:
        _mark_failed(run, f"{type(exc).__name__}: {exc}")
        raise
    if failed:
        shown = "; ".join(f"test attack {pk}: {why}" for pk, why in sorted(failed.items())[:10])
        _mark_failed(run, f"{len(failed)} test attack(s) could not be answered: {shown}")
        return stored
    with transaction.atomic():
        locked = RedteamEvalRun.objects.select_for_update().get(pk=run.pk)
        if locked.status == Status.RUNNING:
            locked.status = Status.REVIEWING  # every reply exists; waiting for verdicts
            locked.save(update_fields=["status"])
    run.refresh_from_db()
    redteam_eval_settle(run=run)
    return stored


def _attempt_store(run: RedteamEvalRun, test: Attack, reply: Any) -> int:
    """Store the attempt of one test attack (1), unless it exists or the run stopped (0)."""
    with transaction.atomic():
        locked = RedteamEvalRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != Status.RUNNING or locked.attempts.filter(test_attack=test).exists():
            return 0
        attack_create(
            queue=locked.queue,
            source=Attack.Source.EVAL,
            prompt=test.prompt,
            reply=reply,
            target=locked.generator,
            eval_run=locked,
            test_attack=test,
            family=test.family,
            category=test.category,
            tactic=test.tactic,
            severity=test.severity,
            description=test.description,
        )
        locked.answered = locked.attempts.count()
        locked.save(update_fields=["answered"])
    return 1


def _mark_failed(run: RedteamEvalRun, reason: str) -> None:
    with transaction.atomic():
        locked = RedteamEvalRun.objects.select_for_update().get(pk=run.pk)
        if locked.status in STOPPED:
            return
        locked.status = Status.FAILED  # ``error`` says why; retry resumes
        locked.error = reason[:5000]
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "error", "finished_at"])
    run.refresh_from_db()
