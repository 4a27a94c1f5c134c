"""Exports and their downloads land in the audit log with who, what and from where."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_an_export_and_each_download_are_recorded(
    researcher, export_data, django_capture_on_commit_callbacks
):
    api = APIClient(REMOTE_ADDR="192.0.2.9")
    api.force_authenticate(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        made = api.post("/api/v1/exports/", {"filters": {"queues": [export_data.queue.pk]}}, format="json")
    assert made.status_code == 201, made.content
    run_id = made.json()["id"]
    assert api.get(f"/api/v1/exports/{run_id}/download/").status_code == 200
    assert api.get(f"/api/v1/exports/{run_id}/download/", {"file": "README.md"}).status_code == 200
    events = list(AuditEvent.objects.filter(object_type="export.exportrun").order_by("id"))
    assert [e.action for e in events] == ["export.create", "export.download", "export.download"]
    assert all(e.actor_id == researcher.pk and e.ip_address == "192.0.2.9" for e in events)
    assert events[0].changes["filters"] == {"queues": [export_data.queue.pk]}
    assert events[2].changes == {"file": "README.md"}
