"""Prometheus metrics: ``GET /metrics``.

What a scrape returns, in two parts:

- **Per-process counters and histograms** of the web processes: requests, responses and latencies
  per route (view name) and method, from django-prometheus' two middlewares
  (``django_http_*``). Under gunicorn they are kept in prometheus_client's **multiprocess mode**:
  each worker writes its values to files under ``PROMETHEUS_MULTIPROC_DIR`` and a scrape, whichever
  worker answers it, adds up every worker's files, the files of workers that have exited included,
  so a counter never jumps back when the next scrape lands on another worker.
  ``deploy/gunicorn.conf.py`` sets the folder (``<var>/prometheus/web`` unless the variable is
  set), empties it when gunicorn starts and marks each exited worker dead. Without the variable
  (``runserver``, the test client) the process's own registry is shown.
- **Gauges read at scrape time** (``PreflabCollector``), the same whichever process answers: the
  Celery queue depths from the broker, and a few cheap, indexed or bounded queries on the database
  (open leases, judgments in the last minute, generation tokens and seconds). Apps add their own
  (``register_collector``: the export durations, ``export/metrics.py``). If the database or the
  broker does not answer, the scrape still succeeds: ``preflab_database_up`` or
  ``preflab_broker_up`` is 0 and that part's other families are left out.

Who may read it: with ``PREFLAB_METRICS_TOKEN`` set, a request carrying
``Authorization: Bearer <token>``; without it, only a request from the loopback address that came
through no proxy (no ``X-Forwarded-For``: a proxy on the same host would make every visitor look
local). ``MetricsMiddleware`` answers before the host check, the HTTPS redirect, sessions and login,
like the health probes, so Prometheus can scrape a process by its address; scrapes are not counted
in the request metrics.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
#: Queues always reported, even before their first message (plus the generators' pinned queues).
BASE_QUEUES = ("default", "gpu", "interactive")
#: Seconds the broker gets to answer a scrape.
BROKER_TIMEOUT_SECONDS = 2.0
#: Judgments in the last minute are counted among at most this many newest rows (bounded cost:
#: ``labeling_judgment`` has no index on its time; its ids grow with it).
JUDGMENT_SCAN_LIMIT = 10_000

#: What an app contributes to a scrape: a function returning metric families read from the database.
DatabaseMetrics = Callable[[], Iterable[Metric]]
_collectors: list[DatabaseMetrics] = []


def register_collector(collect: DatabaseMetrics) -> None:
    """Add an app's database gauges to every scrape (called from an ``AppConfig.ready``; once)."""
    if collect not in _collectors:
        _collectors.append(collect)


# --- what the database says ----------------------------------------------------------------------


def _open_leases() -> Metric:
    from django.utils import timezone

    from labeling.models import Assignment

    # assignment_status_expiry_idx (status, expires_at) answers it.
    count = Assignment.objects.filter(status=Assignment.Status.LEASED, expires_at__gt=timezone.now()).count()
    return GaugeMetricFamily(
        "preflab_open_leases", "Assignments leased to a rater and not yet expired.", value=count
    )


def _judgments_last_minute() -> Metric:
    from django.utils import timezone

    from labeling.models import Judgment

    since = timezone.now() - timedelta(minutes=1)
    newest = Judgment.objects.order_by("-pk").values("pk")[:JUDGMENT_SCAN_LIMIT]
    count = Judgment.objects.filter(pk__in=newest, created_at__gte=since).count()
    return GaugeMetricFamily(
        "preflab_judgments_last_minute",
        f"Judgments recorded in the last 60 seconds (counted among the newest {JUDGMENT_SCAN_LIMIT}).",
        value=count,
    )


def _generation() -> Iterator[Metric]:
    from django.db.models import Q, Sum

    from model_runner.models import GenerationJob

    totals = GenerationJob.objects.aggregate(
        tokens=Sum("completion_tokens"),
        seconds=Sum("generation_seconds"),
        running_tokens=Sum("completion_tokens", filter=Q(status=GenerationJob.Status.RUNNING)),
        running_seconds=Sum("generation_seconds", filter=Q(status=GenerationJob.Status.RUNNING)),
    )
    yield CounterMetricFamily(
        "preflab_generation_completion_tokens",
        "Completion tokens generated by all generation jobs (tokens per second: "
        "rate(..._tokens_total) / rate(preflab_generation_seconds_total)).",
        value=totals["tokens"] or 0,
    )
    yield CounterMetricFamily(
        "preflab_generation_seconds",
        "Model seconds spent generating those tokens, as the jobs record them.",
        value=totals["seconds"] or 0.0,
    )
    seconds = totals["running_seconds"] or 0.0
    yield GaugeMetricFamily(
        "preflab_generation_tokens_per_second",
        "Completion tokens per model second of the running generation jobs (0 when none runs).",
        value=(totals["running_tokens"] or 0) / seconds if seconds else 0.0,
    )


def _database_metrics() -> Iterator[Metric]:
    yield _open_leases()
    yield _judgments_last_minute()
    yield from _generation()
    for collect in _collectors:
        yield from collect()


# --- what the broker says -------------------------------------------------------------------------


def queue_names() -> list[str]:
    """``default``, ``gpu``, ``interactive`` and every queue an active generator is pinned to."""
    from model_runner.models import Generator

    pinned = Generator.objects.filter(is_active=True).values_list("queue", flat=True).distinct()
    return sorted(set(BASE_QUEUES) | {name for name in pinned if name})


def queue_depths(names: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue (taken but unacknowledged ones not included).

    Asked as a passive queue declaration, which each kombu transport answers from the broker
    itself: Redis adds up ``LLEN`` of the queue's list and its priority lists, the filesystem broker
    counts the queue's ``*.<queue>.msg`` files in its folder, RabbitMQ returns its message count. A
    queue the broker does not know yet (Redis: no list before the first message) has 0.
    """
    from kombu import Connection
    from kombu.exceptions import ChannelError

    depths: dict[str, int] = {}
    with Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=BROKER_TIMEOUT_SECONDS,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    ) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        for name in names:
            # A channel per queue: RabbitMQ closes the channel a passive declaration fails on.
            channel: Any = conn.channel()  # kombu's stubs know no queue_declare
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except ChannelError:
                depths[name] = 0
            finally:
                channel.close()
    return depths


# --- the collector and the view -------------------------------------------------------------------


class PreflabCollector(Collector):
    """The gauges read at scrape time. Never raises: a part that fails reports ``..._up 0``."""

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        database_up, names = 1, list(BASE_QUEUES)
        try:
            families = list(_database_metrics())
            names = queue_names()
        except Exception:  # a scrape must answer whatever the database does
            logger.warning("metrics: the database did not answer", exc_info=True)
            database_up, families = 0, []
            _forget_broken_connection()
        yield GaugeMetricFamily(
            "preflab_database_up", "1 when the database answered this scrape's queries.", value=database_up
        )
        yield from families
        try:
            depths = queue_depths(names)
            broker_up = 1
        except Exception:  # as above, for the broker
            logger.warning("metrics: the broker did not answer", exc_info=True)
            depths, broker_up = {}, 0
        yield GaugeMetricFamily(
            "preflab_broker_up", "1 when the broker answered this scrape.", value=broker_up
        )
        if depths:
            depth = GaugeMetricFamily(
                "preflab_celery_queue_length", "Task messages waiting in a Celery queue.", labels=["queue"]
            )
            for name, count in sorted(depths.items()):
                depth.add_metric([name], count)
            yield depth
        yield GaugeMetricFamily(
            "preflab_metrics_scrape_seconds",
            "How long reading the database and the broker took for this scrape.",
            value=time.perf_counter() - started,
        )


def _forget_broken_connection() -> None:
    """After a failed query, drop the connection unless it is inside a transaction (tests)."""
    from django.db import connection

    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> bytes:
    """The text a scrape returns: the web processes' metrics, then the scrape-time gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
        process_text = generate_latest(registry)
    else:
        process_text = generate_latest(REGISTRY)
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(PreflabCollector())
    return process_text + generate_latest(gauges)


def _loopback(request: HttpRequest) -> bool:
    return request.META.get("REMOTE_ADDR") in {"127.0.0.1", "::1"} and not request.headers.get(
        "X-Forwarded-For"
    )


def scrape_allowed(request: HttpRequest) -> bool:
    """The bearer token when ``PREFLAB_METRICS_TOKEN`` is set; else the loopback address, unproxied."""
    token = settings.PREFLAB_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    return _loopback(request)


def metrics_response(request: HttpRequest) -> HttpResponse:
    if not scrape_allowed(request):
        response = HttpResponse("metrics: not allowed\n", status=403, content_type="text/plain")
        if settings.PREFLAB_METRICS_TOKEN:
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Answer ``GET /metrics`` before the host check, the HTTPS redirect, sessions and login."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info != METRICS_PATH or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        response = metrics_response(request)
        response["Cache-Control"] = "no-store"
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response
