"""Conversation sessions through the HTTP API (the fake backend stands in for the model; tasks run
eagerly on commit): open, talk, rank with ties, write a reply, branch, finish; the rankings are
ordinary judgments; seeds, limits and the doors."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from comparisons.models import Candidate, Prompt
from labeling.models import Assignment, Judgment, Queue, Session, SessionSeed, Turn
from labeling.services import assignment_claim_next
from labeling.services.session_templates import session_template_create
from tests.factories import AdminFactory, PromptFactory, RaterFactory, RubricFactory
from tests.integrity import assert_no_drift

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(fake_backend):
    from model_runner.services import generator_get_bundled

    trainer = RaterFactory(username="tess")
    queue = session_template_create(
        name="chat with the model",
        rubric=RubricFactory(),
        generators=[generator_get_bundled()],
        alternatives=3,
        max_turns=3,
        system_prompt="Be brief.",
        members=[trainer],
    )
    client = APIClient()
    client.force_authenticate(trainer)
    return {"trainer": trainer, "queue": queue, "api": client, "fake": fake_backend}


def _session(api: APIClient, queue: Queue) -> dict[str, Any]:
    response = api.post("/api/v1/sessions/", {"queue": queue.pk}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _say(api: APIClient, session_id: int, text: str, **extra: Any) -> dict[str, Any]:
    response = api.post(f"/api/v1/sessions/{session_id}/messages/", {"text": text, **extra}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def _last(session: dict[str, Any]) -> dict[str, Any]:
    return session["turns"][-1]


def _rank(api: APIClient, turn: dict[str, Any], ranking: list[list[str]], **extra: Any) -> None:
    response = api.post(
        f"/api/v1/assignments/{turn['assignment']}/judgment/", {"ranking": ranking, **extra}, format="json"
    )
    assert response.status_code == 201, response.content


def test_a_whole_session(world):
    api, queue = world["api"], world["queue"]
    session = _session(api, queue)
    assert session["turns"] == [] and session["can_say"] and session["turns_left"] == 3

    # turn 1: three blind alternatives, ranked with a tie; the conversation keeps the top one
    session = _say(api, session["id"], "What is the capital of France?")
    turn = _last(session)
    assert turn["status"] == "ready" and [a["label"] for a in turn["alternatives"]] == ["A", "B", "C"]
    assert "generator" not in str(turn) and "smollm2" not in str(turn)
    _rank(api, turn, [["C"], ["A", "B"]])
    session = api.get(f"/api/v1/sessions/{session['id']}/").json()
    kept = _last(session)
    assert kept["status"] == "done" and kept["text"] == turn["alternatives"][2]["text"]
    assert not kept["by_trainer"]

    # turn 2: ranked, but the trainer writes a better reply, which the conversation keeps
    turn = _last(_say(api, session["id"], "And of Italy?"))
    _rank(api, turn, [["A", "B", "C"]], rewrite="Rome.")
    session = api.get(f"/api/v1/sessions/{session['id']}/").json()
    assert _last(session)["text"] == "Rome." and _last(session)["by_trainer"]

    # turn 3: the trainer writes the model's turn outright (a demonstration)
    turn = _last(_say(api, session["id"], "And of Spain?", generate=False))
    assert turn["status"] == "pending" and turn["alternatives"] == []
    reply = api.post(
        f"/api/v1/sessions/{session['id']}/turns/{turn['id']}/reply/", {"text": "Madrid."}, format="json"
    )
    assert reply.status_code == 200 and reply.json()["text"] == "Madrid." and reply.json()["by_trainer"]

    # the prompt of each model turn is the conversation so far, system prompt first
    prompts = [t.prompt for t in Turn.objects.filter(role="assistant").order_by("position")]
    assert prompts[0].source == Prompt.Source.CONVERSATION
    assert prompts[1].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": turn_text(0)},
        {"role": "user", "content": "And of Italy?"},
    ]
    # three turns is the template's limit
    session = api.get(f"/api/v1/sessions/{session['id']}/").json()
    assert session["turns_left"] == 0 and not session["can_say"]
    refused = api.post(f"/api/v1/sessions/{session['id']}/messages/", {"text": "More?"}, format="json")
    assert refused.status_code == 409

    # rankings are ordinary judgments of the conversation queue
    judgments = Judgment.objects.filter(assignment__item__queue=queue).order_by("id")
    assert [j.ranking for j in judgments] == [[["C"], ["A", "B"]], [["A", "B", "C"]]]
    finished = api.post(f"/api/v1/sessions/{session['id']}/finish/").json()
    assert finished["status"] == "finished"
    assert (
        api.post(f"/api/v1/sessions/{session['id']}/messages/", {"text": "x"}, format="json").status_code
        == 409
    )
    assert_no_drift()


def turn_text(position: int) -> str:
    return Turn.objects.get(role="assistant", position=2 * position + 1, abandoned=False).text


def test_going_back_keeps_the_old_branch_and_asks_again(world):
    api, queue = world["api"], world["queue"]
    session = _session(api, queue)
    first = _last(_say(api, session["id"], "Name a colour."))
    _rank(api, first, [["A"], ["B"], ["C"]])
    second = _last(_say(api, session["id"], "Another one."))
    # back to the first model turn: it and the later turns are abandoned, and it is asked again
    back = api.post(f"/api/v1/sessions/{session['id']}/branch/", {"turn": first["id"]}, format="json")
    assert back.status_code == 200
    turns = back.json()["turns"]
    assert [t["role"] for t in turns] == ["user", "assistant"]
    again = turns[-1]
    assert again["id"] != first["id"] and again["status"] == "ready"
    assert Turn.objects.filter(abandoned=True).count() == 3  # first answer, second message, its turn
    # the abandoned turn's open ranking was given back; the old judgment stays in the data
    assert Assignment.objects.get(pk=second["assignment"]).status == Assignment.Status.SKIPPED
    assert Judgment.objects.filter(assignment_id=first["assignment"]).exists()
    # new alternatives (other sample indices) on the same prompt
    old = Candidate.objects.filter(pk__in=Assignment.objects.get(pk=first["assignment"]).shown_order)
    new = Candidate.objects.filter(pk__in=Assignment.objects.get(pk=again["assignment"]).shown_order)
    assert {c.prompt_id for c in old} == {c.prompt_id for c in new} and not set(old) & set(new)
    assert_no_drift()


def test_a_failed_turn_can_be_retried_and_nothing_written_is_lost(world):
    api, queue = world["api"], world["queue"]
    session = _session(api, queue)
    turn = _last(_say(api, session["id"], "This is TOO LONG for the fake model."))
    assert turn["status"] == "failed" and "too long" in turn["error"] and turn["retryable"]
    assert Turn.objects.get(role="user").text == "This is TOO LONG for the fake model."
    retried = api.post(f"/api/v1/sessions/{session['id']}/turns/{turn['id']}/retry/")
    assert retried.status_code == 202 and retried.json()["status"] == "failed"  # the fake refuses again
    # a ready turn is not stuck: no retry
    other = _session(api, queue)
    ready = _last(_say(api, other["id"], "Hello"))
    assert api.post(f"/api/v1/sessions/{other['id']}/turns/{ready['id']}/retry/").status_code == 409


def test_seeds_open_sessions_and_respect_the_overlap(fake_backend):
    from model_runner.services import generator_get_bundled

    a, b, c = RaterFactory(), RaterFactory(), RaterFactory()
    seed = PromptFactory(messages=[{"role": "user", "content": "Plan a trip to Lisbon."}])
    queue = session_template_create(
        name="seeded",
        rubric=RubricFactory(),
        generators=[generator_get_bundled()],
        seeds=[seed],
        overlap=2,
        members=[a, b, c],
    )
    for trainer in (a, b):
        api = APIClient()
        api.force_authenticate(trainer)
        session = _session(api, queue)
        assert [t["role"] for t in session["turns"]] == ["user", "assistant"]
        assert (
            session["turns"][0]["text"] == "Plan a trip to Lisbon."
            and session["turns"][1]["status"] == "ready"
        )
        # the same trainer never starts the same seed twice
        assert api.post("/api/v1/sessions/", {"queue": queue.pk}, format="json").status_code == 409
    api = APIClient()
    api.force_authenticate(c)
    assert api.post("/api/v1/sessions/", {"queue": queue.pk}, format="json").status_code == 409
    assert SessionSeed.objects.get().started == 2 and Session.objects.count() == 2


def test_only_members_and_only_the_trainer(world):
    api, queue = world["api"], world["queue"]
    session = _session(api, queue)
    outsider = APIClient()
    outsider.force_authenticate(RaterFactory())
    assert outsider.post("/api/v1/sessions/", {"queue": queue.pk}, format="json").status_code == 404
    assert outsider.get(f"/api/v1/sessions/{session['id']}/").status_code == 404
    assert (
        outsider.post(
            f"/api/v1/sessions/{session['id']}/messages/", {"text": "hi"}, format="json"
        ).status_code
        == 404
    )
    # a conversation queue's items are not handed out by next
    assert api.post(f"/api/v1/queues/{queue.pk}/next/").status_code == 409
    with pytest.raises(Exception, match="conversations"):
        assignment_claim_next(rater=world["trainer"], queue=queue)


def test_admins_create_templates_over_the_api(fake_backend):
    from model_runner.services import generator_get_bundled

    admin = AdminFactory()
    RaterFactory(username="tom")
    api = APIClient()
    api.force_authenticate(admin)
    body = {
        "name": "demo chat",
        "rubric": RubricFactory().pk,
        "generators": [generator_get_bundled().name],
        "alternatives": 4,
        "members": ["tom"],
    }
    created = api.post("/api/v1/session-templates/", body, format="json")
    assert created.status_code == 201 and created.json()["alternatives"] == 4
    assert (
        api.post(
            "/api/v1/session-templates/", {**body, "name": "x", "alternatives": 10}, format="json"
        ).status_code
        == 400
    )
    assert (
        api.post(
            "/api/v1/session-templates/", {**body, "name": "y", "generators": ["nope"]}, format="json"
        ).status_code
        == 400
    )
    assert api.post("/api/v1/session-templates/", body, format="json").status_code == 409


def test_finishing_gives_back_an_unranked_turn_and_stops_its_generation(world):
    api, queue, trainer = world["api"], world["queue"], world["trainer"]
    session = _session(api, queue)
    ready = _last(_say(api, session["id"], "Hello"))
    assert ready["status"] == "ready"
    api.post(f"/api/v1/sessions/{session['id']}/finish/")
    assert Assignment.objects.get(pk=ready["assignment"]).status == Assignment.Status.SKIPPED
    # a ranking sent after finishing (a stale tab) is refused and keeps nothing
    late = api.post(
        f"/api/v1/assignments/{ready['assignment']}/judgment/",
        {"ranking": [["A"], ["B"], ["C"]]},
        format="json",
    )
    assert late.status_code in (404, 409) and not Judgment.objects.exists()
    assert Turn.objects.get(pk=ready["id"]).status == Turn.Status.READY

    # a turn still waiting for a worker when the session ends is not made, nor leased
    from labeling.services.session_generation import turns_generate
    from labeling.services.sessions import session_finish, session_say, session_start

    other = session_start(trainer=trainer, queue=queue)
    waiting = session_say(session=other, text="Hi", generate=False)
    Turn.objects.filter(pk=waiting.pk).update(requested_at=waiting.session.created_at)  # asked, not yet taken
    session_finish(session=other)
    assert turns_generate(turn_id=waiting.pk, gather=False) == 0
    assert Turn.objects.get(pk=waiting.pk).status == Turn.Status.PENDING
    assert not Assignment.objects.filter(rater=trainer, status=Assignment.Status.LEASED).exists()
    assert_no_drift()


def test_undo_is_refused_on_a_conversation_queue(world, client):
    api, queue, trainer = world["api"], world["queue"], world["trainer"]
    session = _session(api, queue)
    _rank(api, _last(_say(api, session["id"], "Hello")), [["A"], ["B", "C"]])
    client.force_login(trainer)
    response = client.post(f"/rate/{queue.pk}/undo/", follow=True)
    assert response.status_code == 200
    assert "go back to the turn" in response.content.decode()
    assert Judgment.objects.count() == 1 and Turn.objects.get(role="assistant").status == Turn.Status.DONE
    assert_no_drift()


def test_retry_refuses_a_turn_the_model_was_never_asked_for(world):
    api, queue = world["api"], world["queue"]
    session = _session(api, queue)
    turn = _last(_say(api, session["id"], "Hello", generate=False))
    refused = api.post(f"/api/v1/sessions/{session['id']}/turns/{turn['id']}/retry/")
    assert refused.status_code == 409 and "write the reply" in refused.json()["detail"]
    assert Turn.objects.get(pk=turn["id"]).requested_at is None


def test_going_back_to_the_first_message_renames_the_session(world):
    api, queue = world["api"], world["queue"]
    session = _session(api, queue)
    first = _last(_say(api, session["id"], "Tell me about owls."))
    _rank(api, first, [["A"], ["B"], ["C"]])
    user_turn = Turn.objects.get(role="user")
    assert Session.objects.get(pk=session["id"]).title == "Tell me about owls."
    back = api.post(f"/api/v1/sessions/{session['id']}/branch/", {"turn": user_turn.pk}, format="json")
    assert back.status_code == 200 and back.json()["title"] == ""
    _say(api, session["id"], "Tell me about cats.")
    assert Session.objects.get(pk=session["id"]).title == "Tell me about cats."
