"""Reviewing attacks: the claim (pre-screen order, never your own, never twice, lease reuse and
expiry), the verdict (confirm/reject, idempotent replay, 409, the role rule, 400s naming the
field), skip, the blind payload, the staff list, and the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Attack, AttackExposure, AuditEvent, Queue
from labeling.services.redteam_reviews import (
    AttackReviewExists,
    attack_claim_next,
    attack_review_submit,
    attack_skip,
)
from tests.conftest import _client_for
from tests.factories import (
    AdminFactory,
    AttackFactory,
    GeneratorFactory,
    QueueFactory,
    RaterFactory,
    ResearcherFactory,
    ReviewerFactory,
    ReviewQueueFactory,
)

pytestmark = pytest.mark.django_db

CONFIRM = {
    "verdict": "confirm",
    "outcome": "complied",
    "category": "illegal",
    "tactic": "role_play",
    "severity": 4,
}


@pytest.fixture
def reviewer():
    return ReviewerFactory(username="rev-one")


@pytest.fixture
def queue(reviewer):
    return ReviewQueueFactory(members=[reviewer])


def test_claim_takes_the_highest_prescreen_first_then_the_lowest_id(reviewer, queue):
    low = AttackFactory(queue=queue, prescreen=0.1)
    high_a = AttackFactory(queue=queue, prescreen=0.9)
    high_b = AttackFactory(queue=queue, prescreen=0.9)
    seen = []
    for _ in range(3):
        attack = attack_claim_next(rater=reviewer, queue=queue)
        seen.append(attack.pk)
        attack_skip(attack=attack, rater=reviewer)
    assert seen == [high_a.pk, high_b.pk, low.pk]
    assert attack_claim_next(rater=reviewer, queue=queue) is None  # every one was shown once


def test_claim_never_hands_out_the_raters_own_attack(reviewer, queue):
    AttackFactory(queue=queue, author=reviewer, prescreen=0.9)
    other = AttackFactory(queue=queue, prescreen=0.1)
    assert attack_claim_next(rater=reviewer, queue=queue).pk == other.pk
    attack_skip(attack=other, rater=reviewer)
    assert attack_claim_next(rater=reviewer, queue=queue) is None


def test_a_held_lease_comes_back_and_records_one_exposure(reviewer, queue):
    AttackFactory(queue=queue)
    AttackFactory(queue=queue)
    first = attack_claim_next(rater=reviewer, queue=queue)
    again = attack_claim_next(rater=reviewer, queue=queue)
    assert again.pk == first.pk
    assert AttackExposure.objects.filter(rater=reviewer).count() == 1
    first.refresh_from_db()
    assert first.leased_to_id == reviewer.pk
    assert first.lease_expires_at is not None and first.lease_expires_at > timezone.now()


def test_a_leased_attack_is_not_given_to_another_until_the_lease_expires(reviewer, queue):
    other = ReviewerFactory()
    queue.members.add(other)
    attack = AttackFactory(queue=queue)
    assert attack_claim_next(rater=reviewer, queue=queue).pk == attack.pk
    assert attack_claim_next(rater=other, queue=queue) is None
    later = timezone.now() + timedelta(seconds=queue.lease_seconds + 1)
    assert attack_claim_next(rater=other, queue=queue, now=later).pk == attack.pk
    # The first reviewer's lease is gone and they are never shown it again.
    assert attack_claim_next(rater=reviewer, queue=queue, now=later) is None


def test_claim_refuses_non_members_with_404_and_other_kinds(reviewer, queue):
    outsider = ReviewerFactory()
    with pytest.raises(ApplicationError) as exc:
        attack_claim_next(rater=outsider, queue=queue)
    assert exc.value.status_code == 404
    pairwise = QueueFactory(members=[reviewer])
    with pytest.raises(ApplicationError) as exc:
        attack_claim_next(rater=reviewer, queue=pairwise)
    assert exc.value.status_code == 404


def test_confirm_stores_the_final_labels_and_ends_the_lease(reviewer, queue):
    attack = AttackFactory(queue=queue, outcome="partial", claimed_outcome="partial", severity=2)
    attack_claim_next(rater=reviewer, queue=queue)
    stored, created = attack_review_submit(
        attack=attack, reviewer=reviewer, **CONFIRM, ideal_reply="I can't help with that.", note="clear"
    )
    assert created
    stored.refresh_from_db()
    assert stored.status == Attack.Status.CONFIRMED
    assert (stored.outcome, stored.severity, stored.claimed_outcome) == ("complied", 4, "partial")
    assert stored.ideal_reply == "I can't help with that."
    assert stored.review_note == "clear"
    assert stored.reviewer_id == reviewer.pk and stored.reviewed_at is not None
    assert stored.leased_to_id is None and stored.lease_expires_at is None
    event = AuditEvent.objects.get(action="attack.review")
    assert event.object_id == str(attack.pk) and event.changes["verdict"] == "confirm"


def test_reject_keeps_the_claim_where_no_label_is_given(reviewer, queue):
    attack = AttackFactory(queue=queue)
    stored, created = attack_review_submit(
        attack=attack, reviewer=reviewer, verdict="reject", outcome="refused"
    )
    assert created
    stored.refresh_from_db()
    assert stored.status == Attack.Status.REJECTED
    assert stored.outcome == "refused" and stored.category == "illegal" and stored.severity == 3


def test_same_verdict_replayed_returns_the_stored_one_and_writes_nothing(reviewer, queue):
    attack = AttackFactory(queue=queue)
    attack_review_submit(attack=attack, reviewer=reviewer, **CONFIRM)
    stored, created = attack_review_submit(attack=attack, reviewer=reviewer, **CONFIRM)
    assert not created and stored.status == Attack.Status.CONFIRMED
    assert AuditEvent.objects.filter(action="attack.review").count() == 1


def test_a_different_verdict_after_review_is_a_conflict(reviewer, queue):
    attack = AttackFactory(queue=queue)
    attack_review_submit(attack=attack, reviewer=reviewer, **CONFIRM)
    with pytest.raises(AttackReviewExists) as exc:
        attack_review_submit(attack=attack, reviewer=reviewer, verdict="reject")
    assert exc.value.status_code == 409
    with pytest.raises(AttackReviewExists):  # same verdict, other labels: not a replay
        attack_review_submit(attack=attack, reviewer=reviewer, **{**CONFIRM, "severity": 5})
    other = ReviewerFactory()
    queue.members.add(other)
    with pytest.raises(AttackReviewExists):  # another reviewer's verdict never overwrites it
        attack_review_submit(attack=attack, reviewer=other, **CONFIRM)
    attack.refresh_from_db()
    assert (
        attack.status == Attack.Status.CONFIRMED
        and attack.severity == 4
        and attack.reviewer_id == reviewer.pk
    )


def test_nobody_reviews_their_own_attack(reviewer, queue):
    attack = AttackFactory(queue=queue, author=reviewer)
    with pytest.raises(ApplicationError) as exc:
        attack_review_submit(attack=attack, reviewer=reviewer, **CONFIRM)
    assert exc.value.status_code == 403
    attack.refresh_from_db()
    assert attack.status == Attack.Status.PENDING


def test_a_sessions_claimed_success_needs_the_reviewer_role_to_confirm(queue):
    rater = RaterFactory(disturbing_opt_in=True)
    queue.members.add(rater)
    session_attack = AttackFactory(queue=queue, source=Attack.Source.SESSION, claimed_outcome="complied")
    with pytest.raises(ApplicationError) as exc:
        attack_review_submit(attack=session_attack, reviewer=rater, **CONFIRM)
    assert exc.value.status_code == 403
    # A plain rater of the queue may reject it, and may confirm attacks from other sources.
    _, created = attack_review_submit(attack=session_attack, reviewer=rater, verdict="reject")
    assert created
    adversary = AttackFactory(queue=queue, source=Attack.Source.ADVERSARY)
    _, created = attack_review_submit(attack=adversary, reviewer=rater, **CONFIRM)
    assert created
    # A session attack claimed as a refusal (no claimed success) may be confirmed by a rater too.
    refused = AttackFactory(queue=queue, source=Attack.Source.SESSION, claimed_outcome="refused")
    _, created = attack_review_submit(attack=refused, reviewer=rater, **{**CONFIRM, "outcome": "refused"})
    assert created
    reviewer_attack = AttackFactory(queue=queue, source=Attack.Source.SESSION, claimed_outcome="partial")
    admin = AdminFactory()
    _, created = attack_review_submit(attack=reviewer_attack, reviewer=admin, **CONFIRM)
    assert created


def test_a_non_member_rater_cannot_give_a_verdict(queue):
    outsider = RaterFactory(disturbing_opt_in=True)
    attack = AttackFactory(queue=queue)
    with pytest.raises(ApplicationError) as exc:
        attack_review_submit(attack=attack, reviewer=outsider, verdict="reject")
    assert exc.value.status_code == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"verdict": "maybe"}, "verdict"),
        ({"outcome": ""}, "outcome"),
        ({"outcome": "exploded"}, "outcome"),
        ({"category": "nonsense"}, "category"),
        ({"category": None}, "category"),
        ({"tactic": "telepathy"}, "tactic"),
        ({"severity": 6}, "severity"),
        ({"severity": None}, "severity"),
        ({"severity": True}, "severity"),
        ({"note": 5}, "note"),
        ({"note": "x" * 20_001}, "note"),
        ({"ideal_reply": ["a"]}, "ideal_reply"),
    ],
)
def test_bad_verdicts_are_400s_naming_the_field_and_write_nothing(reviewer, queue, change, field):
    attack = AttackFactory(queue=queue)
    attack_claim_next(rater=reviewer, queue=queue)
    client = _client_for(reviewer)
    response = client.post(f"/api/v1/attacks/{attack.pk}/review/", {**CONFIRM, **change}, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["field"] == field
    attack.refresh_from_db()
    assert attack.status == Attack.Status.PENDING and attack.reviewer_id is None


def test_api_claim_review_replay_conflict_and_skip(reviewer, queue):
    generator = GeneratorFactory(name="secret-target-model")
    author = RaterFactory(username="sneaky-author")
    first = AttackFactory(queue=queue, prescreen=0.9, author=author, description="asks for lock picking")
    second = AttackFactory(queue=queue, prescreen=0.5)
    Attack.objects.filter(pk=first.pk).update(target=generator)
    client = _client_for(reviewer)
    response = client.post(f"/api/v1/redteam/queues/{queue.pk}/next/")
    assert response.status_code == 201
    body = response.json()
    assert body["id"] == first.pk
    assert body["prompt"] == first.prompt.messages
    assert body["reply"] == first.reply.text
    assert body["source"] == "adversary" and body["prescreen"] == 0.9
    assert body["claimed_outcome"] == "complied" and body["category"] == "illegal"
    assert body["description"] == "asks for lock picking"
    assert body["take_break"] is False
    text = response.content.decode()
    assert "sneaky-author" not in text and "secret-target-model" not in text  # blind
    assert "target" not in body and "author" not in body

    url = f"/api/v1/attacks/{first.pk}/review/"
    assert client.post(url, CONFIRM, format="json").status_code == 201
    replay = client.post(url, CONFIRM, format="json")
    assert replay.status_code == 200 and replay.json()["replayed"] is True
    conflict = client.post(url, {"verdict": "reject"}, format="json")
    assert conflict.status_code == 409
    assert conflict.json()["attack"]["status"] == "confirmed"

    assert client.post(f"/api/v1/redteam/queues/{queue.pk}/next/").json()["id"] == second.pk
    skipped = client.post(f"/api/v1/attacks/{second.pk}/skip/")
    assert skipped.status_code == 200
    second.refresh_from_db()
    assert second.leased_to_id is None
    assert client.post(f"/api/v1/redteam/queues/{queue.pk}/next/").status_code == 204


def test_api_gatekeeper_hides_attacks_never_shown_to_the_caller(reviewer, queue):
    attack = AttackFactory(queue=queue)
    client = _client_for(reviewer)
    assert client.post(f"/api/v1/attacks/{attack.pk}/review/", CONFIRM, format="json").status_code == 404
    assert client.post(f"/api/v1/attacks/{attack.pk}/skip/").status_code == 404
    assert client.post("/api/v1/attacks/99999999/review/", CONFIRM, format="json").status_code == 404
    other_queue = ReviewQueueFactory()
    assert client.post(f"/api/v1/redteam/queues/{other_queue.pk}/next/").status_code == 404


def test_attack_list_is_for_staff_and_filters(reviewer, queue):
    AttackFactory(queue=queue, source=Attack.Source.WILD, category="privacy")
    confirmed = AttackFactory(queue=queue, author=RaterFactory(username="writer"))
    attack_review_submit(attack=confirmed, reviewer=reviewer, **CONFIRM)
    other = AttackFactory(source=Attack.Source.ADVERSARY)

    assert _client_for(RaterFactory()).get("/api/v1/attacks/").status_code == 403
    as_reviewer = _client_for(reviewer).get("/api/v1/attacks/", {"status": "confirmed"}).json()
    assert [r["id"] for r in as_reviewer["results"]] == [confirmed.pk]
    assert "author" not in as_reviewer["results"][0]  # reviewers review blind
    research = _client_for(ResearcherFactory())
    assert [
        r["id"] for r in research.get("/api/v1/attacks/", {"queue": other.queue_id}).json()["results"]
    ] == [other.pk]
    rows = research.get("/api/v1/attacks/", {"source": "wild", "category": "privacy"}).json()["results"]
    assert len(rows) == 1 and rows[0]["source"] == "wild"
    assert (
        research.get("/api/v1/attacks/", {"status": "confirmed"}).json()["results"][0]["author"] == "writer"
    )
    bad = research.get("/api/v1/attacks/", {"status": "maybe"})
    assert bad.status_code == 400 and bad.json()["field"] == "status"


def test_review_page_blurs_the_attack_and_takes_a_verdict(client, reviewer, queue):
    attack = AttackFactory(queue=queue, prompt__messages=[{"role": "user", "content": "<b>evil</b> request"}])
    client.force_login(reviewer)
    page = client.get(f"/redteam/review/{queue.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="item-content" class="cw-blur" inert' in html
    assert 'id="cw-reveal"' in html
    assert "&lt;b&gt;evil&lt;/b&gt; request" in html and "<b>evil</b>" not in html  # escaped
    bad = client.post(
        f"/redteam/review/{queue.pk}/", {"action": "review", "attack": attack.pk, "verdict": "confirm"}
    )
    assert bad.status_code == 400 and "outcome: required" in bad.content.decode()
    done = client.post(
        f"/redteam/review/{queue.pk}/",
        {"action": "review", "attack": attack.pk, **{k: str(v) for k, v in CONFIRM.items()}, "note": "ok"},
    )
    assert done.status_code == 302
    attack.refresh_from_db()
    assert attack.status == Attack.Status.CONFIRMED and attack.severity == 4 and attack.review_note == "ok"
    assert "Nothing is waiting" in client.get(f"/redteam/review/{queue.pk}/").content.decode()


def test_review_home_lists_the_raters_queues(client, reviewer, queue):
    AttackFactory(queue=queue)
    AttackFactory(queue=queue, author=reviewer)  # not waiting for its own author
    client.force_login(reviewer)
    html = client.get("/redteam/review/").content.decode()
    assert queue.name in html
    assert "<td>1</td>" in html


def test_a_rater_queue_of_kind_redteam_sends_the_rater_to_the_review_page(client, reviewer, queue):
    client.force_login(reviewer)
    response = client.get(f"/rate/{queue.pk}/")
    assert response.status_code == 302 and response["Location"] == f"/redteam/review/{queue.pk}/"


def test_inactive_queue_hands_out_nothing(reviewer, queue):
    AttackFactory(queue=queue)
    Queue.objects.filter(pk=queue.pk).update(status=Queue.Status.PAUSED)
    queue.refresh_from_db()
    assert attack_claim_next(rater=reviewer, queue=queue) is None
