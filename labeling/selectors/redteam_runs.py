"""Reads of the adversary jobs and test-set runs: the default seeds of a job, the test attacks a
run replays, and the jobs and runs themselves for the API and ``/manage/redteam/``."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from labeling.errors import NotFound
from labeling.models import AdversaryJob, Attack, RedteamEvalRun
from labeling.selectors.redteam import attacks_on_side

#: The most seeds a job takes by default (the newest confirmed attacks of its category).
DEFAULT_SEEDS_LIMIT = 200
#: The existing attacks a new attack prompt is compared with for near-duplicates (the newest).
KNOWN_ATTACKS_LIMIT = 5000


def last_user_message(messages: list[dict[str, Any]]) -> str:
    """The content of the conversation's last user message ('' when it has none)."""
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")


def first_user_message(messages: list[dict[str, Any]]) -> str:
    """The content of the conversation's first user message ('' when it has none): the opening of
    an attack, what makes two attacks the same attack."""
    return next((str(m.get("content", "")) for m in messages if m.get("role") == "user"), "")


def adversary_default_seeds(*, category: str) -> list[dict[str, str]]:
    """Seeds for a job of ``category`` when none are given: the confirmed human attacks of the
    category (red-team sessions and imported ones), their last user message and their family, oldest
    first (at most ``DEFAULT_SEEDS_LIMIT``, the newest of them)."""
    found = (
        Attack.objects.filter(
            status=Attack.Status.CONFIRMED,
            category=category,
            source__in=[Attack.Source.SESSION, Attack.Source.WILD],
        )
        .select_related("prompt")
        .order_by("-id")[:DEFAULT_SEEDS_LIMIT]
    )
    seeds = [{"text": last_user_message(a.prompt.messages), "family": a.family} for a in reversed(found)]
    return [s for s in seeds if s["text"].strip()]


def attack_openings_known(*, category: str) -> list[str]:
    """The openings (first user messages) of the existing attacks of a category, newest first (at
    most ``KNOWN_ATTACKS_LIMIT``): what a new adversary prompt must not repeat. Test-set replays
    repeat their test attack by design and are left out."""
    prompts = (
        Attack.objects.filter(category=category)
        .exclude(source=Attack.Source.EVAL)
        .order_by("-id")
        .values_list("prompt__messages", flat=True)[:KNOWN_ATTACKS_LIMIT]
    )
    return [text for text in (first_user_message(m) for m in prompts) if text]


def adversary_job_list() -> QuerySet[AdversaryJob]:
    return AdversaryJob.objects.select_related("queue", "attacker", "target").order_by("-id")


def adversary_job_get(*, job_id: int) -> AdversaryJob:
    job = adversary_job_list().filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"adversary job {job_id} not found")
    return job


def redteam_eval_run_list() -> QuerySet[RedteamEvalRun]:
    return RedteamEvalRun.objects.select_related("queue", "generator").order_by("-id")


def redteam_eval_run_get(*, run_id: int) -> RedteamEvalRun:
    run = redteam_eval_run_list().filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"red-team test run {run_id} not found")
    return run


def redteam_eval_test_attacks(*, run: RedteamEvalRun) -> list[Attack]:
    """The test attacks a run replays, oldest first: the held-out test set (``attacks_on_side``),
    of the run's category if it has one, as it stood when the run was started (an attack confirmed
    later is not added to a run under way; one whose verdict changed since drops out)."""
    tests = attacks_on_side(side="test", category=run.category or None)
    cutoff = run.created_at
    return [a for a in tests if a.created_at <= cutoff and (a.reviewed_at is None or a.reviewed_at <= cutoff)]


def redteam_eval_pending_count(*, run: RedteamEvalRun) -> int:
    """How many of the run's attempts still wait for a verdict."""
    return run.attempts.filter(Q(status=Attack.Status.PENDING)).count()
