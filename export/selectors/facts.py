"""Facts for the dataset card and the estimate: rubrics, templates, Likert keys, queue names, row counts.

Each answers in a few SQL queries, never reading the judgment rows themselves.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, Q, Sum

from export.selectors.judgments import export_judgment_queryset
from export.selectors.redteam import REDTEAM_VIEWS, export_redteam_count
from export.selectors.sessions import export_session_count, export_session_queryset
from labeling.models import Criterion, Queue, Rubric, SessionTemplate

_SIZE = F("assignment__item__comparison__size")


def export_rubrics(*, rubric_ids: set[int]) -> list[Rubric]:
    """The rubric versions used, with their criteria, by name and version."""
    return list(
        Rubric.objects.filter(pk__in=rubric_ids).prefetch_related("criteria").order_by("name", "version")
    )


def export_templates(*, filters: dict[str, Any]) -> list[SessionTemplate]:
    """The templates (conversation queues) of the sessions an ``sft`` export reads, by queue name."""
    queue_ids = export_session_queryset(filters=filters).order_by().values("queue_id")
    return list(
        SessionTemplate.objects.filter(queue_id__in=queue_ids)
        .select_related("queue")
        .prefetch_related("generators")
        .order_by("queue__name", "queue_id")
    )


def export_likert_keys(*, filters: dict[str, Any]) -> list[str]:
    """Keys of the Likert criteria in the rubrics of the filtered judgments, sorted."""
    rubric_ids = export_judgment_queryset(filters=filters).order_by().values("rubric_id").distinct()
    return sorted(
        set(
            Criterion.objects.filter(rubric_id__in=rubric_ids, kind=Criterion.Kind.LIKERT).values_list(
                "key", flat=True
            )
        )
    )


def export_queue_names() -> dict[int, str]:
    return dict(Queue.objects.values_list("id", "name"))


def export_estimate(
    *, filters: dict[str, Any], format: str, aggregation: str, pairs: bool = False
) -> dict[str, Any]:
    """A quick row estimate for validated filters: counts in SQL, no rows read.

    ``rows`` is an upper bound: ties, ``min_judgments`` and ``min_agreement`` are applied only
    when the export runs, and so is pooling (aggregated rows count each comparison's pairs, so a
    pair held by two comparisons counts twice). For ``sft``, ``rows`` counts the
    finished sessions (a session with no settled reply writes none) and the rest is 0; for the
    red-team views, the attacks; red-team pairs (``sources``) are added to ``rows``.
    """
    if format == "sft":
        sessions = export_session_count(filters=filters)
        return {"judgments": 0, "rankings": 0, "comparisons": 0, "rows": sessions, "upper_bound": True}
    categories = filters.get("harm_categories")
    if format in REDTEAM_VIEWS:
        rows = export_redteam_count(format=format, categories=categories)
        return {"judgments": 0, "rankings": 0, "comparisons": 0, "rows": rows, "upper_bound": True}
    redteam_rows = (
        export_redteam_count(format=format, categories=categories)
        if "redteam" in filters.get("sources", ())
        else 0
    )
    if "judgments" not in filters.get("sources", ("judgments",)):
        return {"judgments": 0, "rankings": 0, "comparisons": 0, "rows": redteam_rows, "upper_bound": True}
    qs = export_judgment_queryset(filters=filters).order_by()
    counts = qs.aggregate(
        judgments=Count("id"),
        rankings=Count("id", filter=Q(ranking__isnull=False)),
        comparisons=Count("assignment__item__comparison_id", distinct=True),
        ranking_pairs=Sum(
            (_SIZE * (_SIZE - 1)) / 2,
            filter=Q(ranking__isnull=False),
        ),
    )
    judgments = counts["judgments"] or 0
    rankings = counts["rankings"] or 0
    ranking_pairs = int(counts["ranking_pairs"] or 0)
    if format in ("native", "ratings"):
        rows = judgments
    elif format == "rankings":
        rows = ranking_pairs if pairs else rankings
    elif aggregation == "raw":
        rows = judgments - rankings + ranking_pairs
    else:
        comparison_pairs = (
            qs.values("assignment__item__comparison_id")
            .distinct()
            .aggregate(n=Sum((_SIZE * (_SIZE - 1)) / 2))["n"]
        )
        rows = int(comparison_pairs or 0)
    return {
        "judgments": judgments,
        "rankings": rankings,
        "comparisons": counts["comparisons"] or 0,
        "rows": rows + redteam_rows,
        "upper_bound": True,
    }
