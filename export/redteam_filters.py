"""The export filters of red-team data, validated: ``sources`` and ``harm_categories``.

* ``sources``: where a pair view's rows come from, any of ``judgments`` (the default) and
  ``redteam`` (training pairs from confirmed training-side attacks, ``export.formats.redteam``);
  the default is dropped, so an export without red-team data stores and writes what it always did.
* ``harm_categories``: HarmCategory keys; red-team rows of these categories only. The red-team
  views (``redteam_eval``, ``redteam_attempts``) take no other filter.

``export.spec`` calls these; errors are ``ApplicationError`` (400) naming ``filters.<key>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from export.selectors.redteam import REDTEAM_VIEWS
from labeling.errors import ApplicationError
from labeling.models import HarmCategory

#: Where a pair view's rows come from: rater judgments, confirmed red-team attacks, or both.
SOURCES = ("judgments", "redteam")
DEFAULT_SOURCES = ["judgments"]
#: The filters the red-team views (and the red-team part of a pair view) take.
REDTEAM_FILTERS = ("harm_categories",)


def _strings(value: Any, *, key: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ApplicationError(
            f"Filter '{key}' is empty; leave it out to keep everything.", field=f"filters.{key}"
        )
    out: set[str] = set()
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise ApplicationError(
                f"Filter '{key}' takes a list of non-empty strings; {v!r} is not one.", field=f"filters.{key}"
            )
        out.add(v.strip())
    return sorted(out)


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def redteam_filters_clean(filters: dict[str, Any]) -> dict[str, Any]:
    """The normalized ``sources`` and ``harm_categories`` of a filters object (sorted, unique)."""
    clean: dict[str, Any] = {}
    if filters.get("sources") is not None:
        sources = _strings(filters["sources"], key="sources")
        bad = [s for s in sources if s not in SOURCES]
        if bad:
            raise ApplicationError(
                f"Unknown source {_shown(bad[0])}. Supported: {', '.join(SOURCES)}.", field="filters.sources"
            )
        if sources != DEFAULT_SOURCES:
            clean["sources"] = sources
    if filters.get("harm_categories") is not None:
        categories = _strings(filters["harm_categories"], key="harm_categories")
        keys = set(HarmCategory.objects.values_list("key", flat=True))
        unknown = [c for c in categories if c not in keys]
        if unknown:
            raise ApplicationError(
                f"Filter 'harm_categories': no harm category {', '.join(_shown(c) for c in unknown[:10])}; "
                f"the categories are {', '.join(sorted(keys))}.",
                field="filters.harm_categories",
            )
        clean["harm_categories"] = categories
    return clean


def redteam_filters_check(filters: dict[str, Any], *, fmt: str, pair_views: Sequence[str]) -> None:
    """Which filters apply to which rows: the red-team views take ``harm_categories`` only; red-team
    pairs come only through the pair views; without judgments, the judgment filters mean nothing."""
    if fmt in REDTEAM_VIEWS:
        for key in filters:
            if key not in REDTEAM_FILTERS:
                raise ApplicationError(
                    f"Filter '{key}' does not apply to the {fmt} view (red-team attacks); it takes "
                    f"{', '.join(REDTEAM_FILTERS)}.",
                    field=f"filters.{key}",
                )
        return
    sources = filters.get("sources", DEFAULT_SOURCES)
    if "redteam" in sources and fmt not in pair_views:
        raise ApplicationError(
            f"Source 'redteam' (training pairs from confirmed attacks) applies to the pairwise views "
            f"(trl, hh, helpsteer), not '{fmt}'; for the red-team test set use the redteam_eval view.",
            field="filters.sources",
        )
    if "harm_categories" in filters and "redteam" not in sources:
        raise ApplicationError(
            "Filter 'harm_categories' applies to red-team data: add 'redteam' to sources, or use the "
            "redteam_eval or redteam_attempts view.",
            field="filters.harm_categories",
        )
    if "judgments" not in sources:
        for key in filters:
            if key not in ("sources", *REDTEAM_FILTERS):
                raise ApplicationError(
                    f"Filter '{key}' selects judgments, and sources leave judgments out.",
                    field=f"filters.{key}",
                )
