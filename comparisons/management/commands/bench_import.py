"""manage.py bench_import: time a big import through the API, in the request and as a background job.

Prints one JSON object. Writes a JSONL (or CSV, Parquet) file of about ``--mb`` megabytes of new
prompts (or responses, or preference pairs), then imports it three ways into the database
DATABASE_URL names (use one of its own), deleting what each run wrote before the next:

- ``request_s``: ``POST /api/v1/prompts/import/`` (multipart) with the async threshold above the
  file's size, so the whole import runs in the request (what gunicorn's timeout sees);
- ``accept_s``: the same POST with the threshold below it: the file is saved and 202 answered;
- ``job_s``: the job run by ``import_job_execute``, as a worker does (counting the lines, reading
  and checking them, writing them in one transaction), split into ``job_read_s`` and ``job_write_s``.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench python manage.py bench_import --mb 50
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIRequestFactory, force_authenticate

from comparisons import apis
from comparisons.models import Candidate, ImportedPreference, ImportJob, Prompt
from comparisons.services import import_jobs
from comparisons.services.candidates import _generator_model

PREFIX = "bench-import"
WORDS = "the a model reward human preference data answer question why how what train learn test value".split()


class Command(BaseCommand):
    help = "Time a big import in the request and as a background job (prints JSON)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mb", type=float, default=50, help="File size in MB (default 50).")
        parser.add_argument("--kind", choices=["prompts", "candidates", "preferences"], default="prompts")
        parser.add_argument("--format", choices=["jsonl", "csv", "parquet"], default="jsonl")

    def handle(self, *args: Any, **o: Any) -> None:
        user_model = get_user_model()
        admin, _ = user_model.objects.get_or_create(username=f"{PREFIX}-admin", defaults={"role": "admin"})
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{PREFIX}.{o['format']}"
            lines = _write(path, kind=o["kind"], format=o["format"], size=int(o["mb"] * 1024 * 1024))
            size = path.stat().st_size
            _clean()
            request_s, status = _post(path, kind=o["kind"], user=admin, threshold=size + 1)
            assert status == 201, status
            _clean()
            accept_s, status = _post(path, kind=o["kind"], user=admin, threshold=size - 1)
            assert status == 202, status
            job = ImportJob.objects.latest("id")
            marks: dict[str, float] = {}
            writing = import_jobs._JobProgress.writing

            def mark_writing(progress: Any) -> None:
                marks["writing"] = time.perf_counter()
                writing(progress)

            setattr(import_jobs._JobProgress, "writing", mark_writing)  # noqa: B010 - timing the phase
            start = time.perf_counter()
            try:
                import_jobs.import_job_execute(import_job=job)
            finally:
                setattr(import_jobs._JobProgress, "writing", writing)  # noqa: B010
            end = time.perf_counter()
            job.refresh_from_db()
            assert job.status == ImportJob.Status.SUCCEEDED, job.error
            _clean()
            admin.delete()
        result = {
            "database": connection.vendor,
            "kind": o["kind"],
            "format": o["format"],
            "file_mb": round(size / (1024 * 1024), 1),
            "lines": lines,
            "request_s": round(request_s, 2),
            "accept_s": round(accept_s, 2),
            "job_s": round(end - start, 2),
            "job_read_s": round(marks["writing"] - start, 2),
            "job_write_s": round(end - marks["writing"], 2),
        }
        self.stdout.write(json.dumps(result))


def _post(path: Path, *, kind: str, user: Any, threshold: int) -> tuple[float, int]:
    view = {
        "prompts": apis.PromptImportApi,
        "candidates": apis.CandidateImportApi,
        "preferences": apis.PreferenceImportApi,
    }[kind].as_view()
    factory = APIRequestFactory()
    with override_settings(PREFLAB_IMPORT_ASYNC_BYTES=threshold):
        start = time.perf_counter()
        upload = SimpleUploadedFile(path.name, path.read_bytes())
        request = factory.post(
            f"/api/v1/{kind}/import/", {"file": upload, "dataset": PREFIX}, format="multipart"
        )
        force_authenticate(request, user=user)
        response = view(request)
        return time.perf_counter() - start, response.status_code


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _write(path: Path, *, kind: str, format: str, size: int) -> int:
    """Write up to ``size`` bytes (as JSONL) of lines of ``kind``; the number of lines."""
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    written = 0
    while written < size:
        i = len(rows)
        prompt = f"{PREFIX} {i}: {_text(rng, rng.randint(20, 300))}"
        if kind == "prompts":
            row: dict[str, Any] = {"id": f"{PREFIX}-{i}", "prompt": prompt, "tags": [PREFIX]}
        elif kind == "candidates":
            row = {"prompt": prompt, "text": _text(rng, 120), "generator": PREFIX}
        else:
            row = {"prompt": prompt, "chosen": _text(rng, 60), "rejected": _text(rng, 60)}
        length = len(json.dumps(row)) + 1
        if written + length > size:  # stay within the size asked for (the 50 MB limit included)
            break
        rows.append(row)
        written += length
    if format == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif format == "csv":
        import csv

        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(
                {k: ",".join(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows
            )
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return len(rows)


def _clean() -> None:
    """Delete what a run wrote: the bench's prompts (their candidates and labels go with them)."""
    ImportedPreference.objects.filter(dataset=PREFIX).delete()
    _delete(Candidate.objects.filter(generator__name=PREFIX))
    _delete(Prompt.objects.filter(messages__0__content__startswith=f"{PREFIX} "))
    ImportJob.objects.filter(file_name__startswith=PREFIX).delete()
    _generator_model().objects.filter(name=PREFIX).delete()


def _delete(queryset: Any) -> None:
    """A few rows at a time: deleting all at once cascades past PostgreSQL's 65535 parameters."""
    ids = list(queryset.values_list("pk", flat=True))
    for start in range(0, len(ids), 1000):
        queryset.model.objects.filter(pk__in=ids[start : start + 1000]).delete()
