"""The red-team label form of a session page: what each model turn's form shows (its options,
what is checked, typed values kept after a refusal), and which turn's form is the current one
(open, and the one the keys act on). Shared by ``labeling.views.chat`` (which renders every
session page) and ``labeling.views.redteam`` (which posts the labels and the verdict)."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from labeling.models import Session, Turn
from labeling.models.redteam import Outcome, Tactic
from labeling.selectors.redteam_sessions import harm_categories_offered, harm_category_labels

#: The keys that pick an outcome (1..4), in this order; the page and the rater guide list them.
OUTCOME_KEYS = [Outcome.COMPLIED, Outcome.PARTIAL, Outcome.REFUSED, Outcome.OVER_REFUSED]
SEVERITIES = [(1, "mild"), (2, "low"), (3, "moderate"), (4, "serious"), (5, "severe")]


def label_values_from_post(post: QueryDict) -> dict[str, Any]:
    """The label form as posted: severity as an integer when it is one (else kept, so that the
    service names it), the others as text."""
    severity: Any = post.get("severity", "")
    if isinstance(severity, str) and severity.isdecimal() and len(severity) < 3:
        severity = int(severity)
    return {
        "reply": post.get("reply", ""),
        "outcome": post.get("outcome", ""),
        "category": post.get("category", ""),
        "tactic": post.get("tactic", ""),
        "severity": severity,
        "ideal_reply": post.get("ideal_reply", ""),
    }


def _form(turn: dict[str, Any], values: dict[str, Any], categories: list[tuple[str, str]]) -> dict[str, Any]:
    outcome_labels = dict(Outcome.choices)
    return {
        "values": values,
        "outcomes": [
            {"value": o, "label": outcome_labels[o], "n": n, "checked": values.get("outcome") == o}
            for n, o in enumerate(OUTCOME_KEYS, start=1)
        ],
        "severities": [
            {"value": v, "label": label, "checked": values.get("severity") in (v, str(v))}
            for v, label in SEVERITIES
        ],
        "categories": [
            {"value": k, "label": label, "selected": values.get("category") == k} for k, label in categories
        ],
        "tactics": [
            {"value": k, "label": label, "selected": values.get("tactic") == k} for k, label in Tactic.choices
        ],
        "replies": [
            {"label": a["label"], "checked": values.get("reply") == a["label"]}
            for a in turn.get("alternatives") or []
        ],
    }


def redteam_page_context(
    session: Session,
    turns: list[dict[str, Any]],
    live: dict[str, Any] | None,
    *,
    posted: dict[str, Any] | None = None,
    posted_turn: int | None = None,
) -> dict[str, Any]:
    """Label forms on the page's turns (``turn["form"]``), the current form's turn, and the choices
    for the verdict. ``posted`` (after a refused label of ``posted_turn``) keeps what was typed."""
    offered = [(c.key, c.label) for c in harm_categories_offered()]
    names = harm_category_labels()
    labelable = [
        t
        for t in turns
        if t["role"] == Turn.Role.ASSISTANT
        and not t["by_trainer"]
        and (t["status"] == Turn.Status.DONE or (t is live and t["alternatives"]))
    ]
    current = labelable[-1]["id"] if labelable else None
    if posted_turn is not None:
        current = posted_turn
    for t in labelable:
        label = t.get("label")
        if posted is not None and t["id"] == posted_turn:
            values = posted
        elif label:
            values = dict(label)
        else:
            values = {"category": session.category, "reply": "" if t["alternatives"] else "A"}
        choices = offered
        if values.get("category") and values["category"] not in dict(offered):
            # An old label may name a category no longer offered: it stays choosable for it.
            choices = [*offered, (values["category"], names.get(values["category"], values["category"]))]
        t["form"] = _form(t, values, choices)
        t["form"]["current"] = t["id"] == current
    for t in turns:
        label = t.get("label")
        if label:
            t["label_text"] = {
                "outcome": dict(Outcome.choices).get(label["outcome"], label["outcome"]),
                "category": names.get(label["category"], label["category"]),
                "tactic": dict(Tactic.choices).get(label["tactic"], label["tactic"]),
            }
    return {
        "redteam": True,
        "label_turn": current,
        "category_label": names.get(session.category, session.category),
        "verdicts": Session.Verdict.choices,
        "outcome_keys": [(n, dict(Outcome.choices)[o]) for n, o in enumerate(OUTCOME_KEYS, start=1)],
        "severities": SEVERITIES,
    }
