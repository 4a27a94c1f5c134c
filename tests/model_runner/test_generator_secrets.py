"""Secrets stay secret: an admin cannot make a worker send its secrets anywhere, nor read other
services through a job's errors. Checked on save (API and Django admin) and again at load."""

from __future__ import annotations

import json
from typing import Any

import pytest

from model_runner.models import GenerationJob, Generator
from tests.factories import GeneratorFactory, PromptFactory
from tests.model_runner.openai_server import completion
from tests.model_runner.test_openai_backend import _run

pytestmark = pytest.mark.django_db

SECRET_BODY = "INTERNAL-ONLY admin panel: db password hunter2"


def _create(admin_api, **fields: Any):
    body = {"name": "remote", "backend": "openai", "model_path": "http://gpu-box:8000/v1", "model_name": "m"}
    return admin_api.post("/api/v1/generators/", {**body, **fields}, format="json")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://files.example/v1",
        "http:///no-host",
        "http://user:pass@gpu-box:8000/v1",
        "javascript:alert(1)",
    ],
)
def test_only_http_urls_with_a_host_are_saved(admin_api, url):
    response = _create(admin_api, model_path=url)
    assert response.status_code == 400 and response.json()["field"] == "model_path"
    assert not Generator.objects.exists()


@pytest.mark.parametrize(
    "variable", ["DJANGO_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "PATH", "preflab_key_x"]
)
def test_only_variables_with_the_key_prefix_may_be_named(admin_api, variable):
    response = _create(admin_api, api_key_env=variable)
    assert response.status_code == 400 and response.json()["field"] == "api_key_env"
    assert "PREFLAB_KEY_" in response.json()["detail"]
    assert not Generator.objects.exists()


def test_an_allowed_endpoint_and_key_variable_are_saved(admin_api):
    response = _create(admin_api, api_key_env="PREFLAB_KEY_OPENAI", model_path=" https://api.example.com/v1 ")
    assert response.status_code == 201, response.json()
    assert Generator.objects.get().model_path == "https://api.example.com/v1"


def test_changes_are_checked_as_creation_is(admin_api):
    generator_id = _create(admin_api).json()["id"]
    response = admin_api.patch(
        f"/api/v1/generators/{generator_id}/", {"api_key_env": "DJANGO_SECRET_KEY"}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == "api_key_env"
    assert Generator.objects.get().api_key_env == ""


def test_the_endpoint_hosts_allow_list(admin_api, settings):
    settings.PREFLAB_ENDPOINT_HOSTS = ["*.internal.example", "vllm:8000"]
    assert _create(admin_api, name="a", model_path="http://gpu1.internal.example/v1").status_code == 201
    assert _create(admin_api, name="b", model_path="http://vllm:8000/v1").status_code == 201
    for name, url in (
        ("c", "http://vllm:9000/v1"),
        ("d", "http://169.254.169.254/latest"),
        ("e", "http://internal.example.evil.com/"),
    ):
        response = _create(admin_api, name=name, model_path=url)
        assert response.status_code == 400 and "PREFLAB_ENDPOINT_HOSTS" in response.json()["detail"], url


def test_the_django_admin_refuses_them_too(client, admin_user):
    client.force_login(admin_user)
    form = {
        "name": "sneaky",
        "backend": "openai",
        "model_path": "file:///etc/passwd",
        "model_name": "m",
        "api_key_env": "DJANGO_SECRET_KEY",
        "chat_template": "",
        "system_prompt": "",
        "sampling": json.dumps({}),
        "options": json.dumps({}),
        "is_active": "on",
    }
    html = client.post("/admin/model_runner/generator/add/", form).content.decode()
    assert "must be an http:// or https:// URL" in html and "must name an environment variable" in html
    assert not Generator.objects.exists()


def test_a_row_saved_before_these_checks_is_refused_at_load_and_nothing_is_sent(chat_server, monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "the-real-secret")
    server = chat_server(lambda n, body: (200, completion("x"), {}))
    generator = GeneratorFactory.create(
        name="old",
        backend=Generator.Backend.OPENAI,
        model_path=server.url,
        model_name="m",
        api_key_env="DJANGO_SECRET_KEY",
    )
    job = _run(generator, [PromptFactory.create()], k=1)
    assert job.status == GenerationJob.Status.FAILED
    assert (
        "api_key_env: must name an environment variable that starts with PREFLAB_KEY_"
        in job.errors[0]["error"]
    )
    assert server.requests == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 418, 500])
def test_job_errors_give_the_status_and_never_the_body(chat_server, status):
    server = chat_server(
        lambda n, body: (status, {"error": {"message": SECRET_BODY}, "page": SECRET_BODY}, {})
    )
    generator = GeneratorFactory.create(
        name="leaky",
        backend=Generator.Backend.OPENAI,
        model_path=server.url,
        model_name="m",
        options={"max_retries": 0},
    )
    job = _run(generator, [PromptFactory.create()], k=1)
    errors = json.dumps(job.errors)
    assert str(status) in errors and "INTERNAL" not in errors and "hunter2" not in errors


def test_a_non_json_answer_is_described_not_quoted(chat_server):
    server = chat_server(lambda n, body: (200, SECRET_BODY, {}))
    generator = GeneratorFactory.create(
        name="html", backend=Generator.Backend.OPENAI, model_path=server.url, model_name="m"
    )
    job = _run(generator, [PromptFactory.create()], k=1)
    errors = json.dumps(job.errors)
    assert "did not answer with a chat completion" in errors and "hunter2" not in errors
