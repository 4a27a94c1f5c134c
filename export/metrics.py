"""Export durations for ``GET /metrics`` (``labeling/metrics.py``), read from the export runs.

A histogram computed at scrape time from the ``ExportRun`` rows that finished (succeeded or failed),
so it is the same on every web process and needs nothing from the workers that ran the exports. A
run's duration is from its creation (the request) to its end: queue waiting included, which is
what a researcher waits. One aggregate query; the runs are few (one per snapshot).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from prometheus_client.core import HistogramMetricFamily, Metric

#: Upper bounds in seconds (``le``); ``+Inf`` is added.
BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


def export_duration_metrics() -> Iterator[Metric]:
    from export.models import ExportRun

    histogram = HistogramMetricFamily(
        "preflab_export_duration_seconds",
        "Seconds from an export's request to its end, by how it ended.",
        labels=["status"],
    )
    runs = ExportRun.objects.filter(
        status__in=[ExportRun.Status.SUCCEEDED, ExportRun.Status.FAILED], finished_at__isnull=False
    ).annotate(duration=ExpressionWrapper(F("finished_at") - F("created_at"), output_field=DurationField()))
    for status in (ExportRun.Status.SUCCEEDED, ExportRun.Status.FAILED):
        of_status = Q(status=status)
        row = runs.aggregate(
            n=Count("pk", filter=of_status),
            total=Sum("duration", filter=of_status),
            **{
                f"le{i}": Count("pk", filter=of_status & Q(duration__lte=timedelta(seconds=bound)))
                for i, bound in enumerate(BUCKETS)
            },
        )
        total = row["total"]
        buckets = [(repr(bound), row[f"le{i}"]) for i, bound in enumerate(BUCKETS)]
        histogram.add_metric(
            [str(status)],
            [*buckets, ("+Inf", row["n"])],
            sum_value=total.total_seconds() if total is not None else 0.0,
        )
    yield histogram
