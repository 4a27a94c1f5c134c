"""The red-team review pages (``/redteam/review/``): the rater's review queues, and one queue's
next attack, blurred until revealed, with the verdict form (keyboard: see the page's key list).

Each page calls the same gatekeepers and services as the API (``redteam_queue_get_for_rater``,
``attack_get_for_reviewer``, ``attack_claim_next``, ``attack_review_submit``, ``attack_skip``),
so opt-in, daily cap, membership and "never your own attack" hold through both doors. Before a
new attack the page shows the "take a break" interstitial when one is due
(``labeling.selectors.wellbeing``); its Continue button claims the next attack at once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from labeling.errors import ApplicationError, decimal_int
from labeling.models import Attack, HarmCategory, Outcome, Queue, Tactic, User
from labeling.selectors.redteam_reviews import (
    attack_get_for_reviewer,
    attack_held_by,
    attack_review_payload,
    redteam_queue_get_for_rater,
    redteam_queues_for_rater,
)
from labeling.selectors.wellbeing import rater_break_due, rater_run_length
from labeling.services.redteam_reviews import (
    AttackReviewExists,
    attack_claim_next,
    attack_review_submit,
    attack_skip,
)

#: Keys of the verdict form (the page lists them; static/preflab/redteam_review.js reads them).
OUTCOME_KEYS = dict(zip(Outcome.values, "1234", strict=True))


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@login_required
def redteam_review_home(request: HttpRequest) -> HttpResponse:
    """The rater's red-team review queues with the attacks waiting for them."""
    user = _user(request)
    rows = redteam_queues_for_rater(rater=user)
    return render(
        request, "labeling/redteam_review_home.html", {"rows": rows, "opted_in": user.disturbing_opt_in}
    )


@login_required
@require_http_methods(["GET", "POST"])
def redteam_review_queue(request: HttpRequest, queue_id: int) -> HttpResponse:
    """GET: the held attack, else the break interstitial when due, else the next attack.
    POST ``action``: ``continue`` (past the break), ``review`` (the verdict), ``skip``."""
    user = _user(request)
    queue = redteam_queue_get_for_rater(rater=user, queue_id=queue_id)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "continue":
            return _claim_and_show(request, queue)
        attack = attack_get_for_reviewer(reviewer=user, attack_id=request.POST.get("attack", ""))
        if action == "skip":
            attack_skip(attack=attack, rater=user)
            messages.info(request, "Skipped: you will not be shown this attack again.")
            return redirect("redteam-review-queue", queue_id=queue.pk)
        try:
            _, created = attack_review_submit(
                attack=attack, reviewer=user, **_verdict_from_form(request.POST)
            )
        except AttackReviewExists as exc:
            messages.error(request, exc.message)
            return redirect("redteam-review-queue", queue_id=queue.pk)
        except ApplicationError as exc:
            return _render_attack(request, queue, attack, error=exc, values=request.POST)
        notice = "Verdict saved." if created else "That verdict was already saved."
        messages.success(request, notice)
        return redirect("redteam-review-queue", queue_id=queue.pk)
    held = attack_held_by(rater=user, queue=queue)
    if held is not None:
        return _render_attack(request, queue, held)
    if rater_break_due(rater=user, queue=queue):
        context = {
            "queue": queue,
            "run": rater_run_length(rater=user, queue=queue),
            "gap_minutes": f"{settings.PREFLAB_BREAK_GAP_MINUTES:g}",
            "continue_url": reverse("redteam-review-queue", args=[queue.pk]),
            "stop_url": reverse("redteam-review-home"),
        }
        return render(request, "labeling/redteam_review_break.html", context)
    return _claim_and_show(request, queue)


def _claim_and_show(request: HttpRequest, queue: Queue) -> HttpResponse:
    user = _user(request)
    try:
        attack = attack_claim_next(rater=user, queue=queue)
    except ApplicationError as exc:
        context = {"queue": queue, "refusal": exc.message}
        return render(request, "labeling/redteam_review_done.html", context, status=exc.status_code)
    if attack is None:
        return render(request, "labeling/redteam_review_done.html", {"queue": queue})
    if request.method == "POST":
        return redirect("redteam-review-queue", queue_id=queue.pk)
    return _render_attack(request, queue, attack)


def _verdict_from_form(post: Any) -> dict[str, Any]:
    """The posted verdict as the service takes it (the service checks it and names the field)."""
    severity = post.get("severity", "")
    return {
        "verdict": post.get("verdict", ""),
        "outcome": post.get("outcome", ""),
        "category": post.get("category", ""),
        "tactic": post.get("tactic", ""),
        "severity": decimal_int(severity) if severity else None,
        "ideal_reply": post.get("ideal_reply", ""),
        "note": post.get("note", ""),
    }


def _render_attack(
    request: HttpRequest,
    queue: Queue,
    attack: Attack,
    *,
    error: ApplicationError | None = None,
    values: Any = None,
) -> HttpResponse:
    payload = attack_review_payload(attack)
    chosen = {
        "verdict": "",
        "outcome": attack.outcome,
        "category": attack.category,
        "tactic": attack.tactic,
        "severity": str(attack.severity or ""),
        "ideal_reply": attack.ideal_reply,
        "note": "",
    }
    if values is not None:
        chosen |= {key: values.get(key, "") for key in chosen}
    context = {
        "queue": queue,
        "attack": attack,
        "payload": payload,
        "values": chosen,
        "error": error,
        "outcomes": [{"value": v, "label": label, "key": OUTCOME_KEYS[v]} for v, label in Outcome.choices],
        "categories": HarmCategory.objects.filter(active=True)
        | HarmCategory.objects.filter(key=attack.category),
        "tactics": Tactic.choices,
        "severities": ["1", "2", "3", "4", "5"],
    }
    return render(
        request,
        "labeling/redteam_review.html",
        context,
        status=error.status_code if error is not None else 200,
    )
