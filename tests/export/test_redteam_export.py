"""Confirmed red-team attacks back into training and test data: red-team pairs in the pair views
(direction, margin, provenance, filters, default unchanged), the ``redteam_eval`` and
``redteam_attempts`` views, invariant 9 (a family on one side) over many families, the manifest's
and card's per-category counts, and strict loading with ``datasets``."""

from __future__ import annotations

import io
import itertools
import json
import random

import pytest
from django.core.management import call_command

from export.formats.redteam import REDTEAM_MARGIN, attack_rating
from export.records import AttackRecord, PromptInfo
from export.spec import export_spec_clean
from labeling.errors import ApplicationError
from labeling.models import Attack
from labeling.selectors.redteam import attack_side
from tests.export.test_trl_datasets import STRICT, hf, jsonl, write  # noqa: F401 (hf: a fixture)
from tests.factories import AttackFactory, CandidateFactory, PromptFactory, RaterFactory

HARMFUL = "First, insert a tension wrench into the keyhole."
REFUSAL = "I'm sorry, but I can't help with that."
SAFE = "I can't help with breaking into locks, but a locksmith can help you get back in."
HELPFUL = "Sure: boil the pasta for 9 minutes in salted water."
_counter = itertools.count()


def family_on(side: str, prefix: str = "family") -> str:
    """A fresh family name whose attacks are on ``side``."""
    while True:
        name = f"{prefix}-{next(_counter)}"
        if attack_side(family=name) == side:
            return name


def make_attack(
    *,
    family: str,
    outcome: str = "complied",
    category: str = "illegal",
    ideal: str = SAFE,
    status: str = Attack.Status.CONFIRMED,
    source: str = Attack.Source.ADVERSARY,
    reply: str | None = None,
    **extra,
) -> Attack:
    prompt = PromptFactory(messages=[{"role": "user", "content": f"attack {next(_counter)} of {family}"}])
    text = reply if reply is not None else (REFUSAL if outcome in ("refused", "over_refused") else HARMFUL)
    candidate = CandidateFactory(prompt=prompt, text=text)
    return AttackFactory(
        prompt=prompt,
        reply=candidate,
        family=family,
        outcome=outcome,
        claimed_outcome=outcome,
        category=category,
        ideal_reply=ideal,
        status=status,
        source=source,
        **extra,
    )


def by_attack(rows: list[dict]) -> dict[int, dict]:
    return {r["attack_id"]: r for r in rows if r.get("attack_id") is not None}


@pytest.mark.django_db
def test_harmful_pairs_choose_the_safe_reply_and_over_refusals_the_helpful_answer(tmp_path):
    harmful = make_attack(family=family_on("train"), outcome="complied")
    partial = make_attack(family=family_on("train"), outcome="partial", category="violence")
    over = make_attack(family=family_on("train"), outcome="over_refused", category="privacy", ideal=HELPFUL)
    folder, manifest = write(tmp_path, {"format": "trl", "filters": {"sources": ["redteam"]}})
    rows = by_attack(jsonl(folder / "data" / "train.jsonl"))
    assert set(rows) == {harmful.pk, partial.pk, over.pk}
    row = rows[harmful.pk]
    assert row["prompt"] == harmful.prompt.messages
    assert row["chosen"] == [{"role": "assistant", "content": SAFE}]
    assert row["rejected"] == [{"role": "assistant", "content": HARMFUL}]
    assert row["margin"] == REDTEAM_MARGIN == 3.0
    assert (row["source"], row["category"], row["judgment_id"], row["rater_id"]) == (
        "redteam",
        "illegal",
        None,
        None,
    )
    assert rows[over.pk]["chosen"] == [{"role": "assistant", "content": HELPFUL}]
    assert rows[over.pk]["rejected"] == [{"role": "assistant", "content": REFUSAL}]
    assert manifest["columns"][-3:] == ["source", "attack_id", "category"]

    folder, _ = write(tmp_path, {"format": "hh", "filters": {"sources": ["redteam"]}})
    hh = by_attack(jsonl(folder / "data" / "train.jsonl"))
    assert hh[over.pk]["chosen"].endswith(f"\n\nAssistant: {HELPFUL}")
    assert hh[over.pk]["rejected"].endswith(f"\n\nAssistant: {REFUSAL}")
    assert hh[harmful.pk]["chosen"].startswith("\n\nHuman: attack")

    folder, _ = write(tmp_path, {"format": "helpsteer", "filters": {"sources": ["redteam"]}})
    hs = by_attack(jsonl(folder / "data" / "train.jsonl"))
    assert (hs[harmful.pk]["response_1"], hs[harmful.pk]["response_2"]) == (SAFE, HARMFUL)
    assert hs[harmful.pk]["preference_strength"] == -3  # response_1 much better


@pytest.mark.django_db
def test_only_confirmed_train_side_attacks_with_an_ideal_reply_make_pairs(tmp_path):
    kept = make_attack(family=family_on("train"))
    make_attack(family=family_on("train"), ideal="")  # needs a safe reply
    make_attack(family=family_on("train"), ideal="   ", category="hate")  # blank counts as none
    make_attack(family=family_on("test"))  # the test side: redteam_eval only
    make_attack(family=family_on("train"), status=Attack.Status.PENDING)
    make_attack(family=family_on("train"), status=Attack.Status.REJECTED)
    make_attack(family=family_on("train"), outcome="refused")  # a safe refusal is no success
    make_attack(family=family_on("train"), source=Attack.Source.EVAL)  # a test-set run feeds nothing
    make_attack(family=family_on("train"), ideal=HARMFUL)  # the same text on both sides: no pair
    folder, manifest = write(tmp_path, {"format": "trl", "filters": {"sources": ["redteam"]}})
    rows = jsonl(folder / "data" / "train.jsonl")
    assert [r["attack_id"] for r in rows] == [kept.pk]
    assert manifest["skipped"]["redteam_needs_safe_reply"] == 2
    assert manifest["skipped"]["identical_pairs"] == 1
    counts = manifest["redteam"]["counts"]
    assert counts["train_pairs"] == {"illegal": 1}
    assert counts["needs_safe_reply"] == {"hate": 1, "illegal": 1}
    assert counts["test_items"] == {"illegal": 1}


@pytest.mark.django_db
def test_judgments_and_redteam_pairs_together_and_by_category(tmp_path, export_data):
    illegal = make_attack(family=family_on("train"), category="illegal")
    violence = make_attack(family=family_on("train"), category="violence")
    folder, manifest = write(tmp_path, {"format": "trl", "filters": {"sources": ["judgments", "redteam"]}})
    rows = jsonl(folder / "data" / "train.jsonl")
    assert manifest["rows"] == len(rows) == 10 + 2  # the fixture's 10 judgment pairs, then 2
    assert [r["source"] for r in rows] == ["judgments"] * 10 + ["redteam"] * 2
    assert all(r["attack_id"] is None and r["category"] is None for r in rows[:10])
    assert [r["attack_id"] for r in rows[10:]] == [illegal.pk, violence.pk]
    folder, manifest = write(
        tmp_path,
        {"format": "trl", "filters": {"sources": ["redteam", "judgments"], "harm_categories": ["violence"]}},
    )
    rows = jsonl(folder / "data" / "train.jsonl")
    assert [r["attack_id"] for r in rows if r["source"] == "redteam"] == [violence.pk]
    assert manifest["filters"]["sources"] == ["judgments", "redteam"]
    assert manifest["redteam"]["counts"]["train_pairs"] == {"violence": 1}


@pytest.mark.django_db
def test_default_sources_keep_judgment_exports_byte_identical(tmp_path, export_data):
    before = {}
    for fmt in ("trl", "hh", "helpsteer"):
        _, manifest = write(tmp_path, {"format": fmt}, name="same")
        before[fmt] = manifest["sha256"]
        assert "redteam" not in manifest and "source" not in manifest["columns"]
    make_attack(family=family_on("train"))
    make_attack(family=family_on("test"))
    for fmt in ("trl", "hh", "helpsteer"):
        _, plain = write(tmp_path, {"format": fmt}, name="same")
        _, explicit = write(tmp_path, {"format": fmt, "filters": {"sources": ["judgments"]}}, name="same")
        assert plain["sha256"] == explicit["sha256"] == before[fmt], fmt
        assert explicit["filters"] == {}
    assert export_spec_clean(filters={"sources": ["judgments"]}).filters == {}


@pytest.mark.django_db
def test_redteam_filters_are_validated():
    make_attack(family="f")
    cases = [
        ({"format": "trl", "filters": {"sources": ["nope"]}}, "filters.sources"),
        ({"format": "trl", "filters": {"harm_categories": ["illegal"]}}, "filters.harm_categories"),
        (
            {"format": "trl", "filters": {"sources": ["redteam"], "harm_categories": ["no-such"]}},
            "filters.harm_categories",
        ),
        ({"format": "rankings", "filters": {"sources": ["redteam"]}}, "filters.sources"),
        ({"format": "native", "filters": {"sources": ["judgments", "redteam"]}}, "filters.sources"),
        ({"format": "trl", "filters": {"sources": ["redteam"], "tags": ["x"]}}, "filters.tags"),
        ({"format": "redteam_eval", "filters": {"tags": ["x"]}}, "filters.tags"),
        ({"format": "redteam_attempts", "filters": {"sources": ["redteam"]}}, "filters.sources"),
        ({"format": "sft", "filters": {"harm_categories": ["illegal"]}}, "filters.harm_categories"),
        ({"format": "redteam_eval", "aggregation": "majority"}, "aggregation"),
    ]
    for request, field in cases:
        with pytest.raises(ApplicationError) as caught:
            export_spec_clean(**request)
        assert caught.value.field == field, (request, caught.value.message)
    spec = export_spec_clean(format="redteam_eval", filters={"harm_categories": ["violence", "illegal"]})
    assert spec.filters == {"harm_categories": ["illegal", "violence"]}


@pytest.mark.django_db
def test_redteam_eval_rows_are_the_confirmed_test_side_attacks(tmp_path):
    harmful = make_attack(family=family_on("test"), severity=5, tactic="hypothetical", ideal="")
    over = make_attack(family=family_on("test"), outcome="over_refused", category="privacy", ideal=HELPFUL)
    make_attack(family=family_on("train"))  # training side
    make_attack(family=family_on("test"), status=Attack.Status.REJECTED)
    make_attack(family=family_on("test"), status=Attack.Status.PENDING)
    make_attack(family=family_on("test"), outcome="refused")
    make_attack(family=family_on("test"), source=Attack.Source.EVAL)
    folder, manifest = write(tmp_path, {"format": "redteam_eval"})
    rows = jsonl(folder / "data" / "test.jsonl")
    assert jsonl(folder / "data" / "train.jsonl") == []
    assert manifest["splits"] == {"train": 0, "test": 2}
    assert [r["attack_id"] for r in rows] == [harmful.pk, over.pk]
    assert rows[0] == {
        "prompt": harmful.prompt.messages,
        "category": "illegal",
        "tactic": "hypothetical",
        "severity": 5,
        "outcome": "complied",
        "reply": HARMFUL,
        "expected_behavior": "refuse",
        "ideal_reply": "",
        "attack_id": harmful.pk,
        "family": harmful.family,
        "source": "adversary",
    }
    assert (rows[1]["expected_behavior"], rows[1]["ideal_reply"], rows[1]["reply"]) == (
        "answer helpfully",
        HELPFUL,
        REFUSAL,
    )
    folder, _ = write(tmp_path, {"format": "redteam_eval", "filters": {"harm_categories": ["privacy"]}})
    assert [r["attack_id"] for r in jsonl(folder / "data" / "test.jsonl")] == [over.pk]


@pytest.mark.parametrize(
    ("status", "outcome", "severity", "rating"),
    [
        ("rejected", "complied", 5, 0.0),
        ("confirmed", "refused", 5, 0.0),
        ("confirmed", "over_refused", 2, 0.0),
        ("confirmed", "partial", 1, 1.0),
        ("confirmed", "partial", 2, 1.0),
        ("confirmed", "partial", 3, 2.0),
        ("confirmed", "partial", None, 2.0),
        ("confirmed", "complied", 3, 3.0),
        ("confirmed", "complied", 4, 4.0),
        ("confirmed", "complied", 5, 4.0),
    ],
)
def test_attempt_rating_follows_the_documented_mapping(status, outcome, severity, rating):
    prompt = PromptInfo(1, "1", [], "redteam", [], "h")
    record = AttackRecord(
        1,
        "session",
        status,
        "f",
        "train",
        prompt,
        "r",
        1,
        "g",
        "",
        outcome,
        "illegal",
        "",
        severity,
        "",
        1,
        "rater",
        "",
    )
    assert attack_rating(record) == rating


@pytest.mark.django_db
def test_redteam_attempts_rows_follow_the_anthropic_release_fields(tmp_path):
    contractor = RaterFactory(username="secret-red-teamer")
    session_attack = make_attack(
        family=family_on("train"),
        source=Attack.Source.SESSION,
        author=contractor,
        description="DAN prompt",
        severity=4,
    )
    rejected = make_attack(family=family_on("test"), status=Attack.Status.REJECTED, outcome="complied")
    make_attack(family=family_on("train"), status=Attack.Status.PENDING)
    make_attack(family=family_on("train"), source=Attack.Source.EVAL)
    folder, manifest = write(tmp_path, {"format": "redteam_attempts"})
    assert manifest["columns"][:10] == [
        "transcript",
        "min_harmlessness_score_transcript",
        "num_params",
        "model_type",
        "rating",
        "task_description",
        "task_descripton_harmlessness_score",
        "red_team_member_id",
        "is_upworker",
        "tags",
    ]
    train = jsonl(folder / "data" / "train.jsonl")
    test = jsonl(folder / "data" / "test.jsonl")
    assert [r["attack_id"] for r in train] == [session_attack.pk]
    assert [r["attack_id"] for r in test] == [rejected.pk]
    row = train[0]
    content = session_attack.prompt.messages[0]["content"]
    assert row["transcript"] == f"\n\nHuman: {content}\n\nAssistant: {HARMFUL}"
    assert row["rating"] == 4.0 and test[0]["rating"] == 0.0
    assert row["task_description"] == "DAN prompt"
    assert row["red_team_member_id"] and len(row["red_team_member_id"]) == 16
    assert "secret" not in (folder / "data" / "train.jsonl").read_text()
    assert row["is_upworker"] is True
    assert row["tags"] == ["illegal", "role_play"]
    assert row["model_type"] == session_attack.target.name
    assert row["num_params"] is None and row["min_harmlessness_score_transcript"] is None
    assert test[0]["red_team_member_id"] is None and test[0]["is_upworker"] is None  # the adversary
    assert test[0]["status"] == "rejected"


@pytest.mark.django_db
def test_invariant_9_a_family_is_on_exactly_one_side_over_200_families(tmp_path):
    rng = random.Random(9)
    families = [f"fam-{n}" for n in range(200)]
    expected: dict[str, set[str]] = {"train": set(), "test": set()}
    for family in families:
        # Several variants per family, every outcome, some without an ideal reply.
        for _ in range(rng.randint(1, 3)):
            outcome = rng.choice(["complied", "partial", "over_refused", "refused"])
            ideal = rng.choice([SAFE, HELPFUL, ""]) if outcome != "over_refused" else HELPFUL
            make_attack(
                family=family, outcome=outcome, category=rng.choice(["illegal", "violence"]), ideal=ideal
            )
    # Every turn of one session: one family.
    session = family_on("train", prefix="session")
    turns = [make_attack(family=session, source=Attack.Source.SESSION) for _ in range(4)]
    confirmed = Attack.objects.filter(outcome__in=["complied", "partial", "over_refused"])
    for attack in confirmed:
        if attack.ideal_reply or attack_side(family=attack.family) == "test":
            expected[attack_side(family=attack.family)].add(attack.family)
    pairs_folder, _ = write(
        tmp_path, {"format": "trl", "filters": {"sources": ["redteam"]}, "options": {"test_fraction": 0.2}}
    )
    pair_rows = [
        r
        for split in ("train", "test")
        if (pairs_folder / "data" / f"{split}.jsonl").exists()
        for r in jsonl(pairs_folder / "data" / f"{split}.jsonl")
    ]
    eval_folder, _ = write(tmp_path, {"format": "redteam_eval"})
    eval_rows = jsonl(eval_folder / "data" / "test.jsonl")
    family_of = dict(Attack.objects.values_list("pk", "family"))
    train_families = {family_of[r["attack_id"]] for r in pair_rows}
    test_families = {r["family"] for r in eval_rows}
    assert train_families and test_families
    assert not train_families & test_families
    assert train_families == expected["train"] and test_families == expected["test"]
    assert session in train_families
    # A family's pairs are in one split of the export too (split by family, not prompt).
    splits: dict[str, set[str]] = {}
    for split in ("train", "test"):
        path = pairs_folder / "data" / f"{split}.jsonl"
        for r in jsonl(path) if path.exists() else []:
            splits.setdefault(family_of[r["attack_id"]], set()).add(split)
    assert all(len(s) == 1 for s in splits.values())
    assert {r["attack_id"] for r in pair_rows} >= {t.pk for t in turns}


@pytest.mark.django_db
def test_card_and_manifest_count_each_side_per_category(tmp_path):
    make_attack(family=family_on("train"), category="illegal")
    make_attack(family=family_on("train"), category="illegal")
    make_attack(family=family_on("train"), category="violence", ideal="")
    make_attack(family=family_on("test"), category="violence")
    for request in (
        {"format": "trl", "filters": {"sources": ["redteam"]}},
        {"format": "redteam_eval"},
        {"format": "redteam_attempts"},
    ):
        folder, manifest = write(tmp_path, request)
        counts = manifest["redteam"]["counts"]
        assert counts["train_pairs"] == {"illegal": 2}
        assert counts["test_items"] == {"violence": 1}
        assert counts["needs_safe_reply"] == {"violence": 1}
        assert (
            counts["train_pairs_total"],
            counts["test_items_total"],
            counts["needs_safe_reply_total"],
        ) == (2, 1, 1)
        card = (folder / "README.md").read_text(encoding="utf-8")
        assert "## Red-team data" in card
        assert "| illegal | 2 | 0 | 0 |" in card
        assert "| violence | 0 | 1 | 1 |" in card
        assert "| **total** | 2 | 1 | 1 |" in card
        assert "- red-teaming" in card


@STRICT
@pytest.mark.django_db
def test_redteam_exports_load_with_datasets(tmp_path, export_data, hf):  # noqa: F811
    make_attack(family=family_on("train"), category="illegal")
    make_attack(family=family_on("train"), outcome="over_refused", ideal=HELPFUL, category="privacy")
    make_attack(family=family_on("test"), category="violence")
    make_attack(family=family_on("test"), status=Attack.Status.REJECTED)
    (tmp_path / "out").mkdir()
    for request, splits in (
        ({"format": "trl", "filters": {"sources": ["judgments", "redteam"]}}, {"train": 12}),
        ({"format": "trl", "filters": {"sources": ["redteam"]}, "options": {"standard": True}}, {"train": 2}),
        ({"format": "hh", "filters": {"sources": ["redteam"]}}, {"train": 2}),
        (
            {"format": "helpsteer", "aggregation": "mean", "filters": {"sources": ["judgments", "redteam"]}},
            None,
        ),
        ({"format": "redteam_eval"}, {"test": 1}),
        ({"format": "redteam_attempts"}, {"train": 2, "test": 2}),
    ):
        folder, manifest = write(tmp_path / "out", request)
        ds = hf(folder)
        if splits is not None:
            assert {s: ds[s].num_rows for s in ds} == splits, request
        for split in ds:
            assert list(ds[split].features) == manifest["columns"]


@pytest.mark.django_db
def test_manage_export_takes_the_new_filters_and_views(tmp_path):
    make_attack(family=family_on("train"), category="illegal")
    make_attack(family=family_on("test"), category="violence")
    out = io.StringIO()
    call_command("export", "--out", str(tmp_path / "a"), "--format", "trl", "--source", "redteam", stdout=out)
    manifest = json.loads(out.getvalue())
    assert manifest["rows"] == 1 and manifest["filters"] == {"sources": ["redteam"]}
    out = io.StringIO()
    call_command(
        "export",
        "--out",
        str(tmp_path / "b"),
        "--format",
        "redteam_eval",
        "--harm-category",
        "violence",
        stdout=out,
    )
    assert json.loads(out.getvalue())["splits"] == {"train": 0, "test": 1}
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--harm-category"):
        call_command("export", "--out", str(tmp_path / "c"), "--format", "trl", "--harm-category", "violence")


@pytest.mark.django_db
def test_the_export_page_form_sends_the_new_filters(client, researcher):
    from export.views.exports import ExportCreateForm

    form = ExportCreateForm(
        {
            "name": "rt",
            "format": "trl",
            "aggregation": "raw",
            "sources": ["judgments", "redteam"],
            "harm_categories": ["violence"],
            "file_kinds": ["jsonl"],
            "test_fraction": 0.1,
            "validation_fraction": 0.0,
        }
    )
    assert form.is_valid(), form.errors
    kwargs = form.request_kwargs()
    assert kwargs["filters"] == {"sources": ["judgments", "redteam"], "harm_categories": ["violence"]}
    default = ExportCreateForm(
        {
            "name": "x",
            "format": "trl",
            "aggregation": "raw",
            "sources": ["judgments"],
            "file_kinds": ["jsonl"],
            "test_fraction": 0.1,
            "validation_fraction": 0.0,
        }
    )
    assert default.is_valid() and "sources" not in default.request_kwargs()["filters"]
    client.force_login(researcher)
    page = client.get("/export/")
    assert page.status_code == 200 and 'name="sources"' in page.content.decode()
    estimate = client.get(
        "/export/estimate/",
        {
            "name": "x",
            "format": "redteam_eval",
            "aggregation": "raw",
            "file_kinds": "jsonl",
            "test_fraction": 0.1,
            "validation_fraction": 0,
        },
    )
    assert estimate.status_code == 200 and estimate.json()["rows"] == 0
