"""The red-teamer's pages (``/redteam/``): the red-team templates they may start (with the target
and harm category pickers) and their red-team sessions; one session is the conversation page of
``labeling.views.chat`` with a label form on each model turn and the verdict that ends it.

Every action goes through the same gatekeepers and services as the API (one door):
``session_template_get_for_user`` + ``session_start`` (which checks the opt-in, the target and
the category); ``session_get_for_trainer`` + ``turn_label_set``; ``redteam_session_finish``.
Talking, retrying and going back are the conversation page's own forms and views.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from labeling.errors import ApplicationError, id_or_none
from labeling.models import Session, User
from labeling.selectors import redteam_sessions as redteam_reads
from labeling.selectors import sessions as session_reads
from labeling.services import redteam_sessions as redteam_writes
from labeling.services import sessions as session_writes
from labeling.services.redteam_access import OPT_IN_PAGE
from labeling.views.chat import FINISHED_SHOWN, _back, _render_session
from labeling.views.redteam_form import label_values_from_post
from model_runner.models import Generator


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@login_required
@require_GET
def redteam_home(request: HttpRequest) -> HttpResponse:
    return _render_home(request)


def _render_home(
    request: HttpRequest,
    *,
    start_error: tuple[int, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    user = _user(request)
    sessions = redteam_reads.redteam_sessions_for_trainer(trainer=user)
    context = {
        "templates": list(redteam_reads.redteam_templates_for_user(user=user)),
        "categories": redteam_reads.harm_categories_offered(),
        "category_labels": redteam_reads.harm_category_labels(),
        "active": list(sessions.filter(status=Session.Status.ACTIVE)),
        "finished": list(sessions.filter(status=Session.Status.FINISHED)[:FINISHED_SHOWN]),
        "opted_in": user.disturbing_opt_in,
        "opt_in_page": OPT_IN_PAGE,
        "start_error": start_error,
        "values": values or {},
    }
    return render(request, "labeling/redteam_home.html", context, status=status)


@login_required
@require_POST
def redteam_start(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    queue = session_reads.session_template_get_for_user(user=user, queue_id=request.POST.get("queue"))
    target_id = id_or_none(request.POST.get("target", ""), Generator._meta.pk)
    target = Generator.objects.filter(pk=target_id).first() if target_id is not None else None
    category = request.POST.get("category", "")
    try:
        session = session_writes.session_start(trainer=user, queue=queue, target=target, category=category)
    except ApplicationError as exc:
        values = {"target": request.POST.get("target", ""), "category": category}
        return _render_home(
            request, start_error=(queue.pk, exc.message), values=values, status=exc.status_code
        )
    return _back(session)


@login_required
@require_POST
def redteam_label(request: HttpRequest, session_id: int, turn_id: int) -> HttpResponse:
    """Label (or relabel) a model turn; a refusal comes back next to the form, with what was typed."""
    session = session_reads.session_get_for_trainer(trainer=_user(request), session_id=session_id)
    turn = session_reads.session_turn_get(session=session, turn_id=turn_id)
    values = label_values_from_post(request.POST)
    try:
        redteam_writes.turn_label_set(turn=turn, **values)
    except ApplicationError as exc:
        return _render_session(
            request,
            session,
            status=exc.status_code,
            error=exc,
            form="label",
            label_values=values,
            label_turn=turn.pk,
        )
    messages.success(request, "Turn labelled.")
    return _back(session)


@login_required
@require_POST
def redteam_finish(request: HttpRequest, session_id: int) -> HttpResponse:
    """End the session with a verdict; a claimed success goes to review."""
    session = session_reads.session_get_for_trainer(trainer=_user(request), session_id=session_id)
    verdict = request.POST.get("verdict", "")
    description = request.POST.get("description", "")
    try:
        finished = redteam_writes.redteam_session_finish(
            session=session, verdict=verdict, description=description
        )
    except ApplicationError as exc:
        kept = {"finish_values": {"verdict": verdict, "description": description}}
        return _render_session(request, session, status=exc.status_code, error=exc, form="finish", extra=kept)
    attacks = len(finished.attacks)
    if not finished.created:
        messages.info(request, "This session was already finished with that verdict.")
    elif attacks:
        messages.success(request, f"Finished: {attacks} attack{'s' if attacks > 1 else ''} sent to review.")
    else:
        messages.success(request, "Finished. Thank you!")
    return _back(session)
