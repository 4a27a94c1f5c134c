"""Sensitive topics (``Queue.tag_policies``): the policies are checked at every door, an item
tagged with a policy's tag gets that policy's higher overlap, one rater's share of a capped tag
stays within its cap, and ``check_integrity`` sees both rules broken.
(Under many concurrent raters: ``test_tag_policy_concurrency.py``.)"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from labeling.errors import ApplicationError, Conflict
from labeling.models import Assignment, Queue, QueueItem
from labeling.selectors.dashboards import queue_progress
from labeling.selectors.integrity import integrity_drift
from labeling.selectors.queues import queue_stats_for_rater
from labeling.selectors.tag_policies import (
    ItemOverlap,
    item_overlap,
    queue_tag_targets,
    queue_tag_work,
    tag_share_cap,
    tag_shares_for_rater,
)
from labeling.services import assignment_claim_next, judgment_submit
from labeling.services.queue_admin import queue_update_settings
from labeling.services.tag_policies import queue_tag_policies_clean
from tests.factories import (
    AssignmentFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    make_pair,
)

pytestmark = pytest.mark.django_db


def _item(queue: Queue, *tags: str, priority: int = 0) -> QueueItem:
    return QueueItemFactory(
        queue=queue, comparison=make_pair(prompt=PromptFactory(tags=list(tags))), priority=priority
    )


def _judge_all(rater, queue) -> list[QueueItem]:
    """Claim and judge until nothing is left for the rater; the items they got, in order."""
    got = []
    while (lease := assignment_claim_next(rater=rater, queue=queue)) is not None:
        judgment_submit(assignment=lease, preference=1)
        got.append(lease.item)
    return got


# ------------------------------------------------------------------------------ the rules


def test_item_overlap_and_share_cap_rules():
    policies = {"politics": {"overlap": 5}, "health": {"overlap": 3, "max_rater_share": 0.2}, "x": {}}
    assert item_overlap(overlap=2, policies=policies, tags=[]) == 2
    assert item_overlap(overlap=2, policies=policies, tags=["other"]) == 2
    assert item_overlap(overlap=2, policies=policies, tags=["health"]) == 3
    assert item_overlap(overlap=2, policies=policies, tags=["health", "politics"]) == 5
    assert item_overlap(overlap=6, policies=policies, tags=["politics"]) == 6  # at least the queue's
    assert item_overlap(overlap=2, policies=None, tags=["politics"]) == 2
    assert tag_share_cap(share=0.1, target=30) == 3  # not 4: 0.1 * 30 is 3.0000000000000004
    assert tag_share_cap(share=0.2, target=7) == 2
    assert tag_share_cap(share=0.01, target=10) == 1  # at least one
    assert tag_share_cap(share=1.0, target=10) == 10


def test_the_database_computes_the_same_item_overlap():
    """The SQL of the claim (``ItemOverlap``, one fragment per database) agrees with the rule."""
    policies = {
        "politics": {"overlap": 5},
        "health": {"overlap": 3, "max_rater_share": 0.5},
        "it's": {"overlap": 4},
    }
    queue = QueueFactory(overlap=2, tag_policies=policies)
    other = QueueFactory(overlap=1)  # same tags, no policies
    tag_sets = [[], ["other"], ["health"], ["health", "politics"], ["it's"], ["politics", "x"]]
    for tags in tag_sets:
        _item(queue, *tags)
        _item(other, *tags)
    got = QueueItem.objects.annotate(room=ItemOverlap()).values_list(
        "queue_id", "comparison__prompt__tags", "room"
    )
    expected = {queue.pk: (2, policies), other.pk: (1, {})}
    assert len(got) == 12
    for queue_id, tags, room in got:
        overlap, pol = expected[queue_id]
        assert room == item_overlap(overlap=overlap, policies=pol, tags=tags), (queue_id, tags)
    # The claim's shortcut (items carrying no overlap tag take the queue's overlap) agrees ...
    fast = queue.items.annotate(room=ItemOverlap.for_queue(queue)).values_list(
        "comparison__prompt__tags", "room"
    )
    assert sorted(fast) == sorted((t, r) for q, t, r in got if q == queue.pk)
    # ... and with a stale list of overlap tags an item gets the queue's overlap, never more.
    stale = queue.items.annotate(room=ItemOverlap(policy_tags=["politics"])).values_list(
        "comparison__prompt__tags", "room"
    )
    for tags, room in stale:
        assert room == (item_overlap(overlap=2, policies=policies, tags=tags) if "politics" in tags else 2)


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1], "tag_policies: must be an object of tag: policy"),
        ({"": {"overlap": 3}}, "tag_policies.: a tag is 1 to"),
        ({"politics": 5}, "tag_policies.politics: must be an object with overlap and/or max_rater_share"),
        ({"politics": {}}, "tag_policies.politics: must be an object"),
        ({"politics": {"overlap": 1}}, "tag_policies.politics.overlap: must be a whole number from 2"),
        ({"politics": {"overlap": 51}}, "tag_policies.politics.overlap: must be a whole number from 2"),
        ({"politics": {"overlap": "5"}}, "tag_policies.politics.overlap: must be a whole number"),
        ({"politics": {"overlap": True}}, "tag_policies.politics.overlap: must be a whole number"),
        (
            {"politics": {"max_rater_share": 0}},
            "tag_policies.politics.max_rater_share: must be a number over 0",
        ),
        (
            {"politics": {"max_rater_share": 1.5}},
            "tag_policies.politics.max_rater_share: must be a number over",
        ),
        ({"politics": {"max_rater_share": "a"}}, "tag_policies.politics.max_rater_share: must be a number"),
        ({"politics": {"overlap": 3, "share": 0.2}}, "tag_policies.politics.share: unknown"),
    ],
)
def test_bad_policies_are_refused_naming_the_key(value, message):
    with pytest.raises(ApplicationError) as exc:
        queue_tag_policies_clean(value, overlap=2)
    assert exc.value.status_code == 400 and str(exc.value.message).startswith(message), exc.value.message
    assert exc.value.field.startswith("tag_policies")


def test_good_policies_are_stored_cleaned():
    assert queue_tag_policies_clean(None, overlap=2) == {}
    assert queue_tag_policies_clean(
        {" politics ": {"overlap": 5.0, "max_rater_share": 1}, "a": {"max_rater_share": 0.25}}, overlap=2
    ) == {"a": {"max_rater_share": 0.25}, "politics": {"overlap": 5, "max_rater_share": 1.0}}


def test_the_api_creates_and_changes_policies_and_names_a_bad_key(admin_api):
    prompt = PromptFactory(tags=["politics"])
    make_pair(prompt=prompt)
    body = {"name": "q", "rubric": str(QueueFactory().rubric_id), "prompts": [str(prompt.pk)], "overlap": 2}
    bad = admin_api.post(
        "/api/v1/queues/", {**body, "tag_policies": {"politics": {"overlap": 1}}}, format="json"
    )
    assert bad.status_code == 400 and "tag_policies.politics.overlap" in str(bad.json()), bad.json()
    assert not Queue.objects.filter(name="q").exists()
    made = admin_api.post(
        "/api/v1/queues/", {**body, "tag_policies": {"politics": {"overlap": 4}}}, format="json"
    )
    assert made.status_code == 201, made.json()
    assert made.json()["tag_policies"] == {"politics": {"overlap": 4}}
    queue_id = made.json()["id"]
    bad = admin_api.patch(
        f"/api/v1/queues/{queue_id}/", {"tag_policies": {"politics": {"max_rater_share": 2}}}, format="json"
    )
    assert bad.status_code == 400 and "tag_policies.politics.max_rater_share" in str(bad.json())
    ok = admin_api.patch(
        f"/api/v1/queues/{queue_id}/",
        {"tag_policies": {"politics": {"overlap": 6, "max_rater_share": 0.5}}},
        format="json",
    )
    assert ok.status_code == 200 and ok.json()["tag_policies"] == {
        "politics": {"overlap": 6, "max_rater_share": 0.5}
    }
    assert Queue.objects.get(pk=queue_id).tag_policies == {"politics": {"overlap": 6, "max_rater_share": 0.5}}


def test_the_dashboard_form_saves_policies_and_shows_errors_on_the_field(admin_user):
    queue = QueueFactory(overlap=2)
    client = Client()
    client.force_login(admin_user)
    fields = {
        "overlap": 2,
        "lease_seconds": queue.lease_seconds,
        "max_open_leases": queue.max_open_leases,
        "priority": queue.priority,
        "guidelines": "",
        "content_warning": "",
        "content_warning_category": "",
    }
    data = {f"settings-{k}": v for k, v in fields.items()}
    response = client.post(
        f"/manage/queues/{queue.pk}/settings/",
        {**data, "settings-tag_policies": '{"politics": {"overlap": 1}}'},
    )
    assert response.status_code == 400
    assert "tag_policies.politics.overlap: must be a whole number from 2" in response.content.decode()
    response = client.post(
        f"/manage/queues/{queue.pk}/settings/",
        {**data, "settings-tag_policies": '{"politics": {"overlap": 3}}'},
    )
    assert response.status_code == 302
    assert Queue.objects.get(pk=queue.pk).tag_policies == {"politics": {"overlap": 3}}


# ---------------------------------------------------------------- higher overlap per tag


def test_a_tagged_item_gets_its_tags_overlap_through_the_claim():
    raters = [RaterFactory() for _ in range(5)]
    queue = QueueFactory(
        members=raters, overlap=1, tag_policies={"politics": {"overlap": 3}, "health": {"overlap": 2}}
    )
    politics, plain, both = _item(queue, "politics"), _item(queue), _item(queue, "health", "politics")
    health = _item(queue, "health")
    assert queue_progress(queue=queue)["wanted"] == 3 + 1 + 3 + 2
    assert queue_stats_for_rater(rater=raters[0], queues=[queue])[queue.pk]["available"] == 4
    for rater in raters:
        _judge_all(rater, queue)
    judged = {i.pk: i.judged for i in QueueItem.objects.all()}
    assert judged == {politics.pk: 3, plain.pk: 1, both.pk: 3, health.pk: 2}
    progress = queue_progress(queue=queue)
    assert progress["complete"] == 4 and progress["percent"] == 100.0
    assert queue_stats_for_rater(rater=raters[-1], queues=[queue])[queue.pk]["available"] == 0
    assert not list(integrity_drift())


def test_a_lowered_tag_overlap_is_refused_below_the_work_done_and_honoured_above_it():
    raters = [RaterFactory() for _ in range(4)]
    queue = QueueFactory(members=raters, overlap=1, tag_policies={"politics": {"overlap": 4}})
    item = _item(queue, "politics")
    for rater in raters[:3]:
        _judge_all(rater, queue)
    with pytest.raises(Conflict) as exc:
        queue_update_settings(queue=queue, tag_policies={"politics": {"overlap": 2}})
    assert exc.value.field == "tag_policies.politics.overlap" and "already has 3" in exc.value.message
    queue_update_settings(queue=queue, tag_policies={"politics": {"overlap": 3}})
    assert assignment_claim_next(rater=raters[3], queue=queue) is None  # full at 3 now
    assert QueueItem.objects.get(pk=item.pk).judged == 3


# ------------------------------------------------------------------------- share cap


def test_a_rater_gets_other_items_once_at_a_tags_share_cap():
    rater, other = RaterFactory(), RaterFactory()
    # 10 politics items x overlap 2 = 20 judgments wanted; a share of 0.15 caps one rater at 3.
    queue = QueueFactory(
        members=[rater, other], overlap=1, tag_policies={"politics": {"overlap": 2, "max_rater_share": 0.15}}
    )
    tagged = [_item(queue, "politics", priority=10) for _ in range(10)]
    plain = [_item(queue) for _ in range(4)]
    assert tag_shares_for_rater(rater=rater, queue=queue) == {
        "politics": {"share": 0.15, "target": 20, "cap": 3, "work": 0}
    }
    got = _judge_all(rater, queue)
    # politics items come first (priority), until the cap; then only the plain ones
    assert [i.pk for i in got] == [t.pk for t in tagged[:3]] + [p.pk for p in plain]
    assert tag_shares_for_rater(rater=rater, queue=queue)["politics"]["work"] == 3
    # a live lease counts as work too
    lease = assignment_claim_next(rater=other, queue=queue)
    assert lease.item_id == tagged[0].pk
    assert tag_shares_for_rater(rater=other, queue=queue)["politics"]["work"] == 1
    assert not list(integrity_drift())


def test_an_item_with_two_capped_tags_must_fit_both_caps():
    rater = RaterFactory()
    queue = QueueFactory(
        members=[rater],
        overlap=1,
        tag_policies={"a": {"max_rater_share": 0.5}, "b": {"max_rater_share": 0.2}},
    )
    both = [_item(queue, "a", "b", priority=5) for _ in range(2)]
    only_a = [_item(queue, "a") for _ in range(3)]
    # a: target 5, cap 3; b: target 2, cap 1 -> one "a b" item, then two "a" items
    got = _judge_all(rater, queue)
    assert [i.pk for i in got] == [both[0].pk, only_a[0].pk, only_a[1].pk]


# ------------------------------------------------------------------------------ integrity


def test_check_integrity_sees_an_item_past_its_tag_overlap_and_a_rater_past_the_cap():
    queue = QueueFactory(overlap=1, tag_policies={"politics": {"overlap": 2, "max_rater_share": 0.25}})
    items = [_item(queue, "politics") for _ in range(4)]  # target 8, cap 2
    raters = [RaterFactory() for _ in range(3)]
    # Written behind the claim's back: three leases on one item (overlap 2) and one rater on 3 items.
    for rater in raters:
        AssignmentFactory(item=items[0], rater=rater)
    for item in items[1:3]:
        AssignmentFactory(item=item, rater=raters[0])
    for item in items:
        QueueItem.objects.filter(pk=item.pk).update(claimed=Assignment.objects.filter(item=item).count())
    drift = {(d.check, str(d.pk)) for d in integrity_drift()}
    assert ("item_overlap", str(items[0].pk)) in drift
    assert ("tag_share", f"{queue.pk} tag 'politics' rater {raters[0].pk}") in drift
    assert {c for c, _ in drift} == {"item_overlap", "tag_share"}
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("check_integrity", stdout=out)
    assert "1 DRIFT  item_overlap" in out.getvalue() and "1 DRIFT  tag_share" in out.getvalue()
    work = queue_tag_work(queue_id=queue.pk, overlap=1, policies=queue.tag_policies)
    assert work.tags["politics"].target == 8 and work.tags["politics"].work[raters[0].pk] == 3
    # The same rows are fine under a policy that allows them.
    Queue.objects.filter(pk=queue.pk).update(
        tag_policies={"politics": {"overlap": 3, "max_rater_share": 0.25}}
    )
    assert not list(integrity_drift())


def test_a_kept_target_is_never_larger_than_the_true_one():
    """The claim keeps a queue's tag targets a few seconds; items added meanwhile only make the kept
    target (and so the cap) smaller than the true one, and a policy change is a new key."""
    queue = QueueFactory(overlap=1, tag_policies={"politics": {"overlap": 2, "max_rater_share": 0.5}})
    _item(queue, "politics")
    assert queue_tag_targets(queue=queue) == {"politics": 2}
    _item(queue, "politics")
    assert queue_tag_targets(queue=queue) == {"politics": 2}  # kept: stricter, for a few seconds
    assert queue_tag_targets(queue=queue, fresh=True) == {"politics": 4}
    queue.tag_policies = {"politics": {"overlap": 3, "max_rater_share": 0.5}}
    Queue.objects.filter(pk=queue.pk).update(tag_policies=queue.tag_policies)
    assert queue_tag_targets(queue=queue) == {"politics": 6}
