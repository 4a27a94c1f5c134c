"""The API against its own OpenAPI schema: schemathesis generates requests from ``/api/schema/``
(valid and invalid input, boundary values) for every operation, as an admin and as a rater, and
every answer must be no server error, a status the schema documents, and a body that matches it.

It runs in-process against the WSGI application (no server), in the test's transaction: each
request runs in a savepoint that a server error rolls back, so one failure does not poison the
next request. The number of examples is bounded (``PREFLAB_FUZZ_EXAMPLES``, default 25 per
operation and generation mode) and the run is seeded, so CI sees the same cases each time; set
``PREFLAB_FUZZ_SEED`` to explore others.

Path ids are often mapped onto rows that exist (a queue the rater is a member of, a lease the
rater holds, a finished export), so the fuzzer reaches the code behind the 404.

``KNOWN`` lists the server errors and schema violations that are known and being fixed elsewhere,
each with its reason: they are tolerated for that operation only. Remove an entry once it is fixed.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import got_request_exception, request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from werkzeug.test import Client

from export.services.runs import export_run_create, export_run_execute
from labeling.models import Criterion, Queue
from labeling.services import assignment_claim_next, judgment_submit
from model_runner.models import GenerationJob
from tests.factories import (
    PASSWORD,
    AdminFactory,
    CandidateFactory,
    CriterionFactory,
    GenerationJobFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    RubricFactory,
    make_comparison,
)

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("PREFLAB_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("PREFLAB_FUZZ_SEED", "20261130"))

#: (method, path template) -> why a server error or schema violation there is tolerated for now.
KNOWN: dict[tuple[str, str], str] = {}

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


class World:
    """A small installation: queues with work leased and done, generators, jobs, prompts, an export."""

    def __init__(self) -> None:
        self.admin = AdminFactory(username="fuzz-admin")
        self.rater = RaterFactory(username="fuzz-rater")
        other = RaterFactory(username="fuzz-other")
        rubric = RubricFactory(name="fuzz-rubric")
        for key, kind in [
            ("helpful", Criterion.Kind.PREFERENCE),
            ("quality", Criterion.Kind.LIKERT),
            ("harmful", Criterion.Kind.FLAG),
            ("notes", Criterion.Kind.TEXT),
        ]:
            CriterionFactory(rubric=rubric, key=key, kind=kind)
        pairs = QueueFactory(name="fuzz-pairs", rubric=rubric, overlap=2, members=[self.rater, other])
        pairs.max_open_leases = 3
        pairs.save()
        QueueItemFactory.create_batch(6, queue=pairs)
        ranking = QueueFactory(name="fuzz-ranking", kind=Queue.Kind.RANKING, members=[self.rater])
        prompt = PromptFactory(tags=["fuzz"], collection="fuzz")
        generator = GeneratorFactory(name="fuzz-model")
        candidates = [
            CandidateFactory(prompt=prompt, generator=generator, text=f"Answer {i}.") for i in range(4)
        ]
        QueueItemFactory(queue=ranking, comparison=make_comparison(prompt, candidates))
        judged = assignment_claim_next(rater=other, queue=pairs)
        assert judged is not None
        judgment_submit(assignment=judged, preference=-1)
        leases = [assignment_claim_next(rater=self.rater, queue=q) for q in (pairs, pairs, ranking)]
        PromptFactory.create_batch(3, tags=["fuzz", "math"], collection="fuzz")
        GenerationJobFactory(status=GenerationJob.Status.RUNNING, total=8, done=2).generators.add(generator)
        GenerationJobFactory(status=GenerationJob.Status.FAILED, total=4, done=1, errors=[]).generators.add(
            generator
        )
        export = export_run_create(created_by=self.admin, name="fuzz-export")
        export_run_execute(export_run=export)
        self.ids: dict[str, list[int]] = {
            "queue_id": [pairs.pk, ranking.pk],
            "assignment_id": [lease.pk for lease in leases if lease is not None] + [judged.pk],
            "job_id": list(GenerationJob.objects.values_list("pk", flat=True)),
            "generator_id": [generator.pk],
            "export_run_id": [export.pk],
        }
        self.tokens: dict[str, str] = {}


@pytest.fixture
def world(settings, tmp_path) -> World:
    settings.PREFLAB_EXPORT_ROOT = tmp_path / "exports"
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    return World()


def _token(app: Callable[..., Any], username: str) -> str:
    """A token through the public route, as a script would get one."""
    response = Client(app).post("/api/v1/auth/token/", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["token"]


class Errors:
    """The tracebacks of the server errors of the current request (Django logs them; we keep them)."""

    def __init__(self) -> None:
        self.last: list[str] = []

    def __call__(self, sender: Any, request: Any = None, **kwargs: Any) -> None:
        self.last.append(traceback.format_exc())


@pytest.fixture
def server_errors() -> Iterator[Errors]:
    errors = Errors()
    got_request_exception.connect(errors)
    yield errors
    got_request_exception.disconnect(errors)


def _in_savepoints(app: Callable[..., Any]) -> Callable[..., Any]:
    """The WSGI app, each request in a savepoint of the test's transaction, rolled back on a 5xx.

    Like Django's test client, it keeps the per-request connection clean-up away: it would close
    the connection the test's transaction lives on."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # Django's test client connects them again after each of its requests.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        status: list[int] = []

        def record(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(int(line.split()[0]))
            return start_response(line, headers, exc_info)

        with transaction.atomic():
            result = app(environ, record)
            try:
                body = b"".join(result)  # inside the savepoint: a streamed download reads here
            finally:
                getattr(result, "close", lambda: None)()
            if status and status[0] >= 500:
                transaction.set_rollback(True)
        return [body]

    return wrapped


@pytest.fixture
def api_schema(world: World, request: pytest.FixtureRequest) -> Iterator[Any]:
    # schemathesis 4's pytest loader labels each operation's subtest through Node._nodeid, which
    # pytest 9.2 renamed (Node._id): give it the attribute to read and rewrite.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        config = schemathesis.Config.from_dict(
            {
                "seed": SEED,
                "generation": {"max-examples": EXAMPLES},
                "phases": {"stateful": {"enabled": False}},
            }
        )
        app = _in_savepoints(get_wsgi_application())
        schema = schemathesis.openapi.from_wsgi("/api/schema/", app, config=config)
        world.tokens = {
            "admin": _token(app, world.admin.username),
            "rater": _token(app, world.rater.username),
        }
        yield schema
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")

FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _existing_ids(case: Any, world: World) -> None:
    """Four generated ids in five become a row that exists; the rest stay as generated (404s).
    (Here rather than in a schemathesis hook: its coverage phase, most of the cases, skips hooks.)"""
    for name, value in (case.path_parameters or {}).items():
        ids = world.ids.get(name)
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)  # the coverage phase sends ids as text
        if ids and isinstance(value, int) and not isinstance(value, bool) and value % 5 != 4:
            case.path_parameters[name] = ids[value % len(ids)]


def _call_and_check(case: Any, world: World, role: str, errors: Errors) -> int:
    """Send the case as ``role``; the response's status once every check passed (a failed check
    raises, with the server's traceback attached). An operation with a known, documented defect
    (``KNOWN``) is let through."""
    _existing_ids(case, world)
    errors.last.clear()
    response = case.call(headers={"Authorization": f"Token {world.tokens[role]}"})
    reason = KNOWN.get((case.operation.method.upper(), case.operation.path))
    if reason is not None and response.status_code >= 500:
        return int(response.status_code)
    try:
        case.validate_response(response, checks=CHECKS)
    except BaseException as exc:
        if errors.last and reason is None:
            exc.add_note("Server traceback:\n" + "\n".join(errors.last))
        if reason is not None:
            return int(response.status_code)
        raise
    return int(response.status_code)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_an_admin(case: Any, world: World, server_errors: Errors) -> None:
    status = _call_and_check(case, world, "admin", server_errors)
    assert status < 500 or (case.operation.method.upper(), case.operation.path) in KNOWN


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_a_rater(case: Any, world: World, server_errors: Errors) -> None:
    status = _call_and_check(case, world, "rater", server_errors)
    assert status < 500 or (case.operation.method.upper(), case.operation.path) in KNOWN
