"""A generator's ``options``: checked per backend where they are written (API, Django admin)."""

from __future__ import annotations

import json

import pytest

from model_runner.backends.options import OptionsError, options_validate
from model_runner.models import Generator

pytestmark = pytest.mark.django_db


def test_local_model_options_are_normalized():
    given = {
        "device": "cuda:1",
        "dtype": "bf16",
        "threads": 4.0,
        "max_batch_sequences": 512,
        "batch_size": 16,
        "context_length": 2048,
        "compile": False,
        "fast_sampler": True,
        "attn_implementation": "eager",
    }
    assert options_validate("transformers", given) == {**given, "threads": 4}
    assert options_validate("bundled", {"device": "auto", "dtype": "auto"}) == {
        "device": "auto",
        "dtype": "auto",
    }
    assert options_validate("openai", {"timeout": 30, "headers": {"X-Team": "rlhf"}}) == {
        "timeout": 30.0,
        "headers": {"X-Team": "rlhf"},
    }
    assert options_validate("bundled", None) == {}


@pytest.mark.parametrize(
    ("backend", "options", "message"),
    [
        (
            "bundled",
            {"device": "gpu0"},
            "options.device: must be auto, cpu, cuda, cuda:N, mps or xpu; got 'gpu0'",
        ),
        ("bundled", {"dtype": "int8"}, "options.dtype: must be one of auto, float32, fp32, bfloat16"),
        ("bundled", {"threads": 0}, "options.threads: must be at least 1, got 0"),
        ("bundled", {"batch_size": 2.5}, "options.batch_size: must be a whole number, got 2.5"),
        ("bundled", {"compile": "no"}, "options.compile: must be true or false, got 'no'"),
        ("bundled", {"context_length": True}, "options.context_length: must be a whole number, got True"),
        (
            "transformers",
            {"dtyp": "bf16"},
            "options.dtyp: unknown option (known: attn_implementation, batch_size",
        ),
        (
            "openai",
            {"device": "cuda"},
            "options.device: unknown option (known: backoff, backoff_max, batch_size",
        ),
        ("openai", {"timeout": 0}, "options.timeout: must be more than 0, got 0"),
        (
            "openai",
            {"headers": {"X": 1}},
            "options.headers: must be an object of header names to string values",
        ),
        ("imported", {"device": "cpu"}, "options.device: unknown option (the imported backend takes none)"),
        ("bundled", ["cpu"], "options: must be an object"),
    ],
)
def test_bad_options_are_named(backend, options, message):
    with pytest.raises(OptionsError) as caught:
        options_validate(backend, options)
    assert str(caught.value).startswith(message), str(caught.value)


def test_the_api_refuses_bad_options_naming_them_and_stores_the_clean_ones(admin_api):
    bad = admin_api.post(
        "/api/v1/generators/",
        {"name": "local", "backend": "transformers", "model_path": "/models/m", "options": {"dtype": "int4"}},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["field"] == "options"
    assert "options.dtype: must be one of auto" in bad.json()["detail"]
    assert not Generator.objects.exists()

    good = admin_api.post(
        "/api/v1/generators/",
        {"name": "local", "backend": "transformers", "model_path": "/models/m", "options": {"threads": 2.0}},
        format="json",
    )
    assert good.status_code == 201, good.json()
    assert good.json()["options"] == {"threads": 2}


def test_the_django_admin_refuses_bad_options_and_sampling(client, admin_user):
    client.force_login(admin_user)
    form = {
        "name": "endpoint",
        "backend": "openai",
        "model_path": "http://gpu-box:8000/v1",
        "model_name": "m",
        "api_key_env": "",
        "chat_template": "",
        "system_prompt": "",
        "sampling": json.dumps({"top_p": 2}),
        "options": json.dumps({"concurrency": 0}),
        "is_active": "on",
    }
    response = client.post("/admin/model_runner/generator/add/", form)
    assert response.status_code == 200  # the form again, with the errors
    html = response.content.decode()
    assert "sampling.top_p: must be greater than 0 and at most 1" in html
    assert "options.concurrency: must be at least 1, got 0" in html
    assert not Generator.objects.exists()

    form.update(sampling=json.dumps({"top_p": 0.9}), options=json.dumps({"concurrency": 4}))
    response = client.post("/admin/model_runner/generator/add/", form)
    assert response.status_code == 302
    assert Generator.objects.get().options == {"concurrency": 4}


def _generator(admin_api, **fields) -> dict:
    body = {"name": "local", "backend": "transformers", "model_path": "/models/m", **fields}
    response = admin_api.post("/api/v1/generators/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_admins_change_a_generator_with_the_same_checks_as_on_create(admin_api):
    made = _generator(admin_api, sampling={"temperature": 0.7})
    url = f"/api/v1/generators/{made['id']}/"
    assert admin_api.get(url).json()["name"] == "local"

    changed = admin_api.patch(
        url, {"sampling": {"temperature": 0.2, "seed": 1}, "options": {"dtype": "bf16"}}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["sampling"] == {"temperature": 0.2, "seed": 1}
    assert changed.json()["options"] == {"dtype": "bf16"}
    assert changed.json()["model_path"] == "/models/m"  # untouched

    bad = admin_api.patch(url, {"options": {"dtyp": "bf16"}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "options"
    no_path = admin_api.patch(url, {"model_path": ""}, format="json")
    assert no_path.status_code == 400 and no_path.json()["field"] == "model_path"
    _generator(admin_api, name="other")
    taken = admin_api.patch(url, {"name": "other"}, format="json")
    assert taken.status_code == 409 and taken.json()["field"] == "name"
    assert Generator.objects.get(pk=made["id"]).options == {"dtype": "bf16"}  # nothing half-written

    off = admin_api.patch(url, {"is_active": False}, format="json")
    assert off.status_code == 200 and off.json()["is_active"] is False


def test_a_generator_with_candidates_keeps_its_backend_and_is_deactivated_not_deleted(admin_api):
    from tests.factories import CandidateFactory

    made = _generator(admin_api)
    generator = Generator.objects.get(pk=made["id"])
    CandidateFactory(generator=generator)
    url = f"/api/v1/generators/{made['id']}/"

    switched = admin_api.patch(url, {"backend": "openai", "model_path": "http://gpu-box/v1"}, format="json")
    assert switched.status_code == 409 and switched.json()["field"] == "backend"
    refused = admin_api.delete(url)
    assert refused.status_code == 409
    assert "has 1 candidate(s) and 0 job(s)" in refused.json()["detail"]
    assert Generator.objects.filter(pk=generator.pk).exists()

    unused = _generator(admin_api, name="unused")
    assert admin_api.delete(f"/api/v1/generators/{unused['id']}/").status_code == 204
    assert admin_api.get(f"/api/v1/generators/{unused['id']}/").status_code == 404


def test_only_admins_change_generators(admin_api, researcher_api):
    made = _generator(admin_api)
    url = f"/api/v1/generators/{made['id']}/"
    assert researcher_api.get(url).status_code == 403
    assert researcher_api.patch(url, {"is_active": False}, format="json").status_code == 403
    assert researcher_api.delete(url).status_code == 403


def test_the_schema_describes_the_generator_routes(api):
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/generators/{generator_id}/"])
