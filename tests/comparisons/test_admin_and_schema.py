from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.factories import CandidateFactory, PromptFactory, make_pair

pytestmark = pytest.mark.django_db

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def admin_client(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("model", ["prompt", "candidate", "comparison"])
def test_admin_lists_escape_model_text(admin_client, model):
    prompt = PromptFactory.create(messages=[{"role": "user", "content": EVIL}])
    CandidateFactory.create(prompt=prompt, text=EVIL)
    comparison = make_pair(prompt, texts=(EVIL, "fine"))

    listing = admin_client.get(f"/admin/comparisons/{model}/")
    assert listing.status_code == 200
    assert EVIL.encode() not in listing.content
    change = admin_client.get(f"/admin/comparisons/comparison/{comparison.pk}/change/")
    assert change.status_code == 200
    assert EVIL.encode() not in change.content


def test_admin_search_and_filters(admin_client):
    PromptFactory.create(external_id="findme", collection="c1")

    assert b"findme" in admin_client.get("/admin/comparisons/prompt/", {"q": "findme"}).content
    assert admin_client.get("/admin/comparisons/prompt/", {"collection": "c1"}).status_code == 200


def test_schema_describes_the_import_endpoints(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    body = paths["/api/v1/prompts/import/"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/jsonl", "application/x-ndjson", "text/plain"} <= set(body)
    assert {"text/csv", "application/vnd.apache.parquet", "application/zip"} <= set(body)
    assert set(paths["/api/v1/preferences/import/"]["post"]["responses"]) >= {"201", "202", "400"}
    assert "/api/v1/candidates/import/" in paths
    assert "/api/v1/imports/{import_job_id}/" in paths
    assert "/api/v1/prompts/" in paths
