"""Every view loads with Hugging Face ``datasets`` from the snapshot folder, matching golden files.

The fixture (tests/export/conftest.py) has known answers: a multi-turn prompt, an A/B swap, a tie,
and a K=4 ranking with a tie. Database ids differ between SQLite and PostgreSQL, so golden
comparisons rename ids to their order of first appearance (``normalize``).

Every load is strict: a Python warning or a warning ``datasets`` logs (such as the one about a
card's ``splits`` lacking ``num_bytes``) fails the test (the ``hf`` fixture, and ``-W error`` on
the tests that load exports, ``STRICT``).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import pytest

from export.services import export_snapshot_write
from export.spec import export_spec_clean

# The tests that load exports run with every Python warning an error (the trainer tests do not:
# TRL's own configs warn under transformers 5, which is not the export's doing).
STRICT = pytest.mark.filterwarnings("error")
GOLDEN = Path(__file__).parent / "golden"
# (file stem, request): each is written with every row in train, then checked.
CASES = [
    ("trl", {"format": "trl"}),
    ("trl_standard", {"format": "trl", "options": {"standard": True}}),
    ("trl_implicit", {"format": "trl", "options": {"implicit_prompt": True}}),
    ("trl_mean", {"format": "trl", "aggregation": "mean"}),
    ("native", {"format": "native"}),
    ("rankings", {"format": "rankings"}),
    ("rankings_pairs", {"format": "rankings", "options": {"pairs": True}}),
    ("hh", {"format": "hh"}),
    ("helpsteer", {"format": "helpsteer"}),
    ("ratings", {"format": "ratings"}),
]
ROWS = {
    "trl": 10,
    "trl_standard": 10,
    "trl_implicit": 10,
    "trl_mean": 10,
    "native": 7,
    "rankings": 1,
    "rankings_pairs": 5,
    "hh": 10,
    "helpsteer": 12,
    "ratings": 6,
}
_ID_SPACES = {
    "judgment_id": "judgment",
    "ranking_id": "judgment",
    "comparison_id": "comparison",
    "candidate_id": "candidate",
    "queue_id": "queue",
    "rubric_id": "rubric",
    "rater_id": "rater",
    "generator": "generator",
}


def normalize(rows: list[dict]) -> list[dict]:
    """Ids (and factory-numbered names, timestamps) become their order of first appearance."""
    seen: dict[str, dict] = {}

    def rename(space: str, value):
        if value is None:
            return None
        table = seen.setdefault(space, {})
        return table.setdefault(value, f"{space}-{len(table) + 1}")

    def walk(obj, key=None, native=False):
        if isinstance(obj, dict):
            native = native or "candidates" in obj
            return {k: walk(v, k, native) for k, v in obj.items()}
        if isinstance(obj, list):
            if key == "shown_order" and native:  # candidate ids (in the rankings view: positions)
                return [rename("candidate", x) for x in obj]
            return [walk(v, key, native) for v in obj]
        if key in _ID_SPACES:
            return rename(_ID_SPACES[key], obj)
        if key == "created_at":
            return "<time>"
        return obj

    return [walk(row) for row in rows]


def write(tmp_path: Path, request: dict, name: str = "golden") -> tuple[Path, dict]:
    options = {"test_fraction": 0.0, **request.get("options", {})}
    spec = export_spec_clean(name=name, **{**request, "options": options})
    folder = tmp_path / f"{name}-{request['format']}-{len(os.listdir(tmp_path)) if tmp_path.exists() else 0}"
    return folder, export_snapshot_write(spec=spec, folder=folder)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def hf(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()

    def load(folder: Path):
        """``load_dataset(folder)`` with every warning an error, those ``datasets`` logs included."""
        logged: list[logging.LogRecord] = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = logged.append
        logger = logging.getLogger("datasets")
        logger.addHandler(handler)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                ds = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))
        finally:
            logger.removeHandler(handler)
        assert not logged, [r.getMessage() for r in logged]
        return ds

    return load


@STRICT
@pytest.mark.django_db
def test_every_view_loads_with_datasets_and_matches_golden(export_data, tmp_path, hf):
    (tmp_path / "out").mkdir()
    for stem, request in CASES:
        folder, manifest = write(tmp_path / "out", request)
        rows = jsonl(folder / "data" / "train.jsonl")
        assert manifest["rows"] == ROWS[stem] == len(rows), stem
        assert [list(r) for r in rows[:1]] == [manifest["columns"]], stem  # keys in schema order

        golden = GOLDEN / f"{stem}.jsonl"
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in normalize(rows))
        if os.environ.get("PREFLAB_UPDATE_GOLDEN"):
            golden.write_text(text, encoding="utf-8")
        assert text == golden.read_text(encoding="utf-8"), stem

        ds = hf(folder)  # the README's YAML header points at the Parquet files
        assert list(ds) == ["train"], stem
        assert ds["train"].num_rows == ROWS[stem], stem
        assert list(ds["train"].features) == manifest["columns"], stem
        # Parquet and JSONL hold the same rows.
        assert ds["train"].to_list() == rows, stem


@STRICT
@pytest.mark.django_db
def test_types_of_the_trl_view(export_data, tmp_path, hf):
    import datasets

    folder, _ = write(tmp_path, {"format": "trl"})
    train = hf(folder)["train"]
    for column in ("prompt", "chosen", "rejected"):
        feature = train.features[column]
        assert isinstance(feature, datasets.List), feature
        assert set(feature.feature) == {"role", "content"}
    assert train.features["margin"].dtype == "float64"
    assert train.features["ranking_id"].dtype == "int64"
    assert train.features["rater_id"].dtype == "string"
    multi = [r for r in train if r["prompt_id"] == "p-multi"][0]
    assert [m["role"] for m in multi["prompt"]] == ["system", "user", "assistant", "user"]
    assert multi["chosen"] == [{"role": "assistant", "content": "3, café."}]


@STRICT
@pytest.mark.django_db
def test_splits_never_share_a_prompt_and_are_stable(export_data, tmp_path, hf):
    from export.splits import prompt_split
    from tests.export.conftest import _judge
    from tests.factories import make_pair

    # Enough prompts that every split is non-empty.

    for _ in range(30):
        _judge(queue=export_data.queue, comparison=make_pair(), rater=export_data.raters[0], preference=2)
    request = {
        "format": "trl",
        "options": {"test_fraction": 0.3, "validation_fraction": 0.2, "redteam_split": True},
    }
    spec = export_spec_clean(name="split-check", **request)
    first = export_snapshot_write(spec=spec, folder=tmp_path / "a")
    ds = hf(tmp_path / "a")
    prompts = {split: set(ds[split]["prompt_id"]) for split in ds}
    assert set(prompts) >= {"train", "test", "validation"}
    for a in prompts:
        for b in prompts:
            if a != b:
                assert not prompts[a] & prompts[b], (a, b)
    # More data later: every earlier prompt keeps its split.
    for _ in range(5):
        _judge(queue=export_data.queue, comparison=make_pair(), rater=export_data.raters[1], preference=-1)
    export_snapshot_write(spec=spec, folder=tmp_path / "b")
    later = hf(tmp_path / "b")
    for split in prompts:
        assert prompts[split] <= set(later[split]["prompt_id"])
    assert first["splits"]["train"] + first["splits"]["test"] + first["splits"]["validation"] == first["rows"]
    assert (
        prompt_split(
            name="x", content_hash="abc", source="redteam", messages=[], options={"redteam_split": True}
        )
        == "redteam"
    )


@pytest.mark.django_db
def test_aggregation_majority_and_mean(export_data, tmp_path, rater, rater2):
    from labeling.models import Assignment
    from tests.factories import AssignmentFactory, JudgmentFactory, QueueItemFactory, RaterFactory, make_pair

    pair = make_pair(texts=("Good.", "Bad."))
    item = QueueItemFactory(queue=export_data.queue, comparison=pair)
    first, second = (m.candidate_id for m in pair.members.order_by("position"))
    # In stored positions the votes are -3 and -1 (Good better; the second rater saw the pair
    # reversed, so their +1 = label B = Good) and +2 (Bad better).
    for user, preference, shown in (
        (rater, -3, [first, second]),
        (rater2, 1, [second, first]),
        (RaterFactory(), 2, [first, second]),
    ):
        assignment = AssignmentFactory(
            item=item, rater=user, status=Assignment.Status.SUBMITTED, shown_order=shown
        )
        JudgmentFactory(assignment=assignment, preference=preference)
    for aggregation, margin, agreement in (("majority", 2.0, 0.6667), ("mean", 0.6667, 0.6667)):
        folder, manifest = write(
            tmp_path, {"format": "trl", "aggregation": aggregation, "filters": {"min_judgments": 3}}
        )
        rows = jsonl(folder / "data" / "train.jsonl")
        assert len(rows) == 1, aggregation
        row = rows[0]
        assert (row["chosen"][0]["content"], row["rejected"][0]["content"]) == ("Good.", "Bad.")
        assert row["margin"] == margin and row["agreement"] == agreement and row["n_judgments"] == 3
        assert row["rater_id"] is None
        # min_judgments tests each pooled candidate pair: 5 + 1 pairs of one vote, 6 of the ranking.
        assert manifest["skipped"]["pairs_below_min_judgments"] == 12
        assert "comparisons_below_min_judgments" not in manifest["skipped"]
    _, manifest = write(tmp_path, {"format": "trl", "filters": {"min_agreement": 0.9, "min_judgments": 2}})
    assert manifest["rows"] == 0 and manifest["skipped"]["comparisons_below_min_agreement"] == 1


@pytest.mark.django_db
def test_filters_gold_paused_generators_tags(export_data, tmp_path, rater):
    from labeling.models import QueueItem

    j = export_data.judgments
    QueueItem.objects.filter(pk=j["a_much_better"].assignment.item_id).update(is_gold=True)
    _, m = write(tmp_path, {"format": "native", "filters": {"exclude_gold": True}})
    assert m["rows"] == 6
    rater.is_active = False
    rater.save()
    _, m = write(tmp_path, {"format": "native", "filters": {"exclude_paused_raters": True}})
    assert m["rows"] == 2  # rater2's two judgments
    generator = j["ranking"].assignment.item.comparison.candidates.first().generator
    _, m = write(tmp_path, {"format": "native", "filters": {"generators": [generator.name]}})
    assert m["rows"] == 1
    prompt = j["tie"].assignment.item.comparison.prompt
    prompt.tags = ["greeting"]
    prompt.save()
    _, m = write(tmp_path, {"format": "native", "filters": {"tags": ["greeting", "other"]}})
    assert m["rows"] == 1


def _tiny_tokenizer():
    """A word-level tokenizer built here (no downloads) with a ChatML-style chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    fast.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <eos> {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|> {% endif %}"
    )
    return fast


@pytest.mark.django_db
def test_trl_reward_and_dpo_trainers_prepare_the_trl_view(export_data, tmp_path, hf):
    """RewardTrainer and DPOTrainer tokenize the export as it is (tiny model, no training)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    torch.manual_seed(0)
    folder, _ = write(tmp_path, {"format": "trl"})
    train = hf(folder)["train"]
    tokenizer = _tiny_tokenizer()
    config = LlamaConfig(  # type: ignore[call-arg]
        vocab_size=8,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=0,
        num_labels=1,
    )
    common = {"output_dir": str(tmp_path / "trl"), "report_to": [], "bf16": False, "use_cpu": True}

    reward = RewardTrainer(
        model=LlamaForSequenceClassification(config),
        args=RewardConfig(**common, max_length=512),
        train_dataset=train,
        processing_class=tokenizer,
    )
    prepared = reward.train_dataset
    assert prepared.num_rows == train.num_rows
    assert {"chosen_ids", "rejected_ids", "margin"} <= set(prepared.column_names)
    assert sorted(prepared["margin"]) == sorted(train["margin"])

    dpo = DPOTrainer(
        model=LlamaForCausalLM(config),
        ref_model=LlamaForCausalLM(config),
        args=DPOConfig(**common, max_length=512),
        train_dataset=train,
        processing_class=tokenizer,
    )
    assert dpo.train_dataset.num_rows == train.num_rows
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(dpo.train_dataset.column_names)
