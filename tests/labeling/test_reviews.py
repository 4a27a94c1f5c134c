"""Adjudication through both doors: which items enter review (disagreement over the queue's
threshold, or a rater's flag), who may review (reviewers and admins, never their own items), what
a reviewer sees (stored order, pseudonymous raters), one final label per item, and the labels the
exports read (``adjudicated_labels``)."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from labeling.models import AuditEvent, Criterion, Queue, Review, User
from labeling.selectors.quality import comparison_orders
from labeling.selectors.reviews import adjudicated_labels, item_disagreement
from labeling.services import assignment_claim_next, judgment_submit
from tests.factories import (
    CandidateFactory,
    CriterionFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    ResearcherFactory,
    UserFactory,
    make_comparison,
)
from tests.integrity import assert_no_drift

pytestmark = pytest.mark.django_db


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _judge(rater, queue, stored: int, **extra):
    """Claim the rater's next item and judge it ``stored`` in the comparison's stored order."""
    assignment = assignment_claim_next(rater=rater, queue=queue)
    canonical = comparison_orders([assignment.item.comparison_id])[assignment.item.comparison_id]
    shown = stored if assignment.shown_order[0] == canonical[0] else -stored
    judgment_submit(assignment=assignment, preference=shown, **extra)
    return assignment.item


@pytest.fixture
def contested():
    """Three raters and a reviewer-rater judge three items of a pairwise queue (overlap 3):
    item 1 splits 2:1, item 2 is unanimous, item 3 is unanimous but flagged."""
    reviewer_rater = UserFactory(role=User.Role.REVIEWER, username="rev-who-judged")
    raters = [RaterFactory(username=f"r{i}") for i in range(2)]
    judges = [reviewer_rater, *raters]
    queue = QueueFactory(overlap=3, review_disagreement=0.3, members=judges)
    CriterionFactory(rubric=queue.rubric, kind=Criterion.Kind.FLAG, key="harmful", question="Harmful?")
    items = [QueueItemFactory(queue=queue) for _ in range(3)]
    for stored in (-2, -1, 3):  # item 1: two for response 1, one for response 2
        rater = judges[[-2, -1, 3].index(stored)]
        _judge(rater, queue, stored, rationale=f"because {stored}")
    for rater in judges:  # item 2: all prefer response 1
        _judge(rater, queue, -1)
    for rater, flagged in zip(judges, (False, True, False), strict=True):  # item 3: one flag
        _judge(rater, queue, 2, criteria={"harmful": True} if flagged else {})
    return {"queue": queue, "items": items, "reviewer_rater": reviewer_rater}


@pytest.fixture
def reviewer(db):
    return UserFactory(role=User.Role.REVIEWER, username="reviewer")


def test_disagreement_is_the_share_against_the_majority_direction():
    assert item_disagreement([-1, -1, 1]) == pytest.approx(1 / 3)
    assert item_disagreement([-1, 0, 1, 1]) == pytest.approx(0.5)
    assert item_disagreement([1, 1]) == 0 and item_disagreement([1]) == 0


def test_pending_lists_the_disagreeing_and_the_flagged_items(contested, reviewer):
    queue, items = contested["queue"], contested["items"]
    body = _api(reviewer).get(f"/api/v1/queues/{queue.pk}/reviews/pending/").json()
    assert [(p["item"], p["reasons"], p["judgments"]) for p in body] == [
        (items[0].pk, ["disagreement"], 3),
        (items[2].pk, ["flagged"], 3),
    ]
    assert body[0]["disagreement"] == pytest.approx(0.3333, abs=1e-4) and body[1]["flags"] == ["harmful"]
    assert not any(p["judged_by_you"] for p in body)

    Queue.objects.filter(pk=queue.pk).update(review_disagreement=0.4)  # 1/3 is not over 0.4
    body = _api(reviewer).get(f"/api/v1/queues/{queue.pk}/reviews/pending/").json()
    assert [p["item"] for p in body] == [items[2].pk]
    Queue.objects.filter(pk=queue.pk).update(review_disagreement=None)  # off: flagged only
    assert [p["item"] for p in _api(reviewer).get(f"/api/v1/queues/{queue.pk}/reviews/pending/").json()] == [
        items[2].pk
    ]
    own = _api(contested["reviewer_rater"]).get(f"/api/v1/queues/{queue.pk}/reviews/pending/").json()
    assert all(p["judged_by_you"] for p in own)


def test_the_item_shows_everything_in_stored_order_with_pseudonymous_raters(contested, reviewer):
    item = contested["items"][0]
    body = _api(reviewer).get(f"/api/v1/queue-items/{item.pk}/review/").json()
    order = comparison_orders([item.comparison_id])[item.comparison_id]
    texts = [
        m.candidate.text for m in item.comparison.members.order_by("position").select_related("candidate")
    ]
    assert [r["text"] for r in body["responses"]] == texts and len(order) == 2
    assert [j["preference"] for j in body["judgments"]] == [-2, -1, 3]  # stored order, whatever was shown
    assert [j["rationale"] for j in body["judgments"]] == ["because -2", "because -1", "because 3"]
    names = {j["rater"] for j in body["judgments"]}
    assert len(names) == 3 and all(n.startswith("rater-") for n in names)
    raw = str(body)
    assert "rev-who-judged" not in raw and "'r0'" not in raw and "'r1'" not in raw
    assert body["review"] is None and body["disagreement"] == pytest.approx(0.3333, abs=1e-4)


def test_review_through_the_api_once_then_409_with_the_stored_one(contested, reviewer):
    queue, item = contested["queue"], contested["items"][0]
    url = f"/api/v1/queue-items/{item.pk}/review/"
    bad = _api(reviewer).post(url, {"preference": 5}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "preference"
    assert _api(reviewer).post(url, {"ranking": [[0], [1]]}, format="json").json()["field"] == "preference"
    made = _api(reviewer).post(url, {"preference": 2, "note": "the rationale for 3 holds"}, format="json")
    assert made.status_code == 201, made.content
    assert (made.json()["preference"], made.json()["reviewer"]) == (2, "reviewer")
    review = Review.objects.get()
    assert (review.item_id, review.preference, review.note) == (item.pk, 2, "the rationale for 3 holds")
    event = AuditEvent.objects.get(action="review.create")
    assert event.actor_id == reviewer.pk and event.changes["preference"] == 2

    admin_again = _api(UserFactory(role=User.Role.ADMIN)).post(url, {"preference": -3}, format="json")
    assert admin_again.status_code == 409
    assert (
        admin_again.json()["review"]["preference"] == 2 and "already reviewed" in admin_again.json()["detail"]
    )
    assert Review.objects.count() == 1

    pending = _api(reviewer).get(f"/api/v1/queues/{queue.pk}/reviews/pending/").json()
    assert item.pk not in [p["item"] for p in pending]
    everything = _api(reviewer).get(f"/api/v1/queues/{queue.pk}/reviews/pending/?all=1").json()
    assert [p["reviewed"] for p in everything if p["item"] == item.pk] == [True]
    assert adjudicated_labels(comparison_ids=[item.comparison_id, contested["items"][1].comparison_id]) == {
        item.comparison_id: {"preference": 2, "review": review.pk, "queue": queue.pk}
    }
    assert adjudicated_labels(comparison_ids=[item.comparison_id], queue_ids=[queue.pk + 1]) == {}
    assert_no_drift()


def test_who_may_review_through_the_api(contested, admin_user):
    queue, item = contested["queue"], contested["items"][0]
    url = f"/api/v1/queue-items/{item.pk}/review/"
    for outsider in (RaterFactory(), ResearcherFactory()):
        assert _api(outsider).get(f"/api/v1/queues/{queue.pk}/reviews/pending/").status_code == 403
        assert _api(outsider).get(url).status_code == 403
        assert _api(outsider).post(url, {"preference": 1}, format="json").status_code == 403
    own = _api(contested["reviewer_rater"])
    refused = own.post(url, {"preference": 1}, format="json")
    assert refused.status_code == 403 and "You judged this item yourself" in refused.json()["detail"]
    assert own.get(url).status_code == 403
    assert _api(admin_user).post(url, {"preference": -1}, format="json").status_code == 201
    gold = QueueItemFactory(queue=queue, is_gold=True, gold_answer={"preference": 1})
    assert _api(admin_user).get(f"/api/v1/queue-items/{gold.pk}/review/").status_code == 404
    assert Review.objects.count() == 1


def test_review_through_the_pages(contested, reviewer):
    queue, items = contested["queue"], contested["items"]
    page = _page(reviewer)
    home = page.get("/review/").content.decode()
    assert queue.name in home
    listing = page.get(f"/review/queues/{queue.pk}/").content.decode()
    assert f"/review/items/{items[0].pk}/" in listing and f"/review/items/{items[2].pk}/" in listing
    assert f"/review/items/{items[1].pk}/" not in listing
    shown = page.get(f"/review/items/{items[0].pk}/").content.decode()
    assert "because -2" in shown and "Response 1" in shown and 'data-key="7"' in shown

    missing = page.post(f"/review/items/{items[0].pk}/", {"note": "no label"})
    assert missing.status_code == 400 and "preference" in missing.content.decode()
    saved = page.post(f"/review/items/{items[0].pk}/", {"preference": "-3", "note": "clear"})
    assert saved.status_code == 302 and saved.url == f"/review/items/{items[2].pk}/"
    assert Review.objects.get(item=items[0]).preference == -3

    second = _page(UserFactory(role=User.Role.ADMIN)).post(
        f"/review/items/{items[0].pk}/", {"preference": "1"}
    )
    assert second.status_code == 409 and "already reviewed" in second.content.decode()
    assert Review.objects.get(item=items[0]).preference == -3

    assert _page(RaterFactory()).get("/review/").status_code == 403
    assert _page(RaterFactory()).get(f"/review/items/{items[2].pk}/").status_code == 403
    own = _page(contested["reviewer_rater"])
    assert own.get(f"/review/items/{items[2].pk}/").status_code == 403
    assert own.post(f"/review/items/{items[2].pk}/", {"preference": "1"}).status_code == 403
    assert not Review.objects.filter(item=items[2]).exists()


def test_a_ranking_is_reviewed_as_groups_of_stored_positions(reviewer):
    raters = [RaterFactory() for _ in range(2)]
    queue = QueueFactory(kind=Queue.Kind.RANKING, overlap=2, review_disagreement=0.0, members=raters)
    prompt = PromptFactory()
    item = QueueItemFactory(
        queue=queue, comparison=make_comparison(prompt, [CandidateFactory(prompt=prompt) for _ in range(3)])
    )
    for rater, best in zip(raters, (0, 2), strict=True):
        assignment = assignment_claim_next(rater=rater, queue=queue)
        order = comparison_orders([item.comparison_id])[item.comparison_id]
        labels = {cid: "ABC"[i] for i, cid in enumerate(assignment.shown_order)}
        rest = [labels[order[p]] for p in range(3) if p != best]
        judgment_submit(assignment=assignment, ranking=[[labels[order[best]]], rest])
    pending = _api(reviewer).get(f"/api/v1/queues/{queue.pk}/reviews/pending/").json()
    assert [(p["item"], p["disagreement"]) for p in pending] == [(item.pk, 0.5)]
    body = _api(reviewer).get(f"/api/v1/queue-items/{item.pk}/review/").json()
    assert [j["ranking"][0] for j in body["judgments"]] == [[0], [2]]
    url = f"/api/v1/queue-items/{item.pk}/review/"
    bad = _api(reviewer).post(url, {"ranking": [[0], [1]]}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "ranking"
    made = _api(reviewer).post(url, {"ranking": [[2], [1, 0]], "note": "tie below"}, format="json")
    assert made.status_code == 201 and made.json()["ranking"] == [[2], [0, 1]]
    assert adjudicated_labels(comparison_ids=[item.comparison_id])[item.comparison_id]["ranking"] == [
        [2],
        [0, 1],
    ]
    page = _page(UserFactory(role=User.Role.REVIEWER))
    assert "2 = 1" not in page.get(f"/review/items/{item.pk}/").content.decode()  # shown 1-based: 3 > 1 = 2
    assert "3 &gt; 1 = 2" in page.get(f"/review/items/{item.pk}/").content.decode()
    assert_no_drift()


def test_check_integrity_finds_a_review_by_a_rater_of_the_item_and_a_broken_ranking(contested):
    from labeling.selectors.integrity import integrity_drift

    item = contested["items"][0]
    assert not [d for d in integrity_drift() if d.check.startswith("review")]
    Review.objects.create(item=item, reviewer=contested["reviewer_rater"], preference=1)
    ranked = QueueItemFactory(queue=QueueFactory(kind=Queue.Kind.RANKING))
    Review.objects.create(item=ranked, reviewer=contested["reviewer_rater"], ranking=[[0], [0]])
    found = {(d.check, d.pk) for d in integrity_drift() if d.check.startswith("review")}
    assert found == {("review_not_own", Review.objects.get(item=item).pk), ("review_label", ranked.review.pk)}
