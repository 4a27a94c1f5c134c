"""Rubrics: versioned criteria."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from labeling.errors import ApplicationError
from labeling.models import Criterion, Rubric

# -------------------------------------------------------------------------------- rubrics


def rubric_create(
    *, name: str, criteria: list[dict[str, Any]], description: str = "", copy_overall: bool = False
) -> Rubric:
    """Create a rubric; a name that exists gets the next version (used versions stay frozen)."""
    if not name:
        raise ApplicationError("name: required", field="name")
    keys = set()
    for i, c in enumerate(criteria):
        key = c.get("key")
        if not key:
            raise ApplicationError(f"criteria[{i}].key: required", field=f"criteria[{i}].key")
        if key in keys:
            raise ApplicationError(f"criteria[{i}].key: duplicate key {key!r}", field=f"criteria[{i}].key")
        keys.add(key)
        if c.get("kind") not in Criterion.Kind.values:
            raise ApplicationError(
                f"criteria[{i}].kind: must be one of {', '.join(Criterion.Kind.values)}",
                field=f"criteria[{i}].kind",
            )
    with transaction.atomic():
        latest = Rubric.objects.filter(name=name).order_by("-version").first()
        rubric = Rubric.objects.create(
            name=name,
            version=(latest.version + 1) if latest else 1,
            description=description,
            copy_overall=copy_overall,
        )
        Criterion.objects.bulk_create(
            Criterion(
                rubric=rubric,
                key=c["key"],
                question=c.get("question", c["key"]),
                help_text=c.get("help_text", ""),
                kind=c["kind"],
                required=bool(c.get("required", False)),
                position=i,
            )
            for i, c in enumerate(criteria)
        )
    return rubric


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
