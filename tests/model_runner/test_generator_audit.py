"""Generator changes through the API land in the audit log with who, what and from where."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.models import AuditEvent
from model_runner.models import Generator

pytestmark = pytest.mark.django_db


def test_generator_create_update_and_delete_are_recorded(admin_user):
    api = APIClient(REMOTE_ADDR="198.51.100.4")
    api.force_authenticate(admin_user)
    made = api.post("/api/v1/generators/", {"name": "local", "backend": "bundled"}, format="json")
    assert made.status_code == 201, made.content
    generator = Generator.objects.get(name="local")
    url = f"/api/v1/generators/{generator.pk}/"
    assert api.patch(url, {"system_prompt": "Be brief."}, format="json").status_code == 200
    assert api.delete(url).status_code == 204
    events = list(AuditEvent.objects.filter(object_type="model_runner.generator").order_by("id"))
    assert [e.action for e in events] == ["generator.create", "generator.update", "generator.delete"]
    assert all(e.actor_id == admin_user.pk and e.ip_address == "198.51.100.4" for e in events)
    assert events[0].changes["backend"] == "bundled"
    assert events[1].changes == {"system_prompt": ["", "Be brief."]}
