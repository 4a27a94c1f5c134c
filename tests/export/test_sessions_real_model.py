"""A whole conversation with the real bundled model (SmolLM2-135M-Instruct, a few tokens a reply)
through the HTTP API, then its rankings, TRL pairs and SFT row, checked against what the trainer
saw and did (tasks run eagerly on commit; the model is loaded once per test session)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from labeling.models import Turn
from labeling.services.session_templates import session_template_create
from tests.export.conversations import Conversation, check_exports, export_rows
from tests.factories import RaterFactory, RubricFactory

pytestmark = [pytest.mark.model, pytest.mark.django_db(transaction=True)]


def _rank_with_a_tie(talk: Conversation, turn: dict[str, Any], **kwargs: Any) -> None:
    """The first label best, the others tied below it (two labels: tied with each other)."""
    assert turn["status"] in ("ready", "done"), turn
    if turn["status"] == "done":  # every sample alike: kept at once, nothing to rank
        return
    labels = [a["label"] for a in turn["alternatives"]]
    talk.rank(turn, [labels] if len(labels) == 2 else [labels[:1], labels[1:]], **kwargs)


def test_a_session_with_the_real_model_in_the_exports(tmp_path):
    from model_runner.services import generator_get_bundled

    trainer = RaterFactory()
    queue = session_template_create(
        name="talk to smollm2",
        rubric=RubricFactory(),
        generators=[generator_get_bundled()],
        alternatives=3,
        max_turns=4,
        system_prompt="Answer in one short sentence.",
        sampling={"max_new_tokens": 8},
        members=[trainer],
    )
    api = APIClient()
    api.force_authenticate(trainer)
    talk = Conversation.start(api, queue.pk, system="Answer in one short sentence.")
    _rank_with_a_tie(talk, talk.say("Name a colour."))
    _rank_with_a_tie(talk, talk.say("Name a fruit."), rewrite="An apple.")
    turn = talk.say("Name an animal.")
    _rank_with_a_tie(talk, turn)
    talk.back_to(Turn.objects.get(pk=turn["id"]).parent_id)  # the animal question is abandoned
    _rank_with_a_tie(talk, talk.say("Name a bird."))
    talk.reply(talk.say("Name a tree.", generate=False), "An oak.")
    talk.finish()

    kept = Turn.objects.filter(session_id=talk.id, abandoned=False).exclude(chosen=None)
    assert "smollm2-135m-instruct" in set(kept.values_list("chosen__generator__name", flat=True))
    assert Turn.objects.filter(session_id=talk.id, abandoned=True).exists()
    rows = check_exports(tmp_path, [talk], queue_id=queue.pk)
    [(_, row)] = rows["sft"]
    assert row["messages"][0] == {"role": "system", "content": "Answer in one short sentence."}
    assert [m["content"] for m in row["messages"][1::2]] == [
        "Name a colour.",
        "Name a fruit.",
        "Name a bird.",
        "Name a tree.",
    ]
    assert row["messages"][-1]["content"] == "An oak." and row["trainer_replies"][-1] == 8
    assert "animal" not in str(row["messages"])
    # Every row of the session is in one split, whatever the split.
    splits = set()
    every = {"filters": {"queues": [queue.pk]}, "options": {"test_fraction": 0.5}}
    for fmt in ("rankings", "trl", "sft"):
        exported, _ = export_rows(tmp_path, "split", {"format": fmt, **every})
        splits |= {split for split, _ in exported}
    assert len(splits) == 1
