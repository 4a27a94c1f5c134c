"""Conversation sessions in the exports, built through the HTTP API with the fake model (tasks run
eagerly on commit): each ranked turn is an ordinary ranking in ``rankings`` and ``trl`` (the
turns of abandoned branches too), each finished session one ``sft`` row along its kept branch, and
every row of one session lands in one split."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from comparisons.models import Prompt
from export.splits import prompt_split_key
from labeling.models import Queue, Turn
from labeling.services.session_templates import session_template_create
from tests.export.conversations import Conversation, check_exports, export_rows, judgment_of
from tests.factories import PromptFactory, RaterFactory, RubricFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chat(fake_backend) -> tuple[APIClient, Queue]:
    from model_runner.services import generator_get_bundled

    trainer = RaterFactory(username="tess")
    queue = session_template_create(
        name="talk to the model",
        rubric=RubricFactory(),
        generators=[generator_get_bundled()],
        alternatives=3,
        max_turns=3,
        system_prompt="Be brief.",
        members=[trainer],
    )
    api = APIClient()
    api.force_authenticate(trainer)
    return api, queue


def by_sample(turn: dict[str, Any]) -> list[str]:
    """The turn's labels in the order of the fake model's sample numbers ("<prompt>: sample n")."""
    return [a["label"] for a in sorted(turn["alternatives"], key=lambda a: a["text"])]


def test_a_session_is_in_the_rankings_trl_and_sft_exports(chat, tmp_path):
    api, queue = chat
    talk = Conversation.start(api, queue.pk, system="Be brief.")
    turn = talk.say("What is the capital of France?")
    s0, s1, s2 = by_sample(turn)
    talk.rank(turn, [[s2], sorted([s0, s1])])  # a tie below the best; keeps sample 2
    first_reply = turn["alternatives"][["A", "B", "C"].index(s2)]["text"]

    turn = talk.say("And of Italy?")
    s0, s1, s2 = by_sample(turn)
    talk.rank(turn, [sorted([s0, s2]), [s1]], rewrite="Rome.")  # a tie at the top, and a better reply

    turn = talk.say("And of Spain?")
    s0, s1, s2 = by_sample(turn)
    talk.rank(turn, [[s1], sorted([s0, s2])])
    left = Turn.objects.get(pk=turn["id"])
    assert left.parent is not None
    talk.back_to(left.parent.pk)  # the Spain question and its ranked reply become an abandoned branch

    turn = talk.say("And of Portugal?")
    s0, s1, s2 = by_sample(turn)
    talk.rank(turn, [sorted([s0, s1]), [s2]])
    talk.finish()

    rows = check_exports(tmp_path, [talk], queue_id=queue.pk)
    # Four rankings, the abandoned turn's included; each K=3 ranking with one tie is two pairs.
    assert len(rows["rankings"]) == 4 and len(rows["trl"]) == 8
    assert judgment_of(left.pk) in {row["ranking_id"] for _, row in rows["rankings"]}
    [(_, row)] = rows["sft"]
    assert row["messages"][:5] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": first_reply},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome."},
    ]
    assert [m["role"] for m in row["messages"][5:]] == ["user", "assistant"]
    assert row["messages"][5]["content"] == "And of Portugal?"
    assert "Spain" not in str(row["messages"])
    assert row["trainer_replies"] == [4]
    assert [r["source"] for r in row["replies"]] == ["model", "rewrite", "model"]
    assert [r["index"] for r in row["replies"]] == [2, 4, 6]
    assert row["session_id"] == talk.id and row["queue_id"] == queue.pk and row["mode"] == "chat"
    # The replies join the rankings: the kept candidate is in the best group of its ranking.
    ranking_rows = {r["ranking_id"]: r for _, r in rows["rankings"]}
    for reply in (row["replies"][0], row["replies"][2]):
        ranked = ranking_rows[reply["judgment_id"]]
        best = {ranked["responses"][i]["candidate_id"] for i in ranked["ranking"][0]}
        assert reply["candidate_id"] in best and ranked["comparison_id"] == reply["comparison_id"]
    assert row["replies"][1]["generator"] == "human-rewrite" and row["replies"][1]["judgment_id"]
    assert row["rater_id"] == rows["rankings"][0][1]["rater_id"]  # the trainer's pseudonym in both

    # An unfinished session has no sft row; its rankings are exported all the same.
    other = Conversation.start(api, queue.pk, system="Be brief.")
    turn = other.say("Say hi.")
    s0, s1, s2 = by_sample(turn)
    other.rank(turn, [[s0, s1], [s2]])
    check_exports(tmp_path, [talk, other], queue_id=queue.pk)


def test_every_turn_of_a_session_lands_in_one_split(chat, tmp_path):
    api, queue = chat
    talks = []
    for i in range(16):
        talk = Conversation.start(api, queue.pk, system="Be brief.")
        # The first two sessions open alike: they share their first turn's prompt.
        turn = talk.say("Shall we start?" if i < 2 else f"Question number {i}?")
        s0, s1, s2 = by_sample(turn)
        talk.rank(turn, [[s0], sorted([s1, s2])])
        turn = talk.say(f"A follow-up, {i}.")
        s0, s1, s2 = by_sample(turn)
        talk.rank(turn, [sorted([s0, s1]), [s2]])
        if i % 3 == 0:
            turn = talk.say("One more?", generate=False)
            talk.reply(turn, f"Written by the trainer, {i}.")
        talk.finish()
        talks.append(talk)
    assert Turn.objects.filter(role="assistant").values("prompt_id").distinct().count() == 16 * 2 - 1 + 6

    sessions_of: dict[str, set[int]] = {}
    for turn in Turn.objects.exclude(prompt=None):
        sessions_of.setdefault(str(turn.prompt_id), set()).add(turn.session_id)
    splits: dict[int, set[str]] = {}
    options = {"test_fraction": 0.5}
    for fmt in ("rankings", "trl", "sft"):
        rows, manifest = export_rows(tmp_path, "split-talks", {"format": fmt, "options": options})
        assert manifest["rows"] == {"rankings": 32, "trl": 64, "sft": 16}[fmt]
        for split, row in rows:
            sessions = {row["session_id"]} if fmt == "sft" else sessions_of[row["prompt_id"]]
            for session in sessions:
                splits.setdefault(session, set()).add(split)
    assert len(splits) == 16
    assert all(len(s) == 1 for s in splits.values()), splits
    assert {next(iter(s)) for s in splits.values()} == {"train", "test"}
    assert splits[talks[0].id] == splits[talks[1].id]


def _seeded(fake_backend: Any, *, system_prompt: str) -> tuple[Conversation, Queue]:
    from model_runner.services import generator_get_bundled

    opening = [
        {"role": "user", "content": "Plan a trip."},
        {"role": "assistant", "content": "Where to?"},
        {"role": "user", "content": "Lisbon, in May."},
    ]
    trainer = RaterFactory()
    queue = session_template_create(
        name=f"seeded {system_prompt!r}",
        rubric=RubricFactory(),
        generators=[generator_get_bundled()],
        alternatives=3,
        system_prompt=system_prompt,
        seeds=[PromptFactory(messages=opening)],
        members=[trainer],
    )
    api = APIClient()
    api.force_authenticate(trainer)
    talk = Conversation.start(api, queue.pk, system=system_prompt)
    assert [t["source"] for t in talk.branch] == [None, "seed", None] and talk.opening is not None
    s0, s1, s2 = by_sample(talk.opening)
    talk.rank(talk.opening, [[s1], sorted([s0, s2])])
    turn = talk.say("Three days.")
    s0, s1, s2 = by_sample(turn)
    talk.rank(turn, [sorted([s1, s2]), [s0]])
    talk.finish()
    return talk, queue


def _split_keys(talk: Conversation) -> set[str]:
    prompts = Prompt.objects.filter(pk__in=Turn.objects.filter(session_id=talk.id).values("prompt_id"))
    return {
        prompt_split_key(content_hash=p.content_hash, source=p.source, messages=p.messages) for p in prompts
    }


def test_a_seeded_session_keeps_its_opening_and_one_split(fake_backend, tmp_path):
    talk, queue = _seeded(fake_backend, system_prompt="Be brief.")
    rows = check_exports(tmp_path, [talk], queue_id=queue.pk)
    [(_, row)] = rows["sft"]
    assert [m["content"] for m in row["messages"][:4]] == [
        "Be brief.",
        "Plan a trip.",
        "Where to?",
        "Lisbon, in May.",
    ]
    assert [r["source"] for r in row["replies"]] == ["seed", "model", "model"]
    assert row["replies"][0]["candidate_id"] is None and row["replies"][0]["prompt_id"] is None
    assert len(_split_keys(talk)) == 1


def test_a_seeded_session_without_a_system_prompt_keeps_one_split(fake_backend, tmp_path):
    """Its first model turn asks the seed's very messages: a conversation prompt of its own (prompts
    of sessions dedupe among conversations only), so it splits with the session."""
    talk, _ = _seeded(fake_backend, system_prompt="")
    assert len(_split_keys(talk)) == 1
