"""An export run into a full disk, then again once space is freed; prints JSON.

Run by ``scripts/fault_export_disk_full.sh``, which mounts a tiny tmpfs on ``PREFLAB_EXPORT_ROOT``
(the folder exports write to) over a private PostgreSQL (``scripts/fault_lib.sh``). It seeds
``--judgments`` judgments (``export.benchseed``, COPY), runs a ``trl`` export with JSONL and
Parquet files as the worker's task does (``export_run_task``), and checks:

- the run ends ``failed`` with an error that names the full disk (``No space left on device``);
- nothing is left under the export folder (no partial file, no hidden ``.part`` folder);
- after ``--free-command`` (a remount with more room) a new run with the same request
  succeeds, and its files are there with the sizes and sha256 the run recorded.

Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from export.benchseed import SeedPlan, seed  # noqa: E402
from export.models import ExportRun  # noqa: E402
from export.services.runs import export_run_create  # noqa: E402
from export.tasks import export_run_task  # noqa: E402
from labeling.models import Queue, User  # noqa: E402


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _run(user: User, queue_ids: list[int]) -> ExportRun:
    run = export_run_create(
        created_by=user,
        format="trl",
        name="disk-full",
        filters={"queues": queue_ids},
        options={"files": ["jsonl", "parquet"]},
        enqueue=False,
    )
    export_run_task.apply(args=(run.pk,))  # in this process, as a worker runs it
    run.refresh_from_db()
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judgments", type=int, default=6000)
    parser.add_argument(
        "--free-command", required=True, help="shell command that frees space on the export disk"
    )
    opts = parser.parse_args()
    export_root = Path(settings.PREFLAB_EXPORT_ROOT)
    usage = shutil.disk_usage(export_root)
    result: dict[str, Any] = {
        "scenario": "export_disk_full",
        "export_root": str(export_root),
        "disk_bytes": usage.total,
    }

    started = time.monotonic()
    seed(SeedPlan(prefix="diskfull", queue_items=(opts.judgments // 2,), overlap=2, raters=6, generators=2))
    result["seed_s"] = round(time.monotonic() - started, 1)
    user = User.objects.create(username="diskfull-researcher", role=User.Role.RESEARCHER)
    queue_ids = list(Queue.objects.filter(name__startswith="diskfull").values_list("pk", flat=True))

    failed = _run(user, queue_ids)
    left = _files_under(export_root)
    result["full_disk_run"] = {
        "status": str(failed.status),
        "error": failed.error,
        "files_left": left[:10],
        "file_path": failed.file_path,
    }
    subprocess.run(["bash", "-c", opts.free_command], check=True)
    result["disk_bytes_after_freeing"] = shutil.disk_usage(export_root).total

    retried = _run(user, queue_ids)
    checked: list[dict[str, Any]] = []
    files_ok = retried.status == ExportRun.Status.SUCCEEDED and bool(retried.files)
    for entry in retried.files or []:
        path = export_root / retried.file_path / entry["path"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        same = digest == entry.get("sha256") and path.stat().st_size == entry.get(
            "bytes", path.stat().st_size
        )
        files_ok = files_ok and same
        checked.append({"path": entry["path"], "bytes": entry.get("bytes"), "sha256_matches": same})
    result["retry_run"] = {
        "status": str(retried.status),
        "error": retried.error,
        "rows": retried.row_count,
        "files": checked,
    }
    error = failed.error.lower()
    ok = (
        failed.status == ExportRun.Status.FAILED
        and "no space left on device" in error
        and not left
        and files_ok
        and retried.row_count > 0
    )
    result["ok"] = ok
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
