"""Rubrics: versioned criteria."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from labeling.audit import audit_record
from labeling.errors import ApplicationError, column_check
from labeling.models import Criterion, Rubric

# -------------------------------------------------------------------------------- rubrics

#: A criterion key: what Django's ``SlugField`` takes (ASCII letters, digits, '_' and '-').
SLUG = re.compile(r"[-a-zA-Z0-9_]+")


def rubric_create(
    *, name: str, criteria: list[dict[str, Any]], description: str = "", copy_overall: bool = False
) -> Rubric:
    """Create a rubric; a name that exists gets the next version (used versions stay frozen).

    Every value is checked against its column (``column_check``): ``name`` (1..200 characters),
    ``description``, and each criterion's ``key`` (a slug of 1..64 characters, unique in the
    rubric), ``question`` (at most 500 characters; default the key), ``help_text``, ``kind`` and
    ``required``. Raises ApplicationError naming the field (``criteria[2].key``); nothing is
    written then.
    """
    if not isinstance(name, str) or not name.strip():
        raise ApplicationError("name: required", field="name")
    name = column_check(Rubric._meta.get_field("name"), name)
    description = column_check(Rubric._meta.get_field("description"), description)
    copy_overall = column_check(Rubric._meta.get_field("copy_overall"), copy_overall)
    if not isinstance(criteria, list) or not all(isinstance(c, dict) for c in criteria):
        raise ApplicationError("criteria: must be a list of criteria (objects)", field="criteria")
    clean = [_criterion_clean(i, c) for i, c in enumerate(criteria)]
    keys: set[str] = set()
    for i, c in enumerate(clean):
        if c["key"] in keys:
            raise ApplicationError(
                f"criteria[{i}].key: duplicate key {c['key']!r}", field=f"criteria[{i}].key"
            )
        keys.add(c["key"])
    with transaction.atomic():
        latest = Rubric.objects.filter(name=name).order_by("-version").first()
        rubric = Rubric.objects.create(
            name=name,
            version=(latest.version + 1) if latest else 1,
            description=description,
            copy_overall=copy_overall,
        )
        Criterion.objects.bulk_create(Criterion(rubric=rubric, position=i, **c) for i, c in enumerate(clean))
        action = "rubric.new_version" if rubric.version > 1 else "rubric.create"
        audit_record(action, target=rubric, changes={"version": rubric.version, "criteria": sorted(keys)})
    return rubric


def _criterion_clean(i: int, c: dict[str, Any]) -> dict[str, Any]:
    """One criterion's values, each checked against its column; errors name ``criteria[i].<field>``."""

    def check(key: str, value: Any) -> Any:
        return column_check(Criterion._meta.get_field(key), value, name=f"criteria[{i}].{key}")

    key = c.get("key")
    if not key:
        raise ApplicationError(f"criteria[{i}].key: required", field=f"criteria[{i}].key")
    key = check("key", key)
    if not SLUG.fullmatch(key):
        raise ApplicationError(
            f"criteria[{i}].key: letters, digits, '_' and '-' only (it names form fields and flags)",
            field=f"criteria[{i}].key",
        )
    if c.get("kind") not in Criterion.Kind.values:
        raise ApplicationError(
            f"criteria[{i}].kind: must be one of {', '.join(Criterion.Kind.values)}",
            field=f"criteria[{i}].kind",
        )
    return {
        "key": key,
        "question": check("question", c.get("question") or key),
        "help_text": check("help_text", c.get("help_text") or ""),
        "kind": c["kind"],
        "required": check("required", c.get("required", False)),
    }


def rubric_new_version(*, rubric: Rubric) -> Rubric:
    """A new, editable version of ``rubric`` (the next number under its name) with the same criteria."""
    criteria = [
        {
            "key": c.key,
            "question": c.question,
            "help_text": c.help_text,
            "kind": c.kind,
            "required": c.required,
        }
        for c in rubric.criteria.order_by("position", "id")
    ]
    return rubric_create(
        name=rubric.name, criteria=criteria, description=rubric.description, copy_overall=rubric.copy_overall
    )
