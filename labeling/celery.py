"""The Celery app. Queues: ``default`` (CPU work) and ``gpu`` (model generation)."""

import os
import sys
from typing import Any

from celery import Celery, signals

from labeling import request_id as request_ids

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")

app = Celery("preflab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The request id travels with each task message (labeling/request_id.py).
signals.before_task_publish.connect(request_ids.on_before_task_publish, dispatch_uid="preflab-request-id")
signals.task_prerun.connect(request_ids.on_task_prerun, dispatch_uid="preflab-request-id")
signals.task_postrun.connect(request_ids.on_task_postrun, dispatch_uid="preflab-request-id")
signals.after_setup_logger.connect(request_ids.on_after_setup_logger, dispatch_uid="preflab-request-id")
signals.after_setup_task_logger.connect(request_ids.on_after_setup_logger, dispatch_uid="preflab-request-id")


@signals.celeryd_init.connect
def _refuse_unsafe_production(**kwargs: Any) -> None:
    """With DJANGO_DEBUG off, a worker without a shared, strong DJANGO_SECRET_KEY refuses to start:
    exports key the rater pseudonyms with it, so every worker must hold the web's key
    (labeling/security.py). Celery logs and swallows a receiver's exceptions, so exit instead."""
    from labeling.security import production_problems, refusal_message

    problems = production_problems(web=False)
    if problems:
        sys.stderr.write(refusal_message("Celery worker", problems) + "\n")
        raise SystemExit(1)
