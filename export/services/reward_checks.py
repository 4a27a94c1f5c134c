"""The RewardCheck lifecycle: create a queued check of a finished snapshot (and enqueue its task on
the ``gpu`` queue), execute it, record the result or the failure.

``RewardCheck.status``, ``steps_done`` and the results change only here: ``reward_check_create``
makes checks in their initial ``queued`` state, ``reward_check_execute`` moves them
queued -> running -> done | failed. The model is trained in the worker by
``model_runner.backends.reward_model`` (imported inside the function: the web process that enqueues
the check never loads torch).

What is reported, per scored set, is pairwise accuracy (the share of pairs whose chosen text gets
the higher reward) with a bootstrap 95% interval: the test split (against the untrained model, the
baseline), the gold items of the queues the snapshot drew from, and the researcher's known pairs.
The test split shows only that the labels are consistent; the verdict rests on the direction sets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from export.models import ExportRun, RewardCheck
from export.selectors.reward_pairs import (
    gold_pairs,
    known_pairs_parse,
    known_pairs_texts,
    reward_check_source,
    snapshot_pairs,
)
from export.selectors.runs import export_run_folder
from labeling.audit import audit_record
from labeling.errors import ApplicationError, Conflict
from labeling.models import User

logger = logging.getLogger(__name__)

DEFAULT_OPTIONS: dict[str, Any] = {
    "steps": 200,
    "train_layers": 2,
    "max_length": 256,
    "batch_size": 8,
    "learning_rate": 1e-4,
    "seed": 0,
}
#: name -> (type, lowest, highest)
_BOUNDS: dict[str, tuple[type, float, float]] = {
    "steps": (int, 1, 1000),
    "train_layers": (int, 0, 30),
    "max_length": (int, 16, 2048),
    "batch_size": (int, 1, 64),
    "learning_rate": (float, 1e-7, 1e-2),
    "seed": (int, 0, 2**31 - 1),
}
BOOTSTRAP_ROUNDS = 2000
#: A direction set fails when its interval lies under 0.5 or its accuracy is under this.
FAIL_BELOW = 0.4
ACTIVE = (RewardCheck.Status.QUEUED, RewardCheck.Status.RUNNING)


def reward_check_options_clean(*, options: Any) -> dict[str, Any]:
    """The defaults, overridden by the caller's options; ApplicationError naming ``options.<key>``."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ApplicationError("options must be an object", field="options")
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ApplicationError(
            f"options.{unknown[0]}: unknown option (known: {', '.join(DEFAULT_OPTIONS)})",
            field=f"options.{unknown[0]}",
        )
    out = dict(DEFAULT_OPTIONS)
    for key, value in options.items():
        kind, low, high = _BOUNDS[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and kind is int:
            ok = float(value).is_integer()
        if not ok or not math.isfinite(float(value)) or not low <= value <= high:
            raise ApplicationError(
                f"options.{key}: expected {'an integer' if kind is int else 'a number'} in {low:g}..{high:g}",
                field=f"options.{key}",
            )
        out[key] = kind(value)
    return out


def accuracy_interval(outcomes: Sequence[bool], *, seed: int = 0) -> tuple[float, float, float] | None:
    """Pairwise accuracy and its percentile bootstrap 95% interval (``BOOTSTRAP_ROUNDS`` resamples
    of the pairs; a resample's number right is Binomial(n, accuracy)); None for no pairs."""
    n = len(outcomes)
    if n == 0:
        return None
    accuracy = sum(outcomes) / n
    draws = np.random.default_rng(seed).binomial(n, accuracy, size=BOOTSTRAP_ROUNDS) / n
    low, high = np.percentile(draws, [2.5, 97.5])
    return accuracy, float(low), float(high)


def direction_verdict(intervals: Sequence[tuple[float, float, float] | None]) -> str:
    """fail when a direction set is clearly below chance, pass when every one is clearly above."""
    known = [i for i in intervals if i is not None]
    if not known:
        return RewardCheck.Verdict.NONE
    if any(high < 0.5 or accuracy < FAIL_BELOW for accuracy, _, high in known):
        return RewardCheck.Verdict.FAIL
    if all(low > 0.5 for _, low, _ in known):
        return RewardCheck.Verdict.PASS
    return RewardCheck.Verdict.INCONCLUSIVE


def reward_check_create(
    *, export_run: ExportRun, created_by: User, options: Any = None, known_pairs: str = ""
) -> RewardCheck:
    """Queue a reward check of a finished snapshot of pairs; its task runs once the transaction commits.

    403 unless a researcher or admin; 409 unless the run succeeded with a pair format, or while
    another check of it is queued or running; 400 naming ``options.<key>`` or ``known_pairs``.
    """
    if not getattr(created_by, "can_export", False):
        raise ApplicationError("Only researchers and admins may run a reward check.", status_code=403)
    clean = reward_check_options_clean(options=options)
    known = known_pairs_parse(text=known_pairs or "")
    with transaction.atomic():
        # The run's row lock serializes two requests for one run: one check at a time.
        ExportRun.objects.select_for_update().filter(pk=export_run.pk).first()
        export_run.refresh_from_db()
        reward_check_source(export_run=export_run)
        running = export_run.reward_checks.filter(status__in=ACTIVE).first()
        if running is not None:
            raise Conflict(
                f"Reward check {running.pk} of export {export_run.pk} is {running.status}; "
                "wait for it to finish.",
                field="status",
            )
        check = RewardCheck.objects.create(
            export_run=export_run, created_by=created_by, options=clean, known_pairs=known
        )
        audit_record("export.reward_check", target=export_run, actor=created_by, changes={"options": clean})
        from export.tasks import reward_check_task  # the task module imports this one

        check_id = check.pk
        transaction.on_commit(lambda: reward_check_task.delay(check_id))
    return check


def reward_check_execute(*, reward_check: RewardCheck) -> RewardCheck:
    """Train and score; the only place a check's status, progress and results change."""
    if reward_check.status not in ACTIVE:
        return reward_check
    export_run = reward_check.export_run
    try:
        folder = export_run_folder(export_run=export_run)
        train = snapshot_pairs(export_run=export_run, folder=folder, split="train")
        test = snapshot_pairs(export_run=export_run, folder=folder, split="test")
        gold = gold_pairs(export_run=export_run, folder=folder)
        known = known_pairs_texts(reward_check.known_pairs)
    except (ApplicationError, OSError, ValueError, KeyError, TypeError) as exc:
        return _fail(reward_check, f"cannot read the snapshot's pairs: {exc}")
    if not train:
        return _fail(reward_check, f"export {export_run.pk} has no train pairs to train on")
    if not test and not gold and not known:
        return _fail(
            reward_check,
            f"export {export_run.pk} has no test pairs, its queues no gold items, and no known pairs "
            "were given: nothing to score (export with a test_fraction above 0)",
        )

    reward_check.status = RewardCheck.Status.RUNNING
    reward_check.steps_done = 0
    reward_check.steps_total = int(reward_check.options["steps"])
    reward_check.train_pairs, reward_check.test_pairs = len(train), len(test)
    reward_check.gold_n, reward_check.known_n = len(gold), len(known)
    reward_check.started_at = timezone.now()
    reward_check.save(
        update_fields=[
            "status", "steps_done", "steps_total", "train_pairs", "test_pairs", "gold_n", "known_n", "started_at"
        ]
    )  # fmt: skip
    check_id = reward_check.pk

    def progress(done: int, total: int) -> None:
        RewardCheck.objects.filter(pk=check_id).update(steps_done=done, steps_total=total)

    from model_runner.backends.reward_model import reward_model_check  # worker side: torch

    try:
        result = reward_model_check(
            train=train,
            scored={"test": test, "gold": gold, "known": known},
            options=reward_check.options,
            progress=progress,
        )
    except Exception as exc:  # a failed training is recorded, never left running
        logger.exception("reward check %s failed", check_id)
        return _fail(reward_check, f"training failed: {type(exc).__name__}: {exc}")
    return _record(reward_check, result)


def _set(check: RewardCheck, name: str, interval: tuple[float, float, float] | None) -> None:
    """``name`` "" for the test split (``accuracy``, ``accuracy_low``, ...), else ``<name>_accuracy``..."""
    accuracy, low, high = interval if interval is not None else (None, None, None)
    setattr(check, f"{name}_accuracy" if name else "accuracy", accuracy)
    setattr(check, f"{name or 'accuracy'}_low", low)
    setattr(check, f"{name or 'accuracy'}_high", high)


def _record(check: RewardCheck, result: dict[str, Any]) -> RewardCheck:
    seed = int(check.options.get("seed", 0))
    after, before = result["after"], result["before"]
    _set(check, "", accuracy_interval(after["test"], seed=seed))
    _set(check, "baseline", accuracy_interval(before["test"], seed=seed))
    gold = accuracy_interval(after["gold"], seed=seed)
    known = accuracy_interval(after["known"], seed=seed)
    _set(check, "gold", gold)
    _set(check, "known", known)
    check.verdict = direction_verdict([gold, known])
    check.timings = {
        **result["timings"],
        "device": result["device"],
        "trainable_parameters": result["trainable_parameters"],
        "baseline_gold_accuracy": _mean(before["gold"]),
        "baseline_known_accuracy": _mean(before["known"]),
    }
    check.status = RewardCheck.Status.DONE
    check.steps_done = int(result["steps"])
    check.finished_at = timezone.now()
    check.save()
    return check


def _mean(outcomes: Sequence[bool]) -> float | None:
    return sum(outcomes) / len(outcomes) if outcomes else None


def _fail(check: RewardCheck, message: str) -> RewardCheck:
    check.status = RewardCheck.Status.FAILED
    check.error = message[:2000]
    check.finished_at = timezone.now()
    check.save(update_fields=["status", "error", "finished_at"])
    return check
