"""No input is a 500: every value an admin sends is checked against the column that stores it.

The walk is generic: for each write route, every input whose name is a column of the model it
writes (an integer of any size, a foreign key, text with a length) gets the values just past what
that column holds, computed from the model field itself, and must come back 400 naming the input,
with nothing written. A column added to a model and a serializer is walked without touching this
file. Ids sent as text are read as ASCII digits only ("²" passes ``str.isdigit()``). Both
databases run it: SQLite stores any 64-bit value in any integer column, PostgreSQL refuses what
the column's type cannot hold, and both must answer the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import models
from django.forms.models import model_to_dict
from rest_framework import serializers

from comparisons.models import Candidate, Prompt
from export.apis import ExportRunCollectionApi
from export.models import ExportRun
from labeling.apis.accounts import UserCreateApi
from labeling.apis.queue_admin import QueueDetailApi
from labeling.apis.queues import QueueListCreateApi
from labeling.apis.rubrics import CriterionSerializer, RubricListCreateApi
from labeling.errors import column_range
from labeling.models import Criterion, Queue, QueueItem, Rubric, User
from model_runner.apis import GenerationJobListCreateApi, GeneratorDetailApi, GeneratorListCreateApi
from model_runner.models import GenerationJob, Generator
from tests.factories import CandidateFactory, GeneratorFactory, PromptFactory, QueueFactory, RubricFactory

pytestmark = pytest.mark.django_db

#: Every table a write route could touch: a refused request leaves each exactly as it was.
WATCHED = (Queue, QueueItem, Rubric, Criterion, Generator, GenerationJob, ExportRun, User, Prompt, Candidate)


def _snapshot() -> dict[str, list[dict[str, Any]]]:
    return {m.__name__: list(m.objects.order_by("pk").values()) for m in WATCHED}


def _prompt_with_candidates(k: int = 3) -> Prompt:
    generator = GeneratorFactory()
    prompt = PromptFactory()
    for i in range(k):
        CandidateFactory(prompt=prompt, generator=generator, sample_index=i)
    return prompt


@dataclass(frozen=True)
class Door:
    """A write route: how to call it validly, which model its inputs are columns of."""

    name: str
    method: str
    model: type[models.Model]
    serializer: type[serializers.Serializer]
    setup: Callable[[], tuple[str, dict[str, Any]]]  # (url, a valid body)
    nested: str = ""  # inputs of a list of objects, e.g. a rubric's criteria
    skip: frozenset[str] = field(default_factory=frozenset)  # inputs that are not stored as given


def _queue_create() -> tuple[str, dict[str, Any]]:
    prompt = _prompt_with_candidates()
    return "/api/v1/queues/", {"name": "q", "rubric": str(RubricFactory().pk), "prompts": [str(prompt.pk)]}


def _queue_patch() -> tuple[str, dict[str, Any]]:
    return f"/api/v1/queues/{QueueFactory().pk}/", {}


def _rubric() -> tuple[str, dict[str, Any]]:
    return "/api/v1/rubrics/", {"name": "r", "criteria": [{"key": "k", "question": "Q?", "kind": "flag"}]}


def _generator() -> tuple[str, dict[str, Any]]:
    return "/api/v1/generators/", {"name": "g", "backend": "imported"}


def _generator_patch() -> tuple[str, dict[str, Any]]:
    return f"/api/v1/generators/{GeneratorFactory().pk}/", {}


def _job() -> tuple[str, dict[str, Any]]:
    return "/api/v1/generation-jobs/", {"prompts": [PromptFactory().pk]}


def _export() -> tuple[str, dict[str, Any]]:
    return "/api/v1/exports/", {"name": "data"}


def _user() -> tuple[str, dict[str, Any]]:
    return "/api/v1/users/", {"username": "u", "password": "long-enough-pass", "role": "rater"}


DOORS = [
    Door("create queue", "post", Queue, QueueListCreateApi.InputSerializer, _queue_create),
    Door("change queue", "patch", Queue, QueueDetailApi.InputSerializer, _queue_patch),
    Door("create rubric", "post", Rubric, RubricListCreateApi.InputSerializer, _rubric),
    Door("criteria", "post", Criterion, CriterionSerializer, _rubric, nested="criteria"),
    Door("create generator", "post", Generator, GeneratorListCreateApi.InputSerializer, _generator),
    Door("change generator", "patch", Generator, GeneratorDetailApi.UpdateSerializer, _generator_patch),
    Door("start generation", "post", GenerationJob, GenerationJobListCreateApi.InputSerializer, _job),
    Door("start export", "post", ExportRun, ExportRunCollectionApi.InputSerializer, _export),
    # the password is hashed before it is stored: its column never sees the input
    Door("create user", "post", User, UserCreateApi.InputSerializer, _user, skip=frozenset({"password"})),
]


def _past_the_column(model_field: models.Field[Any, Any]) -> list[Any]:
    """Values the column cannot hold: one past each end of an integer column's range (a foreign
    key's is its target key's), one character past a text column's length. Empty for the rest."""
    try:
        low, high = column_range(model_field)
    except TypeError:
        length = getattr(model_field, "max_length", None)
        if isinstance(model_field, models.CharField) and isinstance(length, int):
            return ["x" * (length + 1)]
        return []
    return [high + 1, low - 1]


def _cases() -> list[Any]:
    cases = []
    for door in DOORS:
        columns = {f.name: f for f in door.model._meta.concrete_fields}
        for name in door.serializer().fields:
            if name in columns and name not in door.skip:
                for value in _past_the_column(columns[name]):
                    shown = value if isinstance(value, int) else f"{len(value)} chars"
                    cases.append(pytest.param(door, name, value, id=f"{door.name}-{name}-{shown}"))
    return cases


CASES = _cases()


def test_the_walk_covers_the_inputs_the_issue_names():
    walked = {(case.values[0].name, case.values[1]) for case in CASES}
    assert {
        ("create queue", "lease_seconds"),
        ("create queue", "priority"),
        ("create queue", "qualification_min_items"),
        ("create queue", "qualification"),
        ("create queue", "content_warning"),
        ("change queue", "lease_seconds"),
        ("change queue", "priority"),
        ("criteria", "key"),
        ("criteria", "question"),
        ("create generator", "model_path"),
        ("start generation", "samples_per_prompt"),
        ("start generation", "batch_size"),
        ("start export", "name"),
    } <= walked


@pytest.mark.parametrize(("door", "name", "value"), CASES)
def test_a_value_past_its_column_is_a_400_naming_it_and_nothing_is_written(admin_api, door, name, value):
    url, body = door.setup()
    if door.nested:
        body[door.nested][0][name] = value
        expected = f"{door.nested}[0].{name}"
    else:
        body[name] = value
        expected = name
    before = _snapshot()
    response = getattr(admin_api, door.method)(url, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == expected, response.json()
    assert _snapshot() == before


def test_the_largest_lease_a_column_holds_still_hands_out_work(admin_api, rater_api, rater):
    """On SQLite a lease of 10**12 seconds used to be stored, and every claim then overflowed."""
    url, body = _queue_create()
    top = column_range(Queue._meta.get_field("lease_seconds"))[1]
    created = admin_api.post(url, {**body, "lease_seconds": top, "members": [rater.username]}, format="json")
    assert created.status_code == 201, created.content
    assert rater_api.post(f"/api/v1/queues/{created.json()['id']}/next/").status_code == 201


def _gold() -> str:
    return f"/api/v1/queues/{QueueFactory().pk}/gold/"


ID_CASES = [
    ("post", _queue_create, {"rubric": "²"}, "rubric"),
    ("post", _queue_create, {"members": ["²"]}, "members"),
    ("post", _queue_create, {"members": ["9" * 30]}, "members"),
    ("post", _queue_create, {"prompts": ["²"]}, "prompts"),
    ("post", _queue_create, {"prompts": ["9" * 30]}, "prompts"),
    ("patch", _queue_patch, {"members": ["²"]}, "members"),
    ("patch", _queue_patch, {"members": [str(2**63)]}, "members"),
    ("patch", _queue_patch, {"groups": ["²"]}, "groups"),
    ("patch", _queue_patch, {"groups": ["9" * 30]}, "groups"),
    ("post", _job, {"generators": ["²"]}, "generators"),
    ("post", _job, {"generators": [2**63]}, "generators"),
    ("post", _job, {"prompts": ["²"]}, "prompts"),
    ("post", _job, {"prompts": [2**63]}, "prompts"),
    ("post", _export, {"filters": {"queues": ["²"]}}, "filters.queues"),
    ("post", _export, {"filters": {"queues": [2**63]}}, "filters.queues"),
    ("post", _export, {"filters": {"rubric_versions": ["9" * 30]}}, "filters.rubric_versions"),
    ("post", _export, {"filters": {"generators": [2**63]}}, "filters.generators"),
    (
        "post",
        lambda: (_gold(), {}),
        {"items": [{"comparison": 2**63, "preference": 1}]},
        "items[0].comparison",
    ),
    ("post", lambda: (_gold(), {}), {"items": [{"comparison": "²", "preference": 1}]}, "items[0].comparison"),
]


@pytest.mark.parametrize(("method", "setup", "change", "field"), ID_CASES)
def test_an_id_in_other_digits_or_past_the_key_is_a_400_naming_the_input(
    admin_api, method, setup, change, field
):
    url, body = setup()
    before = _snapshot()
    response = getattr(admin_api, method)(url, {**body, **change}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert _snapshot() == before


def test_the_estimate_refuses_the_same_ids(admin_api):
    response = admin_api.post("/api/v1/exports/estimate/", {"filters": {"queues": ["²"]}}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "filters.queues"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"name": "a\\ud800b", "backend": "imported"}', "name"),
        ('{"name": "g", "backend": "imported", "sampling": {"stop": ["\\udfff"]}}', "sampling.stop[0]"),
        ('{"name": "g", "backend": "imported", "sampling": {"temperature": 1e400}}', None),
    ],
)
def test_unpaired_surrogates_and_infinite_numbers_are_refused_before_any_service(admin_api, body, field):
    before = _snapshot()
    response = admin_api.post("/api/v1/generators/", body.encode(), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json().get("field") == field, response.json()
    assert _snapshot() == before


def _export_form(**fields: Any) -> dict[str, Any]:
    return {"name": "x", "format": "trl", "aggregation": "raw", "file_kinds": ["jsonl"], "test_fraction": "0.1",
            "validation_fraction": "0", **fields}  # fmt: skip


@pytest.mark.parametrize(
    ("url", "form"),
    [
        ("/export/", _export_form(queues=["9" * 30])),
        ("/export/", _export_form(rubric_versions=["²"])),
        ("/export/", _export_form(generators=[str(2**63)])),
        ("/manage/queues/new/", {"name": "n", "members": ["9" * 30]}),
        ("QUEUE/members/", {"members-usernames": "²", "members-groups": ["9" * 30]}),
        (
            "QUEUE/settings/",
            {
                "settings-overlap": "1",
                "settings-lease_seconds": str(10**12),
                "settings-max_open_leases": "1",
                "settings-priority": "0",
            },
        ),  # fmt: skip
    ],
)
def test_page_forms_refuse_ids_and_numbers_past_their_columns(client, admin_user, url, form):
    """Django's multiple-choice fields sent a number past the id column to SQLite, which raised."""
    Group.objects.create(name="reviewers")
    client.force_login(admin_user)
    url = url.replace("QUEUE/", f"/manage/queues/{QueueFactory().pk}/")
    before = _snapshot()
    response = client.post(url, form)
    assert response.status_code == 400
    assert _snapshot() == before


@pytest.mark.parametrize("run", ["²", "9" * 30, "-1"])
def test_the_export_page_ignores_a_run_that_is_no_id(client, researcher, run):
    client.force_login(researcher)
    assert client.get(f"/export/?run={run}").status_code == 200


def test_the_django_admin_holds_integers_to_their_column_on_every_database(client, admin_user):
    """Django's admin takes the range from the database, and SQLite's is 64 bits for every column."""
    queue = QueueFactory()
    client.force_login(admin_user)
    form = {k: ("" if v is None else v) for k, v in model_to_dict(queue).items() if k != "members"}
    url = f"/admin/labeling/queue/{queue.pk}/change/"
    response = client.post(url, {**form, "lease_seconds": str(10**12)})
    assert response.status_code == 200 and "lease_seconds" in response.context["adminform"].form.errors
    assert Queue.objects.get(pk=queue.pk).lease_seconds == queue.lease_seconds
    saved = client.post(url, {**form, "lease_seconds": "600"})
    assert saved.status_code == 302 and Queue.objects.get(pk=queue.pk).lease_seconds == 600


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (
            "/api/v1/generators/",
            {"name": "g", "backend": "bundled", "options": {"threads": 10**400}},
            "options",
        ),
        (
            "/api/v1/generators/",
            {"name": "g", "backend": "bundled", "options": {"threads": 2**31}},
            "options",
        ),
        (
            "/api/v1/generators/",
            {"name": "g", "backend": "bundled", "options": {"device": "cpu\n"}},
            "options",
        ),
        (
            "/api/v1/generators/",
            {"name": "g", "backend": "bundled", "options": {"device": "cuda:٣"}},
            "options",
        ),
        (
            "/api/v1/generators/",
            {"name": "g", "backend": "bundled", "sampling": {"temperature": 10**400}},
            "sampling",
        ),
        ("/api/v1/generators/", {"name": "g", "backend": "bundled", "sampling": {"seed": 2**63}}, "sampling"),
    ],
)
def test_generator_settings_past_a_number_are_a_400(admin_api, url, body, field):
    """An integer past the largest float made ``float()`` raise: a 500."""
    before = _snapshot()
    response = admin_api.post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert _snapshot() == before
