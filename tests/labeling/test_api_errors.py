"""Errors under /api/ are JSON, ``{"detail": ...}``, also for a route that does not exist, a method
the route does not have and a server error (with debug off, as in production); pages keep their
HTML error pages. The schema documents the errors each operation can answer, with that body."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from labeling import selectors

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path", ["/api/v1/nowhere/", "/api/v1/queues/abc/", "/api/nothing", "/api/v1/queues/1/x/"]
)
def test_an_unmatched_api_route_is_a_json_404(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_page_that_does_not_exist_keeps_its_html_page(client):
    response = client.get("/nowhere/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Nothing here" in response.content


def test_a_method_the_route_does_not_have_is_a_json_405(admin_api):
    response = admin_api.put("/api/v1/queues/", {}, format="json")
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "PUT" not allowed.'}


def test_a_server_error_is_json_under_api_and_says_nothing_of_the_error(rater, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the broker password is hunter2")

    monkeypatch.setattr(selectors, "queue_list_for_user", broken)
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(rater)
    response = client.get("/api/v1/queues/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Server error: it has been logged."}
    assert b"hunter2" not in response.content


def test_a_page_server_error_keeps_its_html_page(rater, monkeypatch):
    from labeling.views import rate

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(rate.selectors, "queue_stats_for_rater", broken)
    client = Client(raise_request_exception=False)
    client.force_login(rater)
    response = client.get("/rate/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert b"Something went wrong" in response.content


def test_a_host_the_site_does_not_serve_is_a_json_400_under_api(api):
    response = api.get("/api/v1/queues/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json() == {"detail": "Bad request."}


def test_a_validation_error_raised_in_a_view_is_an_object_not_a_list(api, rater):
    """A view that raises ValidationError("...") itself would answer DRF's bare list."""
    response = api.post(
        "/api/v1/auth/token/", {"username": rater.username, "password": "wrong"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert isinstance(body, dict) and body["detail"]
    assert body["errors"] == {"non_field_errors": [body["detail"]]}


# -- the schema -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _responses(schema, method, path):
    return schema["paths"][path][method]["responses"]


def test_every_operation_documents_its_errors_with_the_error_body(schema):
    error = {"$ref": "#/components/schemas/Error"}
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("security") and {} not in operation["security"]:
                assert "401" in responses, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            for code, response in responses.items():
                if int(code) >= 400:
                    for body in response["content"].values():
                        assert body["schema"] == error or error in body["schema"].get("anyOf", []), (
                            method,
                            path,
                            code,
                        )


def test_known_errors_are_documented(schema):
    next_ = _responses(schema, "post", "/api/v1/queues/{queue_id}/next/")
    assert {"400", "401", "403", "404", "409"} <= set(next_)
    judgment = _responses(schema, "post", "/api/v1/assignments/{assignment_id}/judgment/")
    assert {"400", "401", "404", "409"} <= set(judgment)
    assert "403" not in judgment  # any signed-in user may call it; a stranger's lease is a 404
    assert {"400", "401", "403", "409"} <= set(_responses(schema, "post", "/api/v1/users/"))
    assert {"409", "410"} <= set(_responses(schema, "get", "/api/v1/exports/{export_run_id}/download/"))
    assert "409" in _responses(schema, "delete", "/api/v1/generators/{generator_id}/")
    assert "404" in _responses(schema, "get", "/api/v1/prompts/")  # a page past the end


def test_nullable_fields_are_documented_as_nullable(schema):
    job = schema["components"]["schemas"]["GenerationJobOutput"]["properties"]
    assert job["tokens_per_second"].get("nullable") is True
    assert job["eta_seconds"].get("nullable") is True


def test_a_format_query_parameter_is_the_routes_own_not_a_renderer_choice(rater_api):
    """DRF's ?format= renderer override answered 404 before the permission check (found by the fuzzer)."""
    response = rater_api.post("/api/v1/prompts/import/?format=jsonl", {}, format="json")
    assert response.status_code == 403
    assert rater_api.get("/api/v1/queues/?format=yaml").status_code == 200
