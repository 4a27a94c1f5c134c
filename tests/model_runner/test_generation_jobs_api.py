"""The generation-job and generator API, through HTTP."""

from __future__ import annotations

import pytest

from comparisons.models import Candidate
from model_runner.models import GenerationJob, Generator
from tests.factories import GenerationJobFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/generation-jobs/"


def test_admin_starts_a_job_with_the_bundled_generator_by_default(
    admin_api, admin_user, fake_backend, django_capture_on_commit_callbacks
):
    prompts = PromptFactory.create_batch(3)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(
            URL,
            {"prompts": [p.pk for p in prompts], "samples_per_prompt": 2, "sampling": {"max_new_tokens": 16}},
            format="json",
        )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued"  # as created; the batches ran after the response was rendered
    assert body["total"] == 6
    assert [g["name"] for g in body["generators"]] == ["smollm2-135m-instruct"]
    assert body["samples_per_prompt"] == 2
    job = GenerationJob.objects.get(pk=body["id"])
    assert job.created_by == admin_user
    assert Candidate.objects.filter(job=job).count() == 6

    detail = admin_api.get(f"{URL}{job.pk}/").json()
    assert detail["status"] == "succeeded"
    assert (detail["done"], detail["total"], detail["progress"]) == (6, 6, 1.0)
    assert detail["completion_tokens"] == 18
    assert detail["tokens_per_second"] == pytest.approx(18 / 0.06, rel=0.01)
    assert detail["eta_seconds"] == 0
    assert detail["errors"] == []
    assert detail["finished_at"] is not None

    listed = admin_api.get(URL).json()
    assert [j["id"] for j in listed] == [job.pk]


def test_prompts_by_tag_and_generators_by_name(admin_api, fake_backend):
    tagged = [PromptFactory.create(tags=["math"]), PromptFactory.create(tags=["code", "math"])]
    PromptFactory.create(tags=["chat"])
    GeneratorFactory.create(name="local-a", backend=Generator.Backend.TRANSFORMERS, model_path="/models/a")

    response = admin_api.post(
        URL, {"tags": ["math"], "generators": ["local-a"], "samples_per_prompt": 1}, format="json"
    )

    assert response.status_code == 201, response.json()
    job = GenerationJob.objects.get(pk=response.json()["id"])
    assert set(job.prompts.values_list("pk", flat=True)) == {p.pk for p in tagged}
    assert response.json()["generators"][0]["name"] == "local-a"


def test_prompts_by_collection(admin_api):
    PromptFactory.create(collection="eval")
    PromptFactory.create(collection="train")
    response = admin_api.post(URL, {"collection": "eval", "samples_per_prompt": 1}, format="json")
    assert response.status_code == 201
    assert response.json()["total"] == 1


@pytest.mark.parametrize("k", [0, 17])
def test_samples_out_of_range_is_a_400_naming_the_field(admin_api, k):
    prompt = PromptFactory.create()
    response = admin_api.post(URL, {"prompts": [prompt.pk], "samples_per_prompt": k}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "samples_per_prompt"
    assert "between 1 and 16" in response.json()["detail"]
    assert not GenerationJob.objects.exists()


def test_unknown_prompt_ids_are_named(admin_api):
    prompt = PromptFactory.create()
    response = admin_api.post(URL, {"prompts": [prompt.pk, 999999, "no-such-id"]}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "prompts"
    assert "999999" in body["detail"] and "no-such-id" in body["detail"]
    assert not GenerationJob.objects.exists()


def test_prompts_by_external_id(admin_api):
    prompt = PromptFactory.create(external_id="q-17")
    response = admin_api.post(URL, {"prompts": ["q-17"], "samples_per_prompt": 1}, format="json")
    assert response.status_code == 201, response.json()
    assert list(GenerationJob.objects.get().prompts.all()) == [prompt]


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"generators": ["nope"]}, "generators", "nope"),
        ({"sampling": {"temperature": -1}}, "sampling", "temperature"),
        ({"tags": ["absent"]}, "tags", "absent"),
        ({"samples_per_prompt": "four"}, "samples_per_prompt", "integer"),
    ],
)
def test_other_bad_input_names_the_field(admin_api, body, field, fragment):
    prompt = PromptFactory.create()
    payload = {"prompts": [prompt.pk], **body}
    if "tags" in body:
        del payload["prompts"]
    response = admin_api.post(URL, payload, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert fragment in response.json()["detail"]


def test_prompts_and_tags_together_are_refused(admin_api):
    prompt = PromptFactory.create(tags=["x"])
    response = admin_api.post(URL, {"prompts": [prompt.pk], "tags": ["x"]}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "prompts"


@pytest.mark.parametrize("client_name", ["rater_api", "researcher_api"])
def test_only_admins_see_or_start_jobs(request, client_name):
    client = request.getfixturevalue(client_name)
    job = GenerationJobFactory.create()
    assert client.post(URL, {"prompts": [PromptFactory.create().pk]}, format="json").status_code == 403
    assert client.get(URL).status_code == 403
    assert client.get(f"{URL}{job.pk}/").status_code == 403
    assert client.post(f"{URL}{job.pk}/cancel/").status_code == 403
    assert client.get("/api/v1/generators/").status_code == 403
    assert GenerationJob.objects.count() == 1


def test_anonymous_is_refused(api):
    # TokenAuthentication comes first, so DRF answers "not authenticated" with 401 and a challenge.
    response = api.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_missing_job_is_404(admin_api):
    response = admin_api.get(f"{URL}424242/")
    assert response.status_code == 404
    assert "424242" in response.json()["detail"]


def test_cancel_a_queued_job(admin_api, fake_backend):
    prompt = PromptFactory.create()
    created = admin_api.post(URL, {"prompts": [prompt.pk], "samples_per_prompt": 1}, format="json").json()

    response = admin_api.post(f"{URL}{created['id']}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    again = admin_api.post(f"{URL}{created['id']}/cancel/")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]


def test_generators_list_and_create(admin_api):
    response = admin_api.post(
        "/api/v1/generators/",
        {
            "name": "qwen-local",
            "backend": "transformers",
            "model_path": "/models/qwen",
            "system_prompt": "Be brief.",
            "sampling": {"temperature": 0.2},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["sampling"] == {"temperature": 0.2}

    names = [g["name"] for g in admin_api.get("/api/v1/generators/").json()]
    assert names == ["qwen-local"]

    duplicate = admin_api.post(
        "/api/v1/generators/", {"name": "qwen-local", "backend": "bundled"}, format="json"
    )
    assert duplicate.status_code == 409
    no_path = admin_api.post("/api/v1/generators/", {"name": "x", "backend": "transformers"}, format="json")
    assert no_path.status_code == 400
    assert no_path.json()["field"] == "model_path"
    bad_sampling = admin_api.post(
        "/api/v1/generators/", {"name": "y", "backend": "bundled", "sampling": {"top_k": -1}}, format="json"
    )
    assert bad_sampling.status_code == 400
    assert bad_sampling.json()["field"] == "sampling"
    assert Generator.objects.count() == 1


def test_schema_lists_the_generation_routes(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/generation-jobs/" in paths
    assert "/api/v1/generation-jobs/{job_id}/cancel/" in paths
    assert "post" in paths["/api/v1/generators/"]
