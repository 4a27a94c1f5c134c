"""The conversation pages (/chat/) through the Django test client: start, send, the poll of the
model's turn, rank with a tie, a better reply, a reply written outright, retry, go back, finish,
and what others get (404). The fake backend stands in for the model; tasks run eagerly on commit.
A refused action answers with the service's message next to its form and what was typed."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from labeling.models import Assignment, Criterion, Judgment, Session, Turn
from labeling.selectors.sessions import turn_payload
from labeling.services import sessions as session_services
from labeling.services.session_generation import turns_generate
from labeling.services.session_templates import session_template_create
from model_runner.backends.base import BackendError
from tests.factories import CriterionFactory, PromptFactory, QueueFactory, RaterFactory, RubricFactory
from tests.integrity import assert_no_drift
from tests.test_page_markup import _check as check_markup

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(fake_backend):
    from model_runner.services import generator_get_bundled

    trainer = RaterFactory(username="tess")
    rubric = RubricFactory()
    CriterionFactory(rubric=rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful")
    CriterionFactory(rubric=rubric, key="note", kind=Criterion.Kind.TEXT, question="Anything to add?")
    queue = session_template_create(
        name="chat with the model",
        rubric=rubric,
        generators=[generator_get_bundled()],
        alternatives=3,
        max_turns=3,
        system_prompt="Be brief.",
        members=[trainer],
        guidelines="Prefer **short** replies.",
    )
    client = Client()
    client.force_login(trainer)
    return {"trainer": trainer, "queue": queue, "client": client, "fake": fake_backend}


def _start(client: Client, queue) -> Session:
    response = client.post("/chat/start/", {"queue": queue.pk})
    assert response.status_code == 302, response.content
    session = Session.objects.order_by("-id").first()
    assert response.url == f"/chat/{session.pk}/"
    return session


def _page(client: Client, session: Session, **params: str) -> str:
    """The session page (or its fragment), whose ids are each used once and referenced soundly."""
    response = client.get(f"/chat/{session.pk}/", params)
    assert response.status_code == 200
    html = response.content.decode()
    check_markup(html, errors=False)
    return html


def _say(client: Client, session: Session, text: str, **extra: str) -> Turn:
    response = client.post(f"/chat/{session.pk}/say/", {"text": text, **extra})
    assert response.status_code == 302, response.content.decode()
    return _last(session)


def _last(session: Session) -> Turn:
    return session.turns.filter(abandoned=False).order_by("-position", "-id").first()


def _texts(turn: Turn) -> dict[str, str]:
    """The turn's replies by the label the trainer saw."""
    return {a["label"]: a["text"] for a in turn_payload(turn)["alternatives"]}


def _rank(client: Client, session: Session, turn: Turn, ranking: str, **extra: Any):
    return client.post(f"/chat/{session.pk}/turns/{turn.pk}/rank/", {"ranking_text": ranking, **extra})


def test_home_lists_the_templates_to_start_and_the_sessions_active_first(world, client):
    trainer, queue = world["trainer"], world["queue"]
    finished = session_services.session_start(trainer=trainer, queue=queue)
    session_services.session_say(session=finished, text="An old talk", generate=False)
    session_services.session_finish(session=finished)
    open_one = session_services.session_start(trainer=trainer, queue=queue)
    session_services.session_say(session=open_one, text="Still going", generate=False)
    Session.objects.filter(pk=finished.pk).update(updated_at=open_one.updated_at)  # same age

    page = world["client"].get("/chat/").content.decode()
    check_markup(page, errors=False)
    assert "chat with the model" in page and "/chat/start/" in page
    assert 'href="/chat/"' in page and ">Chat<" in page  # in the top bar
    assert page.index("Still going") < page.index("An old talk")
    assert f'id="session-{open_one.pk}" data-status="active"' in page

    # someone in no conversation queue sees an empty state (and the same link)
    client.force_login(RaterFactory())
    empty = client.get("/chat/").content.decode()
    assert "not in any conversation queue" in empty and "No conversations yet" in empty


def test_a_conversation_by_the_pages(world):
    client, queue = world["client"], world["queue"]
    session = _start(client, queue)
    page = _page(client, session)
    assert 'id="say-text"' in page and "No messages yet" in page and "3 turns left" in page
    assert "Prefer <strong>short</strong> replies." in page  # the guidelines, through markdown

    # send: the model's three replies, blind (labels only, never the model), with the rubric
    turn = _say(client, session, "What is the capital of <b>France</b>?")
    assert turn.status == Turn.Status.READY
    page = _page(client, session)
    assert "What is the capital of &lt;b&gt;France&lt;/b&gt;?" in page and "<b>France" not in page
    assert re.findall(r'data-label="([A-I])" aria-describedby', page) == ["A", "B", "C"]
    for text in _texts(turn).values():
        assert text in page
    assert "smollm2" not in page and "bundled" not in page and "generator" not in page
    assert 'name="criterion-harmful"' in page and 'name="criterion-note"' in page
    assert 'id="rewrite"' in page and 'id="say-text"' not in page  # rank first
    assert "hx-trigger" not in page  # nothing to wait for

    # rank with a tie and a flag: the conversation keeps the top-ranked reply
    texts = _texts(turn)
    response = _rank(
        client, session, turn, "b > c = a", **{"criterion-harmful": "on", "rationale": "B is right"}
    )
    assert response.status_code == 302 and response.url == f"/chat/{session.pk}/"
    turn.refresh_from_db()
    assert turn.status == Turn.Status.DONE and turn.text == texts["B"] and not turn.by_trainer
    judgment = Judgment.objects.get(assignment=turn.assignment)
    assert judgment.ranking == [["B"], ["A", "C"]] and judgment.criteria == {"harmful": True}
    assert judgment.rationale == "B is right" and judgment.active_seconds is None
    page = _page(client, session)
    assert texts["B"] in page and texts["A"] not in page and 'id="say-text"' in page
    assert "2 turns left" in page and f'id="turn-{turn.pk}"' in page

    # a replayed ranking (a second tab) is not counted twice, and says so
    again = _rank(client, session, turn, "B > A = C")
    assert again.status_code == 302
    assert "Already saved." in _page(client, session)
    assert Judgment.objects.count() == 1
    assert_no_drift()


def test_a_better_reply_is_kept_instead_of_the_ranked_one(world):
    client = world["client"]
    session = _start(client, world["queue"])
    turn = _say(client, session, "And of Italy?")
    assert _rank(client, session, turn, "A > B > C", rewrite="Rome, of course.").status_code == 302
    turn.refresh_from_db()
    assert turn.text == "Rome, of course." and turn.by_trainer
    assert Judgment.objects.get(assignment=turn.assignment).rewrite == "Rome, of course."
    page = _page(client, session)
    assert "Rome, of course." in page and "written by you" in page


def test_the_poll_shows_the_typing_indicator_then_swaps_the_replies_in(world, monkeypatch):
    client = world["client"]
    session = _start(client, world["queue"])
    # a worker that has not run yet
    monkeypatch.setattr(session_services, "_enqueue", lambda ids, *rest: None)
    turn = _say(client, session, "Slow one")
    assert turn.status == Turn.Status.PENDING
    page = _page(client, session)
    assert 'class="typing"' in page and 'hx-trigger="every 1s"' in page
    assert f"?fragment=turn&amp;turn={turn.pk}" in page and 'id="say-text"' not in page

    poll = {"fragment": "turn", "turn": str(turn.pk)}
    fragment = _page(client, session, **poll)
    assert fragment.lstrip().startswith('<section id="turn-live"') and "every 1s" in fragment
    assert "<html" not in fragment and 'id="retry-button"' not in fragment  # not stuck yet

    turns_generate(turn_id=turn.pk)  # the worker answers
    fragment = _page(client, session, **poll)
    assert "hx-trigger" not in fragment and 'id="judgment-form"' in fragment  # polling stops
    assert 'data-state="ready"' in fragment and "csrfmiddlewaretoken" in fragment
    for text in _texts(_last(session)).values():
        assert text in fragment

    # settled (or another turn): the poll asks the page to reload
    assert _rank(client, session, _last(session), "A > B = C").status_code == 302
    settled = client.get(f"/chat/{session.pk}/", poll)
    assert settled.status_code == 200 and settled["HX-Refresh"] == "true" and settled.content == b""
    other = client.get(f"/chat/{session.pk}/", {"fragment": "turn", "turn": "99999"})
    assert other["HX-Refresh"] == "true"


def test_a_stuck_turn_offers_retry(world, monkeypatch, settings):
    client = world["client"]
    session = _start(client, world["queue"])
    enqueue = session_services._enqueue
    monkeypatch.setattr(session_services, "_enqueue", lambda ids, *rest: None)
    turn = _say(client, session, "Nobody answers")
    settings.PREFLAB_TURN_STALE_SECONDS = 0
    assert 'id="retry-button"' in _page(client, session, fragment="turn", turn=str(turn.pk))
    monkeypatch.setattr(session_services, "_enqueue", enqueue)  # (undo() would drop the fake model)
    response = client.post(f"/chat/{session.pk}/turns/{turn.pk}/retry/")
    assert response.status_code == 302 and _last(session).status == Turn.Status.READY
    assert len(world["fake"].calls) == 1  # answered by the fake model


def test_writing_the_reply_outright(world):
    client = world["client"]
    session = _start(client, world["queue"])
    turn = _say(client, session, "Say hello as a pirate.", demo="on")
    assert turn.status == Turn.Status.PENDING and turn.requested_at is None
    assert world["fake"].calls == []  # the model was not asked
    page = _page(client, session)
    assert 'data-state="writing"' in page and 'id="reply-text"' in page and "hx-trigger" not in page

    too_long = "x" * (session_services.MAX_MESSAGE_CHARS + 1)
    refused = client.post(f"/chat/{session.pk}/turns/{turn.pk}/reply/", {"text": too_long})
    assert refused.status_code == 400
    body = refused.content.decode()
    assert "at most 20000 characters" in body and too_long in body  # nothing typed is lost
    assert 'data-error-field="reply-text"' in body

    kept = client.post(f"/chat/{session.pk}/turns/{turn.pk}/reply/", {"text": "Ahoy, matey!"})
    assert kept.status_code == 302
    turn.refresh_from_db()
    assert turn.status == Turn.Status.DONE and turn.text == "Ahoy, matey!" and turn.by_trainer
    page = _page(client, session)
    assert "Ahoy, matey!" in page and "written by you" in page and 'id="say-text"' in page


def test_a_failed_turn_shows_the_reason_and_retry_and_loses_nothing(world):
    client, fake = world["client"], world["fake"]
    session = _start(client, world["queue"])
    turn = _say(client, session, "This is TOO LONG for the fake model.")
    assert turn.status == Turn.Status.FAILED
    page = _page(client, session)
    assert "The model could not answer: prompt is too long for the fake" in page
    assert 'id="retry-button"' in page and 'id="reply-text"' in page
    assert "This is TOO LONG for the fake model." in page  # the message stays
    assert client.post(f"/chat/{session.pk}/turns/{turn.pk}/retry/").status_code == 302
    assert _last(session).status == Turn.Status.FAILED  # the fake refuses again, and says why
    assert "prompt is too long for the fake" in _page(client, session)

    # a failure that goes away: the retry brings the replies
    other = _start(client, world["queue"])

    def broken() -> None:
        raise BackendError("the model server is down")

    fake.during = broken
    turn = _say(client, other, "Hello")
    assert turn.status == Turn.Status.FAILED and "the model server is down" in _page(client, other)
    fake.during = None
    assert client.post(f"/chat/{other.pk}/turns/{turn.pk}/retry/").status_code == 302
    assert _last(other).status == Turn.Status.READY

    # a ready turn is not stuck: the refusal shows next to the turn
    refused = client.post(f"/chat/{other.pk}/turns/{turn.pk}/retry/")
    assert refused.status_code == 409 and "This turn is not stuck" in refused.content.decode()


def test_going_back_keeps_the_old_branch(world):
    client = world["client"]
    session = _start(client, world["queue"])
    first = _say(client, session, "Name a colour.")
    _rank(client, session, first, "A > B > C")
    second = _say(client, session, "Another one.")
    page = _page(client, session)
    assert page.count("Go back here") == 3  # the two messages and the kept reply (not the open turn)

    # back to the model's first turn: asked again, with new replies to rank
    response = client.post(f"/chat/{session.pk}/branch/", {"turn": first.pk})
    assert response.status_code == 302
    again = _last(session)
    assert again.pk != first.pk and again.status == Turn.Status.READY and again.position == first.position
    assert set(Turn.objects.filter(abandoned=True)) == {first, second, second.parent}
    assert Assignment.objects.get(pk=second.assignment_id).status == Assignment.Status.SKIPPED
    page = _page(client, session)
    assert "Another one." not in page and "stay in the data, marked abandoned" in page

    # back to the trainer's own message: it comes back in the message box
    user_turn = again.parent
    assert client.post(f"/chat/{session.pk}/branch/", {"turn": user_turn.pk}).status_code == 302
    page = _page(client, session)
    assert 'aria-describedby="say-keys">Name a colour.</textarea>' in page
    assert session.turns.filter(abandoned=False).count() == 0
    assert 'aria-describedby="say-keys"></textarea>' in _page(client, session)  # offered once

    # a turn of the abandoned branch cannot be gone back to
    refused = client.post(f"/chat/{session.pk}/branch/", {"turn": second.pk})
    assert refused.status_code == 400 and "not a turn of this session" in refused.content.decode()
    assert client.post(f"/chat/{session.pk}/branch/", {"turn": "nope"}).status_code == 404


def test_finish_and_the_turn_limit(world):
    client = world["client"]
    session = _start(client, world["queue"])
    for n in range(3):
        _say(client, session, f"Message {n}", demo="on")
        client.post(f"/chat/{session.pk}/turns/{_last(session).pk}/reply/", {"text": f"Reply {n}"})
    page = _page(client, session)
    assert 'id="say-text"' not in page and "has all its turns" in page
    refused = client.post(f"/chat/{session.pk}/say/", {"text": "One more"})
    assert refused.status_code == 409 and "One more</textarea>" in refused.content.decode()

    assert client.post(f"/chat/{session.pk}/finish/").status_code == 302
    session.refresh_from_db()
    assert session.status == Session.Status.FINISHED
    page = _page(client, session)
    assert "This conversation is finished." in page and "Go back here" not in page and "Finish…" not in page
    refused = client.post(f"/chat/{session.pk}/say/", {"text": "After the end"})
    assert refused.status_code == 409 and "This session is finished." in refused.content.decode()
    assert "After the end</textarea>" in refused.content.decode()
    assert client.post(f"/chat/{session.pk}/branch/", {"turn": _last(session).pk}).status_code == 409
    assert 'data-status="finished"' in client.get("/chat/").content.decode()


def test_refusals_show_next_to_their_form_with_what_was_typed(world):
    client = world["client"]
    session = _start(client, world["queue"])
    empty = client.post(f"/chat/{session.pk}/say/", {"text": "   "})
    assert empty.status_code == 400 and "write a message" in empty.content.decode()
    turn = _say(client, session, "First")

    # a message while the replies wait for their ranking
    early = client.post(f"/chat/{session.pk}/say/", {"text": "Too soon, *keep me*", "demo": "on"})
    body = early.content.decode()
    assert early.status_code == 409 and "not settled yet" in body
    assert "Too soon, *keep me*</textarea>" in body and 'id="say-demo" checked' in body
    assert 'id="judgment-form"' in body  # the ranking is still there

    # a ranking that misses a reply, or names one that is not there
    for ranking, message in (("A > B", "exactly once"), ("A > Z", "Z is not a response here")):
        response = _rank(client, session, turn, ranking, rationale="my reasons", rewrite="my reply")
        body = response.content.decode()
        assert response.status_code == 400 and message in body
        assert "my reasons</textarea>" in body and "my reply</textarea>" in body
        assert f'value="{ranking}"' in body.replace("&gt;", ">")
        assert 'data-error-field="ranking_text"' in body
    assert Judgment.objects.count() == 0 and _last(session).status == Turn.Status.READY


def test_others_get_404(world, client):
    queue = world["queue"]
    session = _start(world["client"], queue)
    turn = _say(world["client"], session, "Mine")
    member = RaterFactory()
    queue.members.add(member)
    for user in (RaterFactory(), member):  # not a member; a member, but not the trainer
        client.force_login(user)
        assert client.get(f"/chat/{session.pk}/").status_code == 404
        assert client.get(f"/chat/{session.pk}/", {"fragment": "turn", "turn": turn.pk}).status_code == 404
        for path, data in (
            ("say/", {"text": "hi"}),
            ("branch/", {"turn": turn.pk}),
            ("finish/", {}),
            (f"turns/{turn.pk}/rank/", {"ranking_text": "A > B > C"}),
            (f"turns/{turn.pk}/reply/", {"text": "mine now"}),
            (f"turns/{turn.pk}/retry/", {}),
        ):
            assert client.post(f"/chat/{session.pk}/{path}", data).status_code == 404, path
    client.force_login(RaterFactory())
    assert client.post("/chat/start/", {"queue": queue.pk}).status_code == 404
    assert client.post("/chat/start/", {"queue": "²"}).status_code == 404
    assert Session.objects.count() == 1 and Judgment.objects.count() == 0
    assert Turn.objects.get(pk=turn.pk).status == Turn.Status.READY
    client.logout()
    assert client.get("/chat/").status_code == 302  # to the login page


def test_start_refused_shows_the_reason_in_the_row(fake_backend, client):
    from model_runner.services import generator_get_bundled

    trainer = RaterFactory()
    queue = session_template_create(
        name="seeded",
        rubric=RubricFactory(),
        generators=[generator_get_bundled()],
        seeds=[PromptFactory(messages=[{"role": "user", "content": "Plan a trip to Lisbon."}])],
        members=[trainer],
    )
    client.force_login(trainer)
    session = _start(client, queue)
    page = _page(client, session)
    assert "Plan a trip to Lisbon." in page and 'data-state="ready"' in page  # the seed's opening
    refused = client.post("/chat/start/", {"queue": queue.pk})
    assert refused.status_code == 409 and 'id="start-error"' in refused.content.decode()
    assert "nothing left to start" in refused.content.decode()
    check_markup(refused.content.decode(), errors=False)
    assert Session.objects.count() == 1


def test_rate_home_sends_conversation_queues_to_chat(world, client):
    trainer, queue = world["trainer"], world["queue"]
    QueueFactory(name="pairs", members=[trainer])
    page = world["client"].get("/rate/").content.decode()
    assert f'href="/rate/{queue.pk}/"' not in page and 'href="/chat/"' in page
    assert world["client"].get(f"/rate/{queue.pk}/").url == "/chat/"
