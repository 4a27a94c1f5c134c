"""The rater's pages: the queue list, content preferences, and the judging page.

Each page calls the same gatekeepers and services as the API (``queue_get_for_rater``,
``assignment_get_for_rater``, ``assignment_claim_next``, ``judgment_submit``,
``assignment_skip``), so a rule holds through both doors. The judging page works as plain HTML
forms; with htmx loaded, submit, skip and undo swap the next item into ``#workbench`` without a
full page load (``HX-Request`` requests get the partial).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from labeling import selectors, services
from labeling.errors import ApplicationError
from labeling.models import Assignment, ContentCategory, Queue, User
from labeling.selectors.wellbeing import rater_break_due, rater_run_length
from labeling.services.wellbeing import rater_set_disturbing_opt_in
from labeling.throttles import next_wait, wait_message
from labeling.views.judging_form import (
    judging_context,
    submission_notice,
    submit_from_form,
    values_from_judgment,
    values_from_post,
)

_PREFILL_SESSION_KEY = "workbench-prefill-{}"


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if user.is_admin_role or user.role == User.Role.RESEARCHER:
        return redirect("manage-home")  # each area's state at a glance
    return redirect("rate-home")


@login_required
def rate_home(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    mine = Queue.objects.filter(members=user, status=Queue.Status.ACTIVE)
    if not user.disturbing_opt_in:
        mine = mine.exclude(disturbing=True)  # only raters who opted in are sent there
    queues = list(mine.order_by("-priority", "id"))
    stats = selectors.queue_stats_for_rater(rater=user, queues=queues)
    labels = dict(ContentCategory.choices)
    rows = []
    for q in queues:
        opted = selectors.queue_opted_out_category(rater=user, queue=q)
        rows.append({"queue": q, **stats[q.pk], "opted_out": labels.get(opted) if opted else None})
    return render(request, "labeling/rate_home.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def rate_profile(request: HttpRequest) -> HttpResponse:
    """The rater's content opt-outs: categories they will not be shown."""
    user: User = request.user  # type: ignore[assignment]
    if request.method == "POST":
        try:
            services.rater_set_content_opt_outs(rater=user, categories=request.POST.getlist("opt_out"))
            rater_set_disturbing_opt_in(rater=user, opt_in=request.POST.get("disturbing_opt_in") == "on")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Your content preferences are saved.")
            return redirect("rate-profile")
    chosen = set(user.content_opt_outs or [])
    categories = [
        {"value": v, "label": label, "checked": v in chosen} for v, label in ContentCategory.choices
    ]
    context = {"categories": categories, "disturbing_opt_in": user.disturbing_opt_in}
    return render(request, "labeling/rate_profile.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def rate_queue(request: HttpRequest, queue_id: int) -> HttpResponse:
    """Claim the next item (or the one already held) and show it."""
    user: User = request.user  # type: ignore[assignment]
    queue = selectors.queue_get_for_rater(rater=user, queue_id=queue_id)
    if queue.kind == Queue.Kind.CONVERSATION:
        return redirect("chat-home")  # its turns are ranked in the conversation, not handed out
    if queue.kind == Queue.Kind.REDTEAM:
        return redirect("redteam-review-queue", queue_id=queue.pk)  # attacks are reviewed there
    if request.POST.get("action") != "continue" and _break_due(user, queue):
        return render(request, "labeling/rate_break.html", _break_context(user, queue))
    try:
        assignment = _claim_next(user, queue)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("rate-home")
    if assignment is None:
        return render(request, "labeling/rate_done.html", {"queue": queue})
    return redirect("rate-assignment", assignment_id=assignment.pk)


def _claim_next(user: User, queue: Queue) -> Assignment | None:
    """The next item, behind the same per-user rate as the API's ``next/`` (``labeling.throttles``)."""
    wait = next_wait(user)
    if wait is not None:
        raise ApplicationError(wait_message(wait, "You are asking for items very fast"), status_code=429)
    return services.assignment_claim_next(rater=user, queue=queue)


def _break_due(user: User, queue: Queue) -> bool:
    """A "take a break" interstitial is due before the next new item (the queue's
    ``break_after``; see ``labeling.selectors.wellbeing``); never while an item is held."""
    if not queue.break_after or selectors.rater_open_assignment(rater=user, queue=queue) is not None:
        return False
    return rater_break_due(rater=user, queue=queue)


def _break_context(user: User, queue: Queue) -> dict[str, Any]:
    return {
        "queue": queue,
        "run": rater_run_length(rater=user, queue=queue),
        "gap_minutes": f"{settings.PREFLAB_BREAK_GAP_MINUTES:g}",
        "continue_url": reverse("rate-queue", args=[queue.pk]),
        "stop_url": reverse("rate-home"),
    }


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _render_next(request: HttpRequest, queue: Queue, notice: str, *, warning: bool = False) -> HttpResponse:
    """htmx: the next item's workbench (or the "all done" panel), pushed to the address bar."""
    user: User = request.user  # type: ignore[assignment]
    if _break_due(user, queue):
        response = render(request, "labeling/_workbench_break.html", _break_context(user, queue))
        response["HX-Push-Url"] = reverse("rate-queue", args=[queue.pk])
        return response
    try:
        assignment = _claim_next(user, queue)
    except ApplicationError as exc:
        response = render(request, "labeling/_workbench_done.html", {"queue": queue, "notice": exc.message})
        response["HX-Push-Url"] = reverse("rate-home")
        return response
    if assignment is None:
        response = render(
            request,
            "labeling/_workbench_done.html",
            {"queue": queue, "notice": notice, "notice_warning": warning},
        )
        response["HX-Push-Url"] = reverse("rate-queue", args=[queue.pk])
        return response
    context = judging_context(request, assignment, notice=notice, notice_warning=warning)
    response = render(request, "labeling/_workbench.html", context)
    response["HX-Push-Url"] = reverse("rate-assignment", args=[assignment.pk])
    return response


@login_required
@require_http_methods(["GET", "POST"])
def rate_assignment(request: HttpRequest, assignment_id: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    assignment = selectors.assignment_get_for_rater(rater=user, assignment_id=assignment_id)
    queue = assignment.item.queue
    htmx = _is_htmx(request)
    if request.method == "POST":
        criteria = selectors.rubric_criteria(queue.rubric)
        labels = list(selectors.LABELS[: len(assignment.shown_order)])
        if request.POST.get("action") == "skip":
            try:
                services.assignment_skip(assignment=assignment, reason=request.POST.get("skip_reason", ""))
            except ApplicationError as exc:
                messages.error(request, exc.message)
                return redirect("rate-queue", queue_id=queue.pk)
            if htmx:
                return _render_next(request, queue, "Skipped.")
            messages.info(request, "Skipped.")
            return redirect("rate-queue", queue_id=queue.pk)
        try:
            judgment, created = submit_from_form(request, assignment, criteria, labels)
        except ApplicationError as exc:
            if assignment.status != Assignment.Status.LEASED and not htmx:
                messages.error(request, exc.message)
                return redirect("rate-queue", queue_id=queue.pk)
            context = judging_context(
                request, assignment, values=values_from_post(request.POST, criteria, labels), error=exc
            )
            template = "labeling/_workbench.html" if htmx else "labeling/rate_assignment.html"
            return render(request, template, context, status=exc.status_code)
        notice, stale = submission_notice(request.POST, judgment, created, labels)
        if htmx:
            return _render_next(request, queue, notice, warning=stale)
        (messages.warning if stale else messages.success)(request, notice)
        return redirect("rate-queue", queue_id=queue.pk)
    if assignment.status != Assignment.Status.LEASED:
        return redirect("rate-queue", queue_id=queue.pk)
    prefill = request.session.pop(_PREFILL_SESSION_KEY.format(assignment.pk), None)
    values = values_from_judgment(prefill) if prefill else None
    notice = "Reopened your last judgment: change it and submit again." if prefill else ""
    context = judging_context(request, assignment, values=values, notice=notice)
    return render(request, "labeling/rate_assignment.html", context)


@login_required
@require_POST
def rate_undo(request: HttpRequest, queue_id: int) -> HttpResponse:
    """Reopen my last judgment in this queue (see ``assignment_reopen_last`` for when that is allowed)."""
    user: User = request.user  # type: ignore[assignment]
    queue = selectors.queue_get_for_rater(rater=user, queue_id=queue_id)
    try:
        assignment, previous = services.assignment_reopen_last(rater=user, queue=queue)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        if _is_htmx(request):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("rate-queue", args=[queue.pk])
            return response
        return redirect("rate-queue", queue_id=queue.pk)
    previous["active_seconds"] = previous.get("active_seconds") or 0.0
    if _is_htmx(request):
        context = judging_context(
            request,
            assignment,
            values=values_from_judgment(previous),
            notice="Reopened your last judgment: change it and submit again.",
        )
        response = render(request, "labeling/_workbench.html", context)
        response["HX-Push-Url"] = reverse("rate-assignment", args=[assignment.pk])
        return response
    request.session[_PREFILL_SESSION_KEY.format(assignment.pk)] = previous
    return redirect("rate-assignment", assignment_id=assignment.pk)
