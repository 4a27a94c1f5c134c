"""An existing preference dataset (HH-RLHF transcripts, UltraFeedback binarized, TRL's shapes)
imports as prompts with their two candidates, so a team can re-rate it with its own rubric; the
original label is kept as an ImportedPreference, never in what a rater sees."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from comparisons.models import Candidate, ImportedPreference, Prompt
from model_runner.models import Generator
from tests.factories import RubricFactory

from .helpers import csv_bytes, jsonl, parquet_bytes, user

URL = "/api/v1/preferences/import/"

pytestmark = pytest.mark.django_db

HH = [
    {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke.\n\nAssistant: Knock knock.",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke.\n\nAssistant: No.",
    },
    {
        "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4.",
        "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5, roughly.\n\nSeriously.",
    },
]


def _post(client, name: str, body: bytes, **fields):
    return client.post(URL, {"file": SimpleUploadedFile(name, body), **fields}, format="multipart")


def test_hh_rlhf_transcripts_are_split_into_the_prompt_and_two_replies(admin_api):
    response = _post(admin_api, "hh-rlhf-helpful.jsonl", jsonl(*HH), collection="hh")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["created"], data["existing"]) == (2, 0)
    assert data["counts"] == {
        "prompts": {"created": 2, "existing": 0},
        "candidates": {"created": 4, "existing": 0},
        "preferences": {"created": 2, "existing": 0},
    }
    first = Prompt.objects.get(pk=data["prompt_ids"][0])
    assert first.messages == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke."},
    ]
    assert first.collection == "hh"
    chosen, rejected = (Candidate.objects.get(pk=pk) for pk in data["pairs"][0])
    assert (chosen.text, rejected.text) == ("Knock knock.", "No.")
    assert Candidate.objects.get(pk=data["pairs"][1][1]).text == "5, roughly.\n\nSeriously."
    generator = Generator.objects.get(name="hh-rlhf-helpful")
    assert generator.backend == Generator.Backend.IMPORTED
    assert {c.generator_id for c in Candidate.objects.all()} == {generator.pk}
    label = ImportedPreference.objects.get(chosen=chosen)
    assert (label.rejected, label.prompt, label.dataset, label.line) == (
        rejected,
        first,
        "hh-rlhf-helpful",
        1,
    )


def test_reimporting_creates_nothing(admin_api):
    first = _post(admin_api, "hh.jsonl", jsonl(*HH)).json()
    again = _post(admin_api, "hh.jsonl", jsonl(*HH)).json()

    assert (again["created"], again["existing"]) == (0, 2)
    assert again["pairs"] == first["pairs"]
    assert (Prompt.objects.count(), Candidate.objects.count(), ImportedPreference.objects.count()) == (
        2,
        4,
        2,
    )


def test_ultrafeedback_binarized_parquet_keeps_the_scores_as_metadata(admin_api):
    turns = [user("Write a haiku."), user("Sum 1+1.")]
    body = parquet_bytes(
        {
            "prompt": ["Write a haiku.", "Sum 1+1."],
            "prompt_id": ["h1", "s1"],
            "chosen": [
                t + [{"role": "assistant", "content": r}]
                for t, r in zip(turns, ["Leaves fall.", "2"], strict=True)
            ],
            "rejected": [
                t + [{"role": "assistant", "content": r}] for t, r in zip(turns, ["Poem.", "3"], strict=True)
            ],
            "messages": [t + [{"role": "assistant", "content": "x"}] for t in turns],
            "score_chosen": [8.5, 10.0],
            "score_rejected": [3.0, 1.0],
        }
    )
    response = _post(admin_api, "train_prefs.parquet", body, dataset="ultrafeedback", columns="id=prompt_id")

    assert response.status_code == 201, response.json()
    haiku = Prompt.objects.get(external_id="h1")
    assert haiku.messages == user("Write a haiku.")
    label = ImportedPreference.objects.get(prompt=haiku)
    assert (label.chosen.text, label.rejected.text, label.dataset) == (
        "Leaves fall.",
        "Poem.",
        "ultrafeedback",
    )
    assert label.metadata == {"score_chosen": 8.5, "score_rejected": 3.0}


def test_trl_standard_strings_in_csv_and_conversational_without_a_prompt(admin_api):
    standard = csv_bytes(["prompt", "chosen", "rejected"], ["The sky is", "blue.", "green."])
    assert _post(admin_api, "standard.csv", standard).status_code == 201

    conversational = jsonl(
        {
            "chosen": [{"role": "user", "content": "Color?"}, {"role": "assistant", "content": "Blue."}],
            "rejected": [{"role": "user", "content": "Color?"}, {"role": "assistant", "content": "Loud."}],
        }
    )
    assert _post(admin_api, "conv.jsonl", conversational).status_code == 201

    labels = {
        (p.prompt.messages[0]["content"], p.chosen.text, p.rejected.text)
        for p in ImportedPreference.objects.all()
    }
    assert labels == {("The sky is", "blue.", "green."), ("Color?", "Blue.", "Loud.")}


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        (
            {"chosen": "\n\nHuman: A?\n\nAssistant: Yes.", "rejected": "\n\nHuman: B?\n\nAssistant: No."},
            "rejected",
            "differs from chosen's",
        ),
        (
            {"chosen": "\n\nHuman: A?\n\nAssistant: Yes.", "rejected": "\n\nHuman: A?\n\nAssistant:"},
            "rejected",
            "empty",
        ),
        ({"chosen": "Yes.", "rejected": "No."}, "prompt", "required"),
        ({"prompt": "A?"}, "chosen", "required"),
        ({"prompt": "A?", "chosen": "Yes.", "rejected": "N\u0000o."}, "rejected", "U+0000"),
        (
            {
                "prompt": "A?",
                "chosen": [{"role": "assistant", "content": "1"}, {"role": "assistant", "content": "2"}],
                "rejected": "x",
            },
            "chosen",
            "one assistant reply",
        ),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_written(admin_api, row, field, words):
    response = _post(admin_api, "p.jsonl", jsonl(HH[0], row))

    assert response.status_code == 400, response.json()
    data = response.json()
    assert (data["line"], data["field"]) == (2, field)
    assert words in data["detail"]
    assert not (Prompt.objects.exists() or Candidate.objects.exists() or ImportedPreference.objects.exists())
    assert not Generator.objects.filter(name="p").exists()


def test_mapped_columns_are_named_in_errors(admin_api):
    body = csv_bytes(["question", "good", "bad"], ["Q?", "", "Fine."])
    response = _post(admin_api, "p.csv", body, columns="prompt=question,chosen=good,rejected=bad")

    assert response.status_code == 400
    assert (response.json()["line"], response.json()["field"]) == (2, "good")


def test_a_body_without_a_name_needs_a_dataset(admin_api):
    refused = admin_api.post(URL, data=jsonl(*HH), content_type="application/jsonl")
    assert refused.status_code == 400
    assert refused.json()["field"] == "dataset"

    response = admin_api.post(f"{URL}?dataset=hh", data=jsonl(*HH), content_type="application/jsonl")
    assert response.status_code == 201
    assert Generator.objects.filter(name="hh").exists()


def test_a_rater_never_sees_the_original_label_or_the_dataset(admin_api, rater_api, rater):
    response = _post(admin_api, "secret-dataset.jsonl", jsonl(*HH), collection="rerate")
    assert response.status_code == 201, response.json()
    queue = admin_api.post(
        "/api/v1/queues/",
        {
            "name": "re-rate",
            "rubric": str(RubricFactory().pk),
            "collection": "rerate",
            "members": [rater.username],
        },
        format="json",
    )
    assert queue.status_code == 201, queue.json()

    seen = []
    for _ in range(2):
        item = rater_api.post(f"/api/v1/queues/{queue.json()['id']}/next/")
        assert item.status_code == 201, item.content
        payload = item.json()
        seen.append(payload)
        text = json.dumps(payload).lower()
        for hidden in ("chosen", "rejected", "secret-dataset", "imported", "preference_label", "score"):
            assert hidden not in text, hidden
        assert sorted(r["text"] for r in payload["responses"]) in (
            sorted(["Knock knock.", "No."]),
            sorted(["4.", "5, roughly.\n\nSeriously."]),
        )
        detail = rater_api.get(f"/api/v1/assignments/{payload['id']}/")
        assert "chosen" not in detail.content.decode().lower()
        rater_api.post(f"/api/v1/assignments/{payload['id']}/judgment/", {"preference": 0}, format="json")
    assert len(seen) == 2


def test_the_command_imports_a_dataset(tmp_path):
    path = tmp_path / "hh-harmless.jsonl"
    path.write_bytes(jsonl(*HH))
    out = io.StringIO()

    call_command("import_preferences", str(path), "--tags", "hh", stdout=out)

    assert "2 preference pairs created" in out.getvalue()
    assert Generator.objects.filter(name="hh-harmless").exists()
    assert all(p.tags == ["hh"] for p in Prompt.objects.all())
