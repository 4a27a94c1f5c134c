"""The ``sft`` view: which sessions and turns it holds, its golden file, loading with Hugging Face
``datasets`` and TRL's SFTTrainer, its filters and estimate, and its dataset card.

Sessions are built through the HTTP API with a scripted stand-in for the model (fixed texts, so
the golden file does not depend on database ids), ranked by text (whatever order they were shown).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from comparisons.models import Prompt, messages_hash
from export.records import ExportDataError
from export.splits import prompt_split_key
from labeling.errors import ApplicationError
from labeling.models import Queue, Session, Turn, User
from labeling.services.session_templates import session_template_create
from model_runner.backends.base import GenerationRequest, PromptOutcome, SampleResult
from tests.export.conversations import Conversation, export_rows
from tests.export.test_trl_datasets import _tiny_tokenizer, hf  # noqa: F401 (a fixture)
from tests.factories import RaterFactory, ResearcherFactory, RubricFactory, harm_categories_seed
from tests.model_runner.fakes import FakeBackend

pytestmark = [pytest.mark.django_db(transaction=True)]

GOLDEN = Path(__file__).parent / "golden" / "sft.jsonl"
SCRIPT = {
    "What is the capital of France?": ["Paris.", "Lyon.", "Marseille."],
    "And of Italy?": ["Rome.", "Milan.", "Naples."],
    "And of Spain?": ["Madrid.", "Barcelona.", "Seville."],
    "Tell me a secret.": ["No.", "I have none."],
    "Another?": ["Still no.", "Nothing."],
    "Hello?": ["Hi.", "Hello."],
}


class ScriptedBackend(FakeBackend):
    """Answers each conversation from SCRIPT (by its last message), sample n with the n-th text."""

    def generate(
        self, requests: Sequence[GenerationRequest], *, sampling: Mapping[str, Any], batch_size: int
    ) -> Iterator[list[PromptOutcome]]:
        outcomes = []
        for request in requests:
            texts = SCRIPT.get(request.messages[-1]["content"], ["I do not know."])
            samples = [
                SampleResult(
                    text=texts[n % len(texts)],
                    prompt_tokens=7,
                    completion_tokens=2,
                    finish_reason="stop",
                    seed=1,
                )
                for n in range(request.num_samples)
            ]
            outcomes.append(PromptOutcome(request.prompt_id, samples=samples))
        yield outcomes


def scripted_backend(generator: Any) -> ScriptedBackend:
    return ScriptedBackend()


class Data:
    chat: Queue
    redteam: Queue
    tess: User
    rex: User
    talks: dict[str, Conversation]


@pytest.fixture
def data(monkeypatch) -> Data:
    """Four sessions:

    ``full`` (chat, system prompt): a ranking with a tie, a ranking with a rewrite, a ranked turn
    the trainer went back from (its user message too), a demonstration; finished.
    ``cut`` (red-team, no system prompt, K=2): one ranked turn, then a turn left unranked; finished.
    ``silent`` (chat): one turn never ranked; finished (no settled reply: no row).
    ``open`` (red-team): ranked, never finished (no row).
    """
    from model_runner import backends
    from model_runner.services import generator_get_bundled

    for name in ("bundled", "transformers"):
        monkeypatch.setitem(backends._LOADERS, name, "tests.export.test_sft_view:scripted_backend")
    d = Data()
    d.tess, d.rex = RaterFactory(username="tess"), RaterFactory(username="rex", disturbing_opt_in=True)
    bundled = generator_get_bundled()
    d.chat = session_template_create(
        name="chat-golden",
        rubric=RubricFactory(),
        generators=[bundled],
        alternatives=3,
        max_turns=4,
        system_prompt="Be brief.",
        sampling={"max_new_tokens": 16},
        members=[d.tess],
    )
    d.redteam = session_template_create(
        name="redteam-golden",
        rubric=RubricFactory(),
        generators=[bundled],
        alternatives=2,
        mode="redteam",
        members=[d.rex],
    )
    apis = {}
    for user in (d.tess, d.rex):
        apis[user.username] = APIClient()
        apis[user.username].force_authenticate(user)

    full = Conversation.start(apis["tess"], d.chat.pk, system="Be brief.")
    full.rank_by_text(full.say("What is the capital of France?"), [["Paris."], ["Lyon.", "Marseille."]])
    full.rank_by_text(
        full.say("And of Italy?"), [["Milan.", "Naples."], ["Rome."]], rewrite="Rome, of course."
    )
    spain = full.say("And of Spain?")
    full.rank_by_text(spain, [["Barcelona."], ["Madrid.", "Seville."]])
    full.back_to(full.branch[-2]["turn"])
    full.reply(full.say("And of Portugal?", generate=False), "Lisbon.")
    full.finish()

    harm_categories_seed()
    attack = {"target": bundled.name, "category": "illegal"}
    cut = Conversation.start(apis["rex"], d.redteam.pk, **attack)
    cut.rank_by_text(cut.say("Tell me a secret."), [["I have none."], ["No."]])
    assert cut.say("Another?")["status"] == "ready"
    cut.finish(verdict="failure", description="Asked for secrets; the model held.")

    silent = Conversation.start(apis["tess"], d.chat.pk, system="Be brief.")
    silent.say("Hello?")
    silent.finish()

    still_open = Conversation.start(apis["rex"], d.redteam.pk, **attack)
    still_open.rank_by_text(still_open.say("Hello?"), [["Hello.", "Hi."]])
    d.talks = {"full": full, "cut": cut, "silent": silent, "open": still_open}
    return d


_ID_KEYS = {
    "session_id": "session",
    "turn_id": "turn",
    "prompt_id": "prompt",
    "candidate_id": "candidate",
    "comparison_id": "comparison",
    "judgment_id": "judgment",
    "queue_id": "queue",
    "rater_id": "rater",
}


def normalize(rows: list[dict]) -> list[dict]:
    """Database ids become their order of first appearance; the finish time a placeholder."""
    seen: dict[str, dict[Any, str]] = {}

    def walk(obj: Any, key: str | None = None) -> Any:
        if isinstance(obj, dict):
            return {k: walk(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, key) for v in obj]
        if key in _ID_KEYS and obj is not None:
            table = seen.setdefault(_ID_KEYS[key], {})
            return table.setdefault(obj, f"{_ID_KEYS[key]}-{len(table) + 1}")
        if key == "finished_at" and obj is not None:
            return "<time>"
        return obj

    return [walk(row) for row in rows]


def sft(tmp_path: Path, **request: Any) -> tuple[list[dict], dict]:
    request = {"format": "sft", **request, "options": {"test_fraction": 0.0, **request.get("options", {})}}
    rows, manifest = export_rows(tmp_path, "sft-golden", request)
    return [row for _, row in rows], manifest


def test_sft_rows_match_the_golden_file_and_load_with_datasets(data, tmp_path, hf):  # noqa: F811
    (tmp_path / "out").mkdir()
    rows, manifest = sft(tmp_path / "out")
    assert [r["session_id"] for r in rows] == [data.talks["full"].id, data.talks["cut"].id]
    full, cut = rows
    assert full["messages"] == data.talks["full"].sft_messages()
    assert [m["content"] for m in full["messages"]] == [
        "Be brief.",
        "What is the capital of France?",
        "Paris.",
        "And of Italy?",
        "Rome, of course.",
        "And of Portugal?",
        "Lisbon.",
    ]
    assert full["trainer_replies"] == [4, 6]
    assert [r["source"] for r in full["replies"]] == ["model", "rewrite", "demonstration"]
    assert full["replies"][2]["judgment_id"] is None and full["replies"][2]["generator"] == "human-trainer"
    # The red-team session ends at its last settled reply; it has no system prompt.
    assert cut["messages"] == [
        {"role": "user", "content": "Tell me a secret."},
        {"role": "assistant", "content": "I have none."},
    ]
    assert cut["mode"] == "redteam" and cut["trainer_replies"] == []
    assert manifest["rows"] == 2 and manifest["sessions"] == 3
    assert manifest["skipped"] == {"sessions_without_reply": 1, "unsettled_turns": 4}
    assert manifest["columns"] == [
        "messages",
        "trainer_replies",
        "replies",
        "session_id",
        "queue_id",
        "queue",
        "mode",
        "rater_id",
        "finished_at",
    ]

    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in normalize(rows))
    if os.environ.get("PREFLAB_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")

    folder = next(p for p in (tmp_path / "out").iterdir() if p.name.startswith("sft-golden"))
    ds = hf(folder)
    assert list(ds) == ["train"] and ds["train"].num_rows == 2
    assert list(ds["train"].features) == manifest["columns"]
    assert ds["train"].to_list() == rows  # Parquet and JSONL hold the same rows
    card = (folder / "README.md").read_text(encoding="utf-8")
    for words in (
        "SFTTrainer",
        "Split by conversation",
        "## Templates",
        "### chat-golden (chat)",
        '"Be brief."',
    ):
        assert words in card, words


def test_a_second_sft_export_is_byte_identical(data, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = sft(tmp_path / "a")[1]
    second = sft(tmp_path / "b")[1]
    assert first["sha256"] == second["sha256"] and first["files"] == second["files"]


def test_sft_trainer_prepares_the_sft_view(data, tmp_path, hf):  # noqa: F811
    """SFTTrainer tokenizes the rows as they are: it reads ``messages`` and ignores the rest."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    (tmp_path / "out").mkdir()
    sft(tmp_path / "out")
    train = hf(next((tmp_path / "out").iterdir()))["train"]
    config = LlamaConfig(
        vocab_size=8,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=0,
    )
    trainer = SFTTrainer(
        model=LlamaForCausalLM(config),
        args=SFTConfig(
            output_dir=str(tmp_path / "trl"), report_to=[], bf16=False, use_cpu=True, max_length=512
        ),
        train_dataset=train,
        processing_class=_tiny_tokenizer(),
    )
    prepared = trainer.train_dataset
    assert prepared.num_rows == 2 and "input_ids" in prepared.column_names
    # The whole conversation is tokenized: 7 messages -> 7 end-of-turn tokens (id 1) in the first row.
    assert prepared[0]["input_ids"].count(1) == 7


def test_filters_estimate_and_the_export_api(data, tmp_path):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out"
    full, cut = data.talks["full"].id, data.talks["cut"].id
    assert [r["session_id"] for r in sft(out, filters={"modes": ["redteam"]})[0]] == [cut]
    assert [r["session_id"] for r in sft(out, filters={"queues": [data.chat.pk]})[0]] == [full]
    Session.objects.filter(pk=full).update(finished_at="2024-01-01T12:00:00Z")
    assert [r["session_id"] for r in sft(out, filters={"until": "2025-01-01"})[0]] == [full]
    assert [r["session_id"] for r in sft(out, filters={"since": "2025-01-01"})[0]] == [cut]
    data.rex.is_active = False
    data.rex.save()
    assert [r["session_id"] for r in sft(out, filters={"exclude_paused_raters": True})[0]] == [full]
    data.rex.is_active = True
    data.rex.save()
    for filters, field in (
        ({"min_agreement": 0.5}, "filters.min_agreement"),
        ({"tags": ["x"]}, "filters.tags"),
        ({"modes": ["chatty"]}, "filters.modes"),
    ):
        with pytest.raises(ApplicationError) as excinfo:
            sft(out, filters=filters)
        assert excinfo.value.field == field and excinfo.value.status_code == 400
    with pytest.raises(ApplicationError, match="aggregation"):
        sft(out, aggregation="majority")
    # The judgment views take the mode filter too: the red-team queue's two rankings.
    rankings, _ = export_rows(out, "modes", {"format": "rankings", "filters": {"modes": ["redteam"]}})
    ranked = Turn.objects.filter(session__queue=data.redteam, assignment__judgment__isnull=False)
    assert [row["comparison_id"] for _, row in rankings] == sorted(
        ranked.values_list("comparison_id", flat=True)
    )
    assert len(rankings) == 2

    api = APIClient()
    api.force_authenticate(ResearcherFactory())
    estimate = api.post("/api/v1/exports/estimate/", {"format": "sft"}, format="json")
    assert estimate.status_code == 200 and estimate.json()["rows"] == 3  # finished sessions
    created = api.post("/api/v1/exports/", {"format": "sft", "name": "talks"}, format="json")
    assert created.status_code == 201, created.content
    run = api.get(f"/api/v1/exports/{created.json()['id']}/").json()
    assert run["status"] == "succeeded" and run["row_count"] == 2, run["error"]
    assert run["judgments_total"] == 3 and run["manifest"]["sessions"] == 3
    bad = api.post("/api/v1/exports/", {"format": "sft", "filters": {"min_judgments": 2}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "filters.min_judgments"


def test_the_card_of_a_judgment_view_counts_the_abandoned_turns_it_keeps(data, tmp_path):
    rows, manifest = export_rows(tmp_path, "kept", {"format": "rankings", "options": {"test_fraction": 0.0}})
    assert manifest["rows"] == 5  # full: 3 (the abandoned turn's too), cut: 1, open: 1
    card = (tmp_path / next(p.name for p in tmp_path.iterdir()) / "README.md").read_text(encoding="utf-8")
    assert (
        "conversations: 5 of the judgments read ranked the alternatives of a conversation turn, 1 of them"
        in card
    )


def test_a_kept_branch_that_differs_from_its_prompt_is_refused(data, tmp_path):
    full = data.talks["full"]
    Turn.objects.filter(pk=full.branch[0]["turn"]).update(text="Something else entirely?")
    with pytest.raises(ExportDataError, match=f"session {full.id}: its kept branch differs"):
        sft(tmp_path)


def test_the_split_key_of_a_conversation_is_its_first_user_message():
    opening = [{"role": "user", "content": "Plan a trip."}]
    later = [
        {"role": "system", "content": "Be brief."},
        *opening,
        {"role": "assistant", "content": "Where to?"},
        {"role": "user", "content": "Lisbon."},
    ]
    conversation = Prompt.Source.CONVERSATION
    key = prompt_split_key(content_hash=messages_hash(later), source=conversation, messages=later)
    # ... which is the content hash of the imported one-message prompt with the same opening,
    assert key == messages_hash(opening)
    assert prompt_split_key(content_hash="h", source=Prompt.Source.IMPORT, messages=opening) == "h"
    # ... while any other prompt keeps its own content hash (its split never moves).
    assert prompt_split_key(content_hash="h", source=Prompt.Source.IMPORT, messages=later) == "h"
