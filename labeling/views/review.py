"""The reviewer's pages (``/review/``): queues with contested items, a queue's list, and one item
to adjudicate; and the admin's "lift this pause" button on a queue's dashboard.

Each page calls the same gatekeepers and services as the API (``review_queue_get``,
``review_item_get_for_reviewer``, ``review_submit``; ``rater_queue_pause_lift``), so a rule
holds through both doors: reviewers and admins only, never an item they judged themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from labeling.errors import ApplicationError
from labeling.models import Queue, User
from labeling.selectors.pauses import queue_pause_get
from labeling.selectors.reviews import (
    REVIEWABLE_KINDS,
    queue_review_items,
    review_item_get_for_reviewer,
    review_item_payload,
    review_queue_get,
    user_may_review,
)
from labeling.services.pauses import rater_queue_pause_lift
from labeling.services.reviews import ReviewExists, review_submit

T = TypeVar("T")

#: The 7-point scale in stored order, with its keys (1..7) as on the judging page.
SCALE = [
    (-3, "Response 1 much better"),
    (-2, "Response 1 better"),
    (-1, "Response 1 slightly better"),
    (0, "About the same"),
    (1, "Response 2 slightly better"),
    (2, "Response 2 better"),
    (3, "Response 2 much better"),
]


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _gate(fetch: Callable[[], T]) -> T:
    """A gatekeeper's refusal as the page says it: 403 and 404 as such (409 is the caller's)."""
    try:
        return fetch()
    except ApplicationError as exc:
        if exc.status_code == 403:
            raise PermissionDenied(exc.message) from exc
        if exc.status_code == 404:
            raise Http404(exc.message) from exc
        raise


@login_required
def review_home(request: HttpRequest) -> HttpResponse:
    """The pairwise and ranking queues, each with its number of items waiting for a review."""
    user = _user(request)
    if not user_may_review(user):
        raise PermissionDenied("Only reviewers and admins review items.")
    rows = []
    for queue in Queue.objects.filter(kind__in=REVIEWABLE_KINDS).order_by("-priority", "id"):
        pending = queue_review_items(queue=queue, reviewer=user)
        rows.append(
            {"queue": queue, "pending": len(pending), "yours": sum(not p["judged_by_you"] for p in pending)}
        )
    return render(request, "labeling/review_home.html", {"rows": rows})


@login_required
def review_queue(request: HttpRequest, queue_id: int) -> HttpResponse:
    user = _user(request)
    queue = _gate(lambda: review_queue_get(reviewer=user, queue_id=queue_id))
    items = queue_review_items(queue=queue, reviewer=user)
    return render(request, "labeling/review_queue.html", {"queue": queue, "items": items})


def _next_item(queue: Queue, user: User) -> int | None:
    return next(
        (p["item"] for p in queue_review_items(queue=queue, reviewer=user) if not p["judged_by_you"]), None
    )


def _form_label(post: Any, kind: str, size: int) -> dict[str, Any]:
    """The posted label as the service takes it (the service checks it and names the field)."""
    if kind == Queue.Kind.PAIRWISE:
        raw = post.get("preference", "")
        try:
            return {"preference": int(raw)}
        except ValueError:
            return {"preference": None}
    ranks: dict[int, list[int]] = {}
    for position in range(size):
        raw = post.get(f"rank-{position}", "")
        if not raw.isdigit():
            raise ApplicationError(
                f"ranking: give response {position + 1} a rank (1 = best)", field="ranking"
            )
        ranks.setdefault(int(raw), []).append(position)
    return {"ranking": [ranks[r] for r in sorted(ranks)]}


@login_required
@require_http_methods(["GET", "POST"])
def review_item(request: HttpRequest, item_id: int) -> HttpResponse:
    """One item: the prompt, the responses and every judgment in stored order; the final label."""
    user = _user(request)
    try:
        item = _gate(lambda: review_item_get_for_reviewer(reviewer=user, item_id=item_id))
    except ApplicationError as exc:  # 409: nobody judged it yet
        messages.error(request, exc.message)
        return redirect("review-home")
    status, error = 200, None
    if request.method == "POST":
        try:
            label = _form_label(request.POST, item.queue.kind, item.comparison.size)
            review_submit(item=item, reviewer=user, note=request.POST.get("note", ""), **label)
        except ReviewExists as exc:
            messages.error(request, exc.message)
            status = 409
        except ApplicationError as exc:
            error, status = exc.message, exc.status_code
        else:
            messages.success(request, f"Review of item {item.pk} saved.")
            following = _next_item(item.queue, user)
            if following is None:
                return redirect("review-queue", queue_id=item.queue_id)
            return redirect("review-item", item_id=following)
    payload = review_item_payload(item=item)
    ranks = list(range(1, item.comparison.size + 1))
    context = {
        "item": item,
        "payload": payload,
        "scale": [{"value": v, "label": label, "key": i + 1} for i, (v, label) in enumerate(SCALE)],
        "ranks": ranks,
        "error": error,
        "posted": request.POST if error else {},
    }
    return render(request, "labeling/review_item.html", context, status=status)


@login_required
@require_POST
def manage_pause_lift(request: HttpRequest, queue_id: int, pause_id: int) -> HttpResponse:
    """Admins lift a rater's pause from the queue's dashboard (``rater_queue_pause_lift``)."""
    user = _user(request)
    if not user.is_admin_role:
        raise PermissionDenied("Only admins lift pauses.")
    queue = get_object_or_404(Queue, pk=queue_id)
    pause = _gate(lambda: queue_pause_get(queue=queue, pause_id=pause_id))
    try:
        lifted = rater_queue_pause_lift(pause=pause, by=user, note=request.POST.get("note", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Pause of {lifted.rater.username} lifted: they may work on this queue again."
        )
    return redirect("manage-queue", queue_id=queue.pk)
