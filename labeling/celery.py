"""The Celery app. Queues: ``default`` (CPU work) and ``gpu`` (model generation)."""

import os
import sys
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")

app = Celery("preflab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
