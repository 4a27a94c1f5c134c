"""What the tests that start a real Celery worker process share: the test database's URL for the
worker's environment, and a broker of the test's own.

On the embedded filesystem broker the test gets broker folders of its own (in ``tmp_path``), and
``queue`` is the name the worker serves; on Redis, a queue of its own (other test runs may share
the server), with the transport options the test asks for (e.g. a visibility timeout of seconds,
so an unacknowledged message comes back quickly).
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings

from labeling.celery import app


def database_url() -> str:
    """The test database, as ``DATABASE_URL`` for a worker process."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_broker(
    tmp_path: Path,
    *,
    queue: str,
    redis_options: dict[str, Any],
    polling_interval: float | None = None,
) -> tuple[str, dict[str, Any], str]:
    """(broker url, transport options, queue name) for one test."""
    url = str(app.conf.broker_url)
    if url.startswith("filesystem"):
        folders = {key: tmp_path / "broker" / key for key in ("queue", "processed", "control")}
        for folder in folders.values():
            folder.mkdir(parents=True)
        options: dict[str, Any] = {
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "processed_folder": str(folders["processed"]),
            "control_folder": str(folders["control"]),
            "store_processed": False,
        }
        if polling_interval is not None:
            options["polling_interval"] = polling_interval
        return url, options, queue  # the folder is the test's own
    return url, dict(redis_options), f"{queue}-test-{uuid.uuid4().hex[:8]}"


def worker_env(url: str, options: dict[str, Any], queue: str, **extra: str) -> dict[str, str]:
    """The environment of a helper worker process: the test database, the test's broker and queue
    (read by the helper worker scripts), a secret key (a production worker refuses to start
    without one), and ``extra`` variables."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": url,
        "PREFLAB_TEST_BROKER_OPTIONS": json.dumps(options),
        "PREFLAB_TEST_QUEUE": queue,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        **extra,
    }
