"""gunicorn's configuration for Preflab's web processes (``gunicorn -c deploy/gunicorn.conf.py``).

The ``Procfile`` and ``preflab-web.service`` pass it; the address and the worker count stay on
their command lines. It sets up prometheus_client's multiprocess mode for ``GET /metrics``
(``labeling/metrics.py``):

- ``PROMETHEUS_MULTIPROC_DIR``, unless already set, is ``<var>/prometheus/web`` (``<var>`` being
  ``PREFLAB_VAR_DIR``, else the checkout's ``var/``). It is set here, in the master, before any
  worker imports prometheus_client, which picks its multiprocess value files when first imported.
- When gunicorn starts, the folder's value files are deleted: they belong to the processes of an
  earlier run (Prometheus reads the restart as a counter reset, as it does for any process).
- When a worker exits, it is marked dead: its gauge files go, its counters stay counted, so a
  worker restarted after ``max_requests``, a crash or a ``HUP`` takes nothing away from a counter.

One gunicorn per folder: two on one host need different ``PREFLAB_VAR_DIR`` or
``PROMETHEUS_MULTIPROC_DIR``, or each would delete the other's files when it starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_var = Path(os.environ.get("PREFLAB_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
multiproc_dir = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or _var / "prometheus" / "web")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)


def on_starting(server: Any) -> None:
    multiproc_dir.mkdir(parents=True, exist_ok=True)
    for stale in multiproc_dir.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(multiproc_dir))
