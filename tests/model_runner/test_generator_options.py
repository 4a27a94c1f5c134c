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
