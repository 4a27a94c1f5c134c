"""Who may start a red-team session, and with what; how one may end. ``session_start`` and
``session_finish`` call these, so the pages and the API share every rule (one door)."""

from __future__ import annotations

from typing import Any

from labeling.errors import ApplicationError
from labeling.models import Queue, Session, SessionTemplate, User
from labeling.services.attacks import harm_category_check
from model_runner.models import Generator

#: Where a trainer turns on disturbing work (the profile page).
OPT_IN_PAGE = "/rate/profile/"


def session_start_check(
    *, trainer: User, queue: Queue, target: Generator | None, category: str
) -> dict[str, Any]:
    """The fields of a new session of ``queue``: a red-team template's (or a queue marked
    disturbing) needs a trainer who opted in to disturbing work (else 403); a red-team session
    names its ``target`` (one of the template's generators, the only one that answers it) and
    the harm ``category`` it tries. A 400 names the field."""
    redteam = queue.template.mode == SessionTemplate.Mode.REDTEAM
    if (redteam or queue.disturbing) and not trainer.disturbing_opt_in:
        raise ApplicationError(
            "Red-team sessions show disturbing material: opt in to disturbing work on your profile "
            f"({OPT_IN_PAGE}) before you start one.",
            status_code=403,
        )
    if not redteam:
        if target is not None or category:
            raise ApplicationError("target: only a red-team session names a target", field="target")
        return {}
    if target is None or not queue.template.generators.filter(pk=target.pk).exists():
        names = ", ".join(queue.template.generators.order_by("id").values_list("name", flat=True))
        raise ApplicationError(f"target: pick the model to attack, one of {names}", field="target")
    return {"target": target, "category": harm_category_check(category, field="category")}


def session_finish_check(session: Session) -> None:
    """A red-team session ends with a verdict: ``redteam_session_finish`` sets it, then ends it."""
    if session.queue.template.mode == SessionTemplate.Mode.REDTEAM and not session.verdict:
        raise ApplicationError(
            "verdict: a red-team session ends with a verdict (success, partial or failure)",
            field="verdict",
        )
