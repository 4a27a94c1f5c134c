"""The queue statistics cache (labeling.selectors.queue_stats), its beat task, and the array path
of the agreement figures checked against the row-by-row one."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from labeling import tasks
from labeling.celery import app as celery_app
from labeling.models import Criterion, Queue
from labeling.selectors import agreement, queue_stats
from labeling.services import assignment_claim_next, assignment_skip
from tests.factories import CriterionFactory, QueueFactory, QueueItemFactory, RaterFactory
from tests.labeling.test_queue_stats_api import _judge, _two_rater_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def computes(monkeypatch):
    """Counts the computations of a queue's statistics."""
    calls: list[int] = []
    real = queue_stats.queue_stats_compute

    def counting(*, queue):
        calls.append(queue.pk)
        return real(queue=queue)

    monkeypatch.setattr(queue_stats, "queue_stats_compute", counting)
    return calls


def _stats(api, queue):
    response = api.get(f"/api/v1/queues/{queue.pk}/stats/")
    assert response.status_code == 200
    return response.json()


def test_an_unchanged_queue_is_served_from_the_cache(admin_api, rater, rater2, computes):
    queue = _two_rater_queue(rater, rater2)
    first = _stats(admin_api, queue)
    assert computes == [queue.pk]
    assert first["computed_at"]
    again = _stats(admin_api, queue)
    assert computes == [queue.pk]  # not computed again
    assert again == first


def test_a_new_judgment_or_a_skip_computes_the_answer_again(admin_api, rater, rater2, computes):
    queue = _two_rater_queue(rater, rater2)
    before = _stats(admin_api, queue)
    QueueItemFactory(queue=queue)
    _judge(queue, rater, lambda i: {"overall": 2})
    after = _stats(admin_api, queue)
    assert len(computes) == 2
    assert after["progress"]["judgments"] == before["progress"]["judgments"] + 1
    assert after["rates"]["judgments"] == before["rates"]["judgments"] + 1
    assignment = assignment_claim_next(rater=rater2, queue=queue)
    assert assignment is not None
    assignment_skip(assignment=assignment)
    skipped = _stats(admin_api, queue)
    assert len(computes) == 3
    assert skipped["rates"]["skips"] == after["rates"]["skips"] + 1


def test_the_beat_task_computes_active_queues_once(admin_api, rater, rater2, computes):
    queue = _two_rater_queue(rater, rater2)
    paused = QueueFactory(status=Queue.Status.PAUSED)
    assert tasks.queue_stats_refresh_task() == 1
    assert computes == [queue.pk]
    assert tasks.queue_stats_refresh_task() == 0  # nothing changed
    _stats(admin_api, queue)
    assert computes == [queue.pk]  # the request found the task's answer
    _stats(admin_api, paused)
    assert computes == [queue.pk, paused.pk]


def test_the_beat_task_is_scheduled_on_the_default_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["refresh-queue-stats"]
    assert entry["task"] == "labeling.tasks.queue_stats_refresh_task"
    route = celery_app.amqp.router.route({}, entry["task"])
    assert route["queue"].name == "default"


def test_the_dashboard_says_when_the_figures_were_computed(admin_user, rater, rater2):
    queue = _two_rater_queue(rater, rater2)
    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/manage/queues/{queue.pk}/")
    assert page.status_code == 200
    stamp = queue_stats.queue_stats(queue=queue)["computed_at"].strftime("%Y-%m-%d %H:%M:%S")
    assert f"Figures computed {stamp} UTC" in page.content.decode()


def test_agreement_on_arrays_matches_row_by_row():
    """Three raters and every kind of criterion: the pairwise queue's array path gives the figures
    ``_collect`` + ``measure_agreement`` give (an independent computation, one row at a time)."""
    raters = RaterFactory.create_batch(3)
    queue = QueueFactory(members=raters, overlap=3)
    CriterionFactory(rubric=queue.rubric, key="honest", kind=Criterion.Kind.PREFERENCE, question="Honest?")
    CriterionFactory(rubric=queue.rubric, key="quality", kind=Criterion.Kind.LIKERT, question="Quality?")
    CriterionFactory(rubric=queue.rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful?")
    QueueItemFactory.create_batch(10, queue=queue)
    for r, rater in enumerate(raters):
        _judge(
            queue,
            rater,
            lambda i, r=r: {
                "overall": (i * 3 + r * (i % 2)) % 7 - 3,
                "honest": (i + r) % 5 - 2,
                "quality": (1 + (i + r) % 7, 1 + (2 * i + r * r) % 7),
                "harmful": (i + r) % 3 == 0,
            },
        )
    fast = agreement.queue_agreement(queue=queue)
    criteria = agreement.measured_criteria(queue)
    rows = agreement._collect(queue, criteria)
    keys = ["overall", "overall_direction"] + [f"criterion:{c.key}" for c in criteria]
    for measure, key in zip(fast["criteria"], keys, strict=True):
        n, level = agreement.SCALES[measure["kind"]]
        slow = agreement.measure_agreement(rows.get(key, []), n_categories=n, level=level)
        assert {k: measure[k] for k in slow} == slow, key
        assert measure["krippendorff_alpha"]["items"] > 0
