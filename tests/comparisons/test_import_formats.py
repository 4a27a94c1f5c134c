"""Imports read CSV, Parquet, Arrow and folders saved by ``datasets`` (and gzipped JSONL/CSV), with a
column mapping, through the same checked, all-or-nothing path as JSONL; errors name the line (or
row) and the file's own column."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from comparisons.models import Candidate, Prompt
from tests.factories import PromptFactory

from .helpers import arrow_stream_bytes, csv_bytes, jsonl, parquet_bytes, user

PROMPTS = "/api/v1/prompts/import/"
CANDIDATES = "/api/v1/candidates/import/"

pytestmark = pytest.mark.django_db


def _post(client, url: str, name: str, body: bytes, **fields):
    return client.post(url, {"file": SimpleUploadedFile(name, body), **fields}, format="multipart")


def test_csv_prompts_with_a_column_mapping(admin_api):
    body = csv_bytes(
        ["qid", "question", "labels", "ignored"],
        ["q1", "What is RLHF?\nAnswer briefly.", "ml, intro", "x"],
        ["q2", "Name a prime.", "", "y"],
    )
    response = _post(
        admin_api, PROMPTS, "questions.csv", body, columns="id=qid, prompt=question, tags=labels"
    )

    assert response.status_code == 201, response.json()
    first, second = (Prompt.objects.get(pk=pk) for pk in response.json()["prompt_ids"])
    assert (first.external_id, first.messages, first.tags) == (
        "q1",
        user("What is RLHF?\nAnswer briefly."),
        ["ml", "intro"],
    )
    assert (second.external_id, second.tags) == ("q2", [])


def test_csv_messages_column_holds_json_and_errors_name_the_line_and_column(admin_api):
    body = csv_bytes(
        ["conversation"],
        ['[{"role": "user", "content": "Hi"}]'],
        ['[{"role": "bot", "content": "?"}]'],
        ["{not json"],
    )
    response = _post(admin_api, PROMPTS, "chats.csv", body, columns='{"messages": "conversation"}')

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [(3, "conversation[0].role"), (4, "conversation")]
    assert response.json()["detail"].startswith("line 3: conversation[0].role: must be one of")
    assert not Prompt.objects.exists()


def test_csv_row_spanning_lines_is_numbered_by_its_first_line(admin_api):
    body = b'prompt\n"one\nline two"\n"bad\x00"\n'
    response = admin_api.post(PROMPTS, data=body, content_type="text/csv")

    assert response.status_code == 400
    assert (response.json()["line"], response.json()["field"]) == (4, "prompt")
    assert "U+0000" in response.json()["detail"]


def test_csv_without_the_fields_columns_says_which_it_has(admin_api):
    response = _post(admin_api, PROMPTS, "x.csv", csv_bytes(["question"], ["Hi?"]))

    assert response.status_code == 400
    assert response.json()["field"] == "file"
    assert '"question"' in response.json()["detail"] and "columns" in response.json()["detail"]


def test_gzipped_jsonl_and_csv(admin_api):
    jsonl_gz = gzip.compress(jsonl({"id": "g1", "prompt": "Zipped?"}))
    csv_gz = gzip.compress(csv_bytes(["id", "prompt"], ["g2", "Zipped too?"]))

    assert _post(admin_api, PROMPTS, "a.jsonl.gz", jsonl_gz).status_code == 201
    assert _post(admin_api, PROMPTS, "b.csv.gz", csv_gz).status_code == 201
    assert set(Prompt.objects.values_list("external_id", flat=True)) == {"g1", "g2"}


def test_parquet_candidates_with_message_lists(admin_api):
    PromptFactory.create(external_id="known")
    body = parquet_bytes(
        {
            "conversation": [user("New prompt?"), None],
            "pid": [None, "known"],
            "answer": ["Reply one.", "Reply two."],
            "model": ["m-1", "m-1"],
            "meta": ['{"temperature": 0.7}', None],
        },
        row_group_size=1,
    )
    columns = "messages=conversation, prompt_id=pid, text=answer, generator=model, metadata=meta"
    response = _post(admin_api, CANDIDATES, "replies.parquet", body, columns=columns)

    assert response.status_code == 201, response.json()
    made = [Candidate.objects.get(pk=pk) for pk in response.json()["candidate_ids"]]
    assert [c.text for c in made] == ["Reply one.", "Reply two."]
    assert made[0].sampling == {"temperature": 0.7}
    assert made[0].prompt.messages == user("New prompt?")
    assert made[1].prompt.external_id == "known"


def test_parquet_errors_name_the_row_and_column(admin_api):
    body = parquet_bytes({"q": ["Fine?", "", "Also \x1b bad"]})
    response = _post(admin_api, PROMPTS, "p.parquet", body, columns="prompt=q")

    assert response.status_code == 400
    data = response.json()
    assert [(e["line"], e["field"]) for e in data["errors"]] == [(2, "q"), (3, "q")]
    assert data["detail"].startswith("row 2: q: must be a non-empty string")
    assert "U+001B" in data["errors"][1]["message"]
    assert not Prompt.objects.exists()


def test_a_file_that_is_not_parquet_is_named(admin_api):
    response = _post(admin_api, PROMPTS, "p.parquet", b"PAR1 not really")

    assert response.status_code == 400
    assert response.json()["field"] == "file"
    assert "Parquet" in response.json()["detail"]


def test_arrow_stream_body(admin_api):
    body = arrow_stream_bytes({"prompt": ["One?", "Two?", "Three?"], "id": [1, 2, 3]})
    response = admin_api.post(
        f"{PROMPTS}?collection=arrow", data=body, content_type="application/vnd.apache.arrow.stream"
    )

    assert response.status_code == 201, response.json()
    assert sorted(str(p.external_id) for p in Prompt.objects.filter(collection="arrow")) == [
        "1",
        "2",
        "3",
    ]


def _saved_dataset(path: Path, rows: dict[str, list], *, splits: tuple[str, ...] = ()) -> Path:
    """A folder saved by the datasets library (a dev dependency: tests only)."""
    from datasets import Dataset, DatasetDict

    dataset = Dataset.from_dict(rows)
    if splits:
        DatasetDict({name: dataset for name in splits}).save_to_disk(str(path))
    else:
        dataset.save_to_disk(str(path))
    return path


def _zip(folder: Path) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, f"{folder.name}/{file.relative_to(folder)}")
    return out.getvalue()


def test_zipped_saved_dataset_upload(admin_api, tmp_path):
    folder = _saved_dataset(tmp_path / "my-prompts", {"text": ["A?", "B?", "C?"], "n": [1, 2, 3]})
    response = _post(admin_api, PROMPTS, "my-prompts.zip", _zip(folder), columns="prompt=text,id=n")

    assert response.status_code == 201, response.json()
    assert Prompt.objects.count() == 3


def test_saved_dataset_dict_needs_a_split(admin_api, tmp_path):
    folder = _saved_dataset(tmp_path / "dd", {"prompt": ["A?"]}, splits=("train", "test"))

    refused = _post(admin_api, PROMPTS, "dd.zip", _zip(folder))
    assert refused.status_code == 400
    assert refused.json()["field"] == "split"
    assert '"train", "test"' in refused.json()["detail"]

    response = _post(admin_api, PROMPTS, "dd.zip", _zip(folder), split="test")
    assert response.status_code == 201, response.json()


def test_command_reads_a_saved_dataset_folder(tmp_path):
    folder = _saved_dataset(tmp_path / "hub", {"question": ["Why?", "How?"]})
    out = io.StringIO()

    call_command("import_prompts", str(folder), "--columns", "prompt=question", "--tags", "hub", stdout=out)

    assert "2 prompts created" in out.getvalue()
    assert sorted((p.messages[0]["content"], tuple(p.tags)) for p in Prompt.objects.all()) == [
        ("How?", ("hub",)),
        ("Why?", ("hub",)),
    ]


def test_command_names_the_row_and_column_of_a_bad_dataset(tmp_path):
    folder = _saved_dataset(tmp_path / "bad", {"question": ["Fine?", "   "]})

    with pytest.raises(CommandError) as caught:
        call_command("import_prompts", str(folder), "--columns", "prompt=question")

    assert "row 2: question: must be a non-empty string; nothing was imported" in str(caught.value)
    assert not Prompt.objects.exists()


def test_command_reads_csv_and_parquet_files(tmp_path):
    (tmp_path / "p.csv").write_bytes(csv_bytes(["prompt"], ["From CSV?"]))
    (tmp_path / "r.parquet").write_bytes(
        parquet_bytes({"prompt": ["From CSV?"], "text": ["Yes."], "generator": ["m"]})
    )

    call_command("import_prompts", str(tmp_path / "p.csv"), stdout=io.StringIO())
    call_command("import_candidates", str(tmp_path / "r.parquet"), stdout=io.StringIO())

    assert Candidate.objects.get().prompt.messages == user("From CSV?")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"columns": "prompt"}, "columns"),
        ({"columns": "answer=text"}, "columns.answer"),
        ({"columns": '{"prompt": 3}'}, "columns.prompt"),
        ({"split": "train"}, "split"),
    ],
)
def test_bad_options_name_the_option(admin_api, params, field):
    response = _post(admin_api, PROMPTS, "p.jsonl", jsonl({"prompt": "x"}), **params)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Prompt.objects.exists()


def test_a_truncated_gzip_file_is_refused_whole(admin_api):
    body = gzip.compress(jsonl(*[{"prompt": f"Q{i}?"} for i in range(500)]))[:-40]
    response = _post(admin_api, PROMPTS, "cut.jsonl.gz", body)

    assert response.status_code == 400
    assert response.json()["field"] == "file"
    assert "ends early" in response.json()["detail"]
    assert not Prompt.objects.exists()
