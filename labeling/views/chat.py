"""The trainer's conversation pages (``/chat/``): the templates they may start and their sessions
to resume, and one session: its kept branch, the composer, and the model's turn (waiting for the
model, to rank, to write, failed).

Every action goes through the sessions API's own gatekeepers and services (one door):
``session_template_get_for_user`` + ``session_start``; ``session_get_for_trainer`` +
``session_say``, ``turn_write_reply``, ``turn_retry``, ``session_branch``, ``session_finish``; and a
ranking is an ordinary judgment, through ``assignment_get_for_rater`` and the judging page's own
form reader (``submit_from_form`` -> ``judgment_submit``). The pages are plain forms that post and
redirect; a refused action shows the service's message next to its form, with what was typed.
Nothing waits for the model: while it writes, htmx fetches ``?fragment=turn`` every second and
swaps the replies in when they are stored (the answer asks for a reload once the turn is settled).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling import selectors
from labeling.errors import ApplicationError, Conflict
from labeling.models import Criterion, Session, SessionTemplate, Turn, User
from labeling.selectors import sessions as session_reads
from labeling.services import sessions as session_writes
from labeling.views.judging_form import (
    _criteria_view,
    submission_notice,
    submit_from_form,
    values_from_post,
)
from labeling.views.redteam_form import redteam_page_context

_DRAFT_KEY = "chat-draft-{}"
#: Finished sessions listed on /chat/ (every active one is).
FINISHED_SHOWN = 50


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


# ------------------------------------------------------------------------------- /chat/


@login_required
@require_GET
def chat_home(request: HttpRequest) -> HttpResponse:
    return _render_home(request)


def _render_home(
    request: HttpRequest, *, start_error: tuple[int, str] | None = None, status: int = 200
) -> HttpResponse:
    user = _user(request)
    sessions = session_reads.session_list_for_trainer(trainer=user)
    context = {
        "templates": list(session_reads.session_templates_for_user(user=user)),
        "active": list(sessions.filter(status=Session.Status.ACTIVE)),
        "finished": list(sessions.filter(status=Session.Status.FINISHED)[:FINISHED_SHOWN]),
        "start_error": start_error,
    }
    return render(request, "labeling/chat_home.html", context, status=status)


@login_required
@require_POST
def chat_start(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    queue = session_reads.session_template_get_for_user(user=user, queue_id=request.POST.get("queue"))
    try:
        session = session_writes.session_start(trainer=user, queue=queue)
    except ApplicationError as exc:
        return _render_home(request, start_error=(queue.pk, exc.message), status=exc.status_code)
    return redirect("chat-session", session_id=session.pk)


# ------------------------------------------------------------------------ one session


def _state(turn: dict[str, Any], requested: bool) -> str:
    """What the page shows for the unsettled model turn."""
    if turn["status"] == Turn.Status.READY and turn["alternatives"]:
        return "ready"  # the replies, to rank
    if turn["status"] == Turn.Status.FAILED:
        return "failed"  # the reason, Retry, or write it
    if turn["status"] == Turn.Status.PENDING and not requested:
        return "writing"  # the trainer said they would write it (a demonstration)
    return "waiting"  # the model is writing: typing indicator, polled


def _session_context(
    request: HttpRequest,
    session: Session,
    *,
    error: ApplicationError | None = None,
    form: str = "",
    values: dict[str, Any] | None = None,
    say_text: str = "",
    demo: bool = False,
    reply_text: str = "",
    label_values: dict[str, Any] | None = None,
    label_turn: int | None = None,
) -> dict[str, Any]:
    payload = session_reads.session_payload(session)
    turns = payload["turns"]
    last = turns[-1] if turns else None
    live = (
        last if last and last["role"] == Turn.Role.ASSISTANT and last["status"] != Turn.Status.DONE else None
    )
    active = session.status == Session.Status.ACTIVE
    context: dict[str, Any] = {
        "session": session,
        "payload": payload,
        "queue": session.queue,
        "template": session.queue.template,
        "log": turns[:-1] if live else turns,
        "live": live,
        "active": active,
        "error": error,
        "error_form": form if error else "",
        "say_text": say_text,
        "demo": demo,
        "reply_text": reply_text,
        # After a refused message the composer comes back with it, whatever the session's state.
        "show_composer": payload["can_say"] or (error is not None and form == "say"),
        "criteria": [],
        "labels": [],
        "state": "",
        "error_field": _error_field(error, form),
    }
    if live is not None:
        turn = session_reads.session_turn_get(session=session, turn_id=live["id"])
        context.update(state=_state(live, requested=turn.requested_at is not None), live_turn=turn)
        context["poll"] = context["state"] == "waiting" and active
    context["error_at"] = _error_place(form, context["state"] if active else "") if error else ""
    if session.queue.template.mode == SessionTemplate.Mode.REDTEAM:
        # A red-team turn is labelled (its worst reply picked), not ranked.
        context.update(
            redteam_page_context(session, turns, live, posted=label_values, posted_turn=label_turn)
        )
        if error and form in ("label", "finish"):
            context["error_at"] = form
        return context
    if context["state"] != "ready":
        return context
    assert live is not None
    labels = [a["label"] for a in live["alternatives"]]
    criteria = selectors.rubric_criteria(session.queue.rubric)
    values = values or values_from_post({}, criteria, labels)
    context.update(
        labels=labels,
        values=values,
        criteria=_criteria_view(criteria, labels, values),
        has_flags=any(c.kind == Criterion.Kind.FLAG for c in criteria),
        rank_slots=range(1, len(labels) + 1),
    )
    return context


#: Where each form's refusal is shown when that form is on the page (else above the conversation).
_ERROR_PLACES = {"rank": {"ready"}, "reply": {"writing", "failed"}, "retry": {"failed", "waiting"}}


def _error_place(form: str, state: str) -> str:
    if form == "say":
        return "composer"  # the composer is shown again, with the text, whatever the turn's state
    return "turn" if state in _ERROR_PLACES.get(form, set()) else "top"


def _error_field(error: ApplicationError | None, form: str) -> str:
    """The field to put the focus on after a refused action (the page's script reads it)."""
    if error is None:
        return ""
    field = error.field or ""
    if form == "rank":
        if field.startswith("criteria."):
            return "criterion-" + field.split(".")[1]
        return {"ranking": "ranking_text", "rewrite": "rewrite", "rationale": "rationale"}.get(field, "")
    return {"say": "say-text", "reply": "reply-text"}.get(form, "")


def _render_session(
    request: HttpRequest,
    session: Session,
    *,
    status: int = 200,
    extra: dict[str, Any] | None = None,
    **kwargs: Any,
) -> HttpResponse:
    """The session page; a red-team session's has the label forms and the verdict."""
    context = _session_context(request, session, **kwargs)
    context.update(extra or {})
    redteam = context.get("redteam", False)
    page = "labeling/redteam_session.html" if redteam else "labeling/chat_session.html"
    return render(request, page, context, status=status)


@login_required
@require_GET
def chat_session(request: HttpRequest, session_id: int) -> HttpResponse:
    """The session; ``?fragment=turn&turn=<id>`` is the model's turn alone, for the page's poll."""
    session = session_reads.session_get_for_trainer(trainer=_user(request), session_id=session_id)
    if request.GET.get("fragment") == "turn":
        return _turn_fragment(request, session)
    draft = request.session.pop(_DRAFT_KEY.format(session.pk), "")
    return _render_session(request, session, say_text=draft)


def _turn_fragment(request: HttpRequest, session: Session) -> HttpResponse:
    """The model's turn while it is being made; once it is settled (or another turn took its
    place), an empty answer that asks the page to reload, which then shows the whole session."""
    context = _session_context(request, session)
    live = context["live"]
    if live is None or str(live["id"]) != request.GET.get("turn", "") or not context["active"]:
        response = HttpResponse("")
        response["HX-Refresh"] = "true"
        return response
    return render(request, "labeling/_chat_turn.html", context)


def _back(session: Session) -> HttpResponse:
    if session.queue.template.mode == SessionTemplate.Mode.REDTEAM:
        return redirect("redteam-session", session_id=session.pk)
    return redirect("chat-session", session_id=session.pk)


@login_required
@require_POST
def chat_say(request: HttpRequest, session_id: int) -> HttpResponse:
    """The trainer's next message; with ``demo`` on, the trainer writes the model's reply too."""
    session = session_reads.session_get_for_trainer(trainer=_user(request), session_id=session_id)
    text = request.POST.get("text", "")
    demo = request.POST.get("demo") == "on"
    try:
        session_writes.session_say(session=session, text=text, generate=not demo)
    except ApplicationError as exc:
        return _render_session(
            request, session, status=exc.status_code, error=exc, form="say", say_text=text, demo=demo
        )
    return _back(session)


@login_required
@require_POST
def chat_rank(request: HttpRequest, session_id: int, turn_id: int) -> HttpResponse:
    """The trainer's ranking of a turn's replies: an ordinary judgment of the turn's assignment
    (fetched through the assignment gatekeeper); the conversation keeps the best one, or theirs."""
    user = _user(request)
    session = session_reads.session_get_for_trainer(trainer=user, session_id=session_id)
    turn = session_reads.session_turn_get(session=session, turn_id=turn_id)
    if turn.assignment_id is None:
        exc = Conflict("This turn has no replies to rank.")
        return _render_session(request, session, status=exc.status_code, error=exc, form="rank")
    assignment = selectors.assignment_get_for_rater(rater=user, assignment_id=turn.assignment_id)
    criteria = selectors.rubric_criteria(assignment.item.queue.rubric)
    labels = list(selectors.LABELS[: len(assignment.shown_order)])
    try:
        judgment, created = submit_from_form(request, assignment, criteria, labels)
    except ApplicationError as exc:
        values = values_from_post(request.POST, criteria, labels)
        return _render_session(
            request, session, status=exc.status_code, error=exc, form="rank", values=values
        )
    if not created:
        notice, stale = submission_notice(request.POST, judgment, created, labels)
        (messages.warning if stale else messages.info)(request, notice)
    return _back(session)


@login_required
@require_POST
def chat_reply(request: HttpRequest, session_id: int, turn_id: int) -> HttpResponse:
    """The trainer writes the model's turn (a demonstration, or after a failure)."""
    session = session_reads.session_get_for_trainer(trainer=_user(request), session_id=session_id)
    turn = session_reads.session_turn_get(session=session, turn_id=turn_id)
    text = request.POST.get("text", "")
    try:
        session_writes.turn_write_reply(turn=turn, text=text)
    except ApplicationError as exc:
        return _render_session(
            request, session, status=exc.status_code, error=exc, form="reply", reply_text=text
        )
    return _back(session)


@login_required
@require_POST
def chat_retry(request: HttpRequest, session_id: int, turn_id: int) -> HttpResponse:
    session = session_reads.session_get_for_trainer(trainer=_user(request), session_id=session_id)
    turn = session_reads.session_turn_get(session=session, turn_id=turn_id)
    try:
        session_writes.turn_retry(turn=turn)
    except ApplicationError as exc:
        return _render_session(request, session, status=exc.status_code, error=exc, form="retry")
    return _back(session)


@login_required
@require_POST
def chat_branch(request: HttpRequest, session_id: int) -> HttpResponse:
    """Go back to a turn of the branch (the page asked to confirm). Going back to the trainer's own
    message puts it in the composer again, to change and send."""
    session = session_reads.session_get_for_trainer(trainer=_user(request), session_id=session_id)
    turn = session_reads.session_turn_get(session=session, turn_id=request.POST.get("turn"))
    try:
        session_writes.session_branch(session=session, turn=turn)
    except ApplicationError as exc:
        return _render_session(request, session, status=exc.status_code, error=exc, form="branch")
    if turn.role == Turn.Role.USER:
        request.session[_DRAFT_KEY.format(session.pk)] = turn.text
    messages.info(request, "Went back: the turns after that point stay in the data, marked abandoned.")
    return _back(session)


@login_required
@require_POST
def chat_finish(request: HttpRequest, session_id: int) -> HttpResponse:
    session = session_reads.session_get_for_trainer(trainer=_user(request), session_id=session_id)
    try:
        session = session_writes.session_finish(session=session)
    except ApplicationError as exc:
        return _render_session(request, session, status=exc.status_code, error=exc, form="finish")
    messages.success(request, "This conversation is finished. Thank you!")
    return _back(session)
