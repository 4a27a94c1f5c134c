"""The judging page's form: reading what a rater submitted, and what the page shows.

The page and the API record answers through the same service (``judgment_submit``); this
module only turns form fields into its arguments and a stored answer back into form values.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from labeling import selectors, services
from labeling.errors import ApplicationError, decimal_int
from labeling.models import Assignment, ContentCategory, Criterion, Judgment, Queue, User
from labeling.templatetags.preflab import word_diff

SCALE = [
    (-3, "A is much better"),
    (-2, "A is better"),
    (-1, "A is slightly better"),
    (0, "Tie"),
    (1, "B is slightly better"),
    (2, "B is better"),
    (3, "B is much better"),
]
#: "Both are bad" is stored as a tie (preference 0) plus this judgment flag.
BOTH_BAD_FLAG = services.judgments.BOTH_BAD_FLAG
#: Keys the page uses itself (C copy overall, P as typed, ...); flag criteria get letters from the rest.
RESERVED_KEYS = set("BCDGPRSUVW")
#: "(1 = terrible, 7 = excellent)" in a Likert criterion's question or help text names its ends.
_LIKERT_ENDS = re.compile(r"\b1\s*=\s*([^,;)]+?)\s*[,;]\s*7\s*=\s*([^,;)]+)")

# ------------------------------------------------------------------------ reading the form


def _criteria_answers(post: Any, criteria: list[Criterion], labels: list[str]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for c in criteria:
        name = f"criterion-{c.key}"
        if c.kind == Criterion.Kind.PREFERENCE:
            answers[c.key] = decimal_int(post.get(name, ""))
        elif c.kind == Criterion.Kind.LIKERT:
            scores = {lab: decimal_int(post.get(f"{name}-{lab}", "")) for lab in labels}
            answers[c.key] = {lab: score for lab, score in scores.items() if score is not None} or None
        elif c.kind == Criterion.Kind.FLAG:
            answers[c.key] = post.get(name) == "on"
        else:
            answers[c.key] = post.get(name, "").strip() or None
    return answers


_RANK_SPLIT = re.compile(r"\s*>\s*")


def parse_ranking_text(text: str, labels: list[str]) -> list[list[str]] | None:
    """``"A > C = B > D"`` as ``[["A"], ["B", "C"], ["D"]]`` (best first, ``=`` ties). Empty: None."""
    text = text.strip().upper()
    if not text:
        return None
    groups: list[list[str]] = []
    for part in _RANK_SPLIT.split(text):
        group = sorted(x.strip() for x in part.split("=") if x.strip())
        if not group:
            raise ApplicationError(
                "ranking: write the labels best first, like A > C = B > D", field="ranking"
            )
        unknown = [x for x in group if x not in labels]
        if unknown:
            raise ApplicationError(
                f"ranking: {unknown[0]} is not a response here (use {', '.join(labels)})", field="ranking"
            )
        groups.append(group)
    return groups


def ranking_to_text(ranking: list[list[str]] | None) -> str:
    return " > ".join(" = ".join(group) for group in ranking or [])


def float_or_none(raw: str) -> float | None:
    """A non-negative finite number, else None ("inf" and "nan" are no time spent)."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def submission_notice(post: Any, judgment: Judgment, created: bool, labels: list[str]) -> tuple[str, bool]:
    """What to tell the rater after a submission: (message, whether it is a warning). A replay of
    the same answer is "Already saved."; a different answer for an item already judged (a stale
    second tab) was not saved, and the rater is told so, with the answer that is stored."""
    if created:
        return "Saved.", False
    stored = answer_text(judgment)
    posted_pref = post.get("preference", "")
    stored_pref = (
        "bad"
        if BOTH_BAD_FLAG in (judgment.flags or []) and judgment.preference == 0
        else str(judgment.preference)
    )
    same = (
        posted_pref == stored_pref
        if judgment.preference is not None
        else _same_ranking(post.get("ranking_text", ""), judgment.ranking, labels)
    )
    if same:
        return "Already saved.", False
    return (
        f"This item was already judged, in another tab or window: the stored answer is {stored}. "
        "The answer you just sent was not saved.",
        True,
    )


def _same_ranking(text: str, stored: Any, labels: list[str]) -> bool:
    try:
        return parse_ranking_text(text, labels) == stored
    except ApplicationError:
        return False


def answer_text(judgment: Judgment) -> str:
    """A stored overall answer as the rater wrote it: "A is better", "both are bad", "A > C = B"."""
    if judgment.preference is None:
        return f"“{ranking_to_text(judgment.ranking)}”"
    if judgment.preference == 0 and BOTH_BAD_FLAG in (judgment.flags or []):
        return "“Both are bad”"
    return f"“{dict(SCALE)[judgment.preference]}”"


def submit_from_form(
    request: HttpRequest, assignment: Assignment, criteria: list[Criterion], labels: list[str]
) -> tuple[Judgment, bool]:
    """Read the judging form and record it through ``judgment_submit``, the API's service."""
    post = request.POST
    raw_pref = post.get("preference", "")
    flags: list[str] = []
    preference: int | None = None
    if raw_pref == "bad":
        preference, flags = 0, [BOTH_BAD_FLAG]
    else:
        preference = decimal_int(raw_pref)
    warn = post.get("warn_category", "")
    if warn:
        if warn not in ContentCategory.values:
            raise ApplicationError(f"warn_category: unknown category {warn!r}", field="warn_category")
        flags.append(f"{selectors.CONTENT_WARNING_PREFIX}{warn}")
    return services.judgment_submit(
        assignment=assignment,
        preference=preference,
        ranking=parse_ranking_text(post.get("ranking_text", ""), labels),
        criteria=_criteria_answers(post, criteria, labels),
        flags=flags,
        rationale=post.get("rationale", ""),
        rewrite=post.get("rewrite", ""),
        active_seconds=float_or_none(post.get("active_seconds", "")),
    )


# ------------------------------------------------------------------- building the page


def values_from_post(post: Any, criteria: list[Criterion], labels: list[str]) -> dict[str, Any]:
    crit: dict[str, Any] = {}
    for c in criteria:
        name = f"criterion-{c.key}"
        if c.kind == Criterion.Kind.LIKERT:
            crit[c.key] = {lab: post.get(f"{name}-{lab}", "") for lab in labels}
        elif c.kind == Criterion.Kind.FLAG:
            crit[c.key] = post.get(name) == "on"
        else:
            crit[c.key] = post.get(name, "")
    return {
        "preference": post.get("preference", ""),
        "criteria": crit,
        "rationale": post.get("rationale", ""),
        "rewrite": post.get("rewrite", ""),
        "ranking_text": post.get("ranking_text", ""),
        "warn_category": post.get("warn_category", ""),
        "active_seconds": float_or_none(post.get("active_seconds", "")) or 0.0,
    }


def values_from_judgment(previous: dict[str, Any]) -> dict[str, Any]:
    flags = previous.get("flags") or []
    pref = previous.get("preference")
    crit: dict[str, Any] = {}
    for key, value in (previous.get("criteria") or {}).items():
        if isinstance(value, dict):
            crit[key] = {lab: str(v) for lab, v in value.items()}
        elif isinstance(value, bool):
            crit[key] = value
        else:
            crit[key] = "" if value is None else str(value)
    warn = next((f.split(":", 1)[1] for f in flags if f.startswith(selectors.CONTENT_WARNING_PREFIX)), "")
    return {
        "preference": "bad" if BOTH_BAD_FLAG in flags and pref == 0 else ("" if pref is None else str(pref)),
        "criteria": crit,
        "rationale": previous.get("rationale") or "",
        "rewrite": previous.get("rewrite") or "",
        "ranking_text": ranking_to_text(previous.get("ranking")),
        "warn_category": warn,
        "active_seconds": previous.get("active_seconds") or 0.0,
    }


def flag_hotkeys(criteria: list[Criterion]) -> dict[str, str]:
    """A letter per flag criterion: its key's first free letter, else its question's, else any free one."""
    used = set(RESERVED_KEYS)
    keys: dict[str, str] = {}
    for c in criteria:
        if c.kind != Criterion.Kind.FLAG:
            continue
        pool = [ch.upper() for ch in c.key + c.question + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if ch.isalpha()]
        letter = next((ch for ch in pool if "A" <= ch <= "Z" and ch not in used), "")
        if letter:
            used.add(letter)
            keys[c.key] = letter
    return keys


def _criteria_view(criteria: list[Criterion], labels: list[str], values: dict[str, Any]) -> list[dict]:
    hotkeys = flag_hotkeys(criteria)
    out = []
    for c in criteria:
        value = values["criteria"].get(c.key)
        row: dict[str, Any] = {"c": c, "hotkey": hotkeys.get(c.key, "")}
        if c.kind == Criterion.Kind.PREFERENCE:
            row["options"] = [
                {"value": v, "label": label, "n": i, "checked": value == str(v)}
                for i, (v, label) in enumerate(SCALE, start=1)
            ]
        elif c.kind == Criterion.Kind.LIKERT:
            value = value or {}
            ends = _LIKERT_ENDS.search(f"{c.question} {c.help_text}")
            row["ends"] = (ends.group(1).strip(), ends.group(2).strip()) if ends else ("lowest", "highest")
            row["rows"] = [
                {
                    "label": lab,
                    "options": [{"n": n, "checked": value.get(lab) == str(n)} for n in range(1, 8)],
                }
                for lab in labels
            ]
        elif c.kind == Criterion.Kind.FLAG:
            row["checked"] = bool(value)
        else:
            row["text"] = value or ""
        out.append(row)
    return out


def _error_input(error: ApplicationError | None) -> str:
    """The form field a rater must fix first, as the page names it (``criteria.helpful`` ->
    ``criterion-helpful``), so the page can put the focus there."""
    field = (error.field or "") if error else ""
    if field.startswith("criteria."):
        return "criterion-" + field.split(".")[1]
    return {"preference": "preference", "ranking": "ranking_text"}.get(field, "")


def judging_context(
    request: HttpRequest,
    assignment: Assignment,
    *,
    values: dict[str, Any] | None = None,
    error: ApplicationError | None = None,
    notice: str = "",
    notice_warning: bool = False,
    warnings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    user: User = request.user  # type: ignore[assignment]
    queue = assignment.item.queue
    payload = selectors.assignment_payload(assignment)
    labels = [r["label"] for r in payload["responses"]]
    criteria = selectors.rubric_criteria(queue.rubric)
    values = values or values_from_post({}, criteria, labels)
    texts = [r["text"] for r in payload["responses"]]
    responses = []
    for i, r in enumerate(payload["responses"]):
        other = texts[1] if i == 0 else texts[0]
        responses.append({**r, "diff": word_diff(r["text"], other)})
    if warnings is None:
        warnings = selectors.content_warnings_for_assignment(assignment=assignment)
    is_pair = queue.kind == Queue.Kind.PAIRWISE
    scale = [
        {"value": str(v), "label": label, "key": str(i), "checked": values["preference"] == str(v)}
        for i, (v, label) in enumerate(SCALE, start=1)
    ]
    scale.append(
        {"value": "bad", "label": "Both are bad", "key": "B", "checked": values["preference"] == "bad"}
    )
    progress = selectors.rater_queue_progress(rater=user, queue=queue)
    on_screen = assignment.status == Assignment.Status.LEASED
    return {
        "assignment": assignment,
        "queue": queue,
        "payload": payload,
        "responses": responses,
        "labels": labels,
        "is_pair": is_pair,
        "scale": scale,
        "criteria": _criteria_view(criteria, labels, values),
        "values": values,
        "error": error,
        "notice": notice,
        "notice_warning": notice_warning,
        "warnings": warnings,
        "warning_labels": ", ".join(w["label"] for w in warnings),
        "categories": ContentCategory.choices,
        "rank_slots": range(1, len(labels) + 1),
        "progress": progress,
        # The item on screen is still to do: "left" counts it (the claim took it out of "available").
        "left": progress["available"] + (1 if on_screen else 0),
        "copy_overall": is_pair
        and queue.rubric.copy_overall
        and any(c.kind == Criterion.Kind.PREFERENCE for c in criteria),
        "error_field": _error_input(error),
        "can_undo": selectors.rater_last_undoable(rater=user, queue=queue) is not None,
        "submit_url": reverse("rate-assignment", args=[assignment.pk]),
        "undo_url": reverse("rate-undo", args=[queue.pk]),
    }
