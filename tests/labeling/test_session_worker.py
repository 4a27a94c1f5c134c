"""Conversation turns and their worker: a turn outlives the worker that was making it, and what the
trainer wrote is stored before anything is asked of a worker.

The crash test runs a real Celery worker process (``session_worker.py``: solo pool, as production
serves ``interactive``; a slow fake model) on the configured broker: Redis when
``CELERY_BROKER_URL`` names it (a queue of the test's own; the unacked message comes back after a
visibility timeout shortened to seconds), else kombu's filesystem transport in a temporary folder
(which forgets a taken message). The worker reads the test database, so these tests commit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections
from django.db.models import Count
from kombu import Connection
from kombu.exceptions import OperationalError
from rest_framework.test import APIClient

from comparisons.models import Candidate
from labeling.celery import app
from labeling.models import Session, Turn
from labeling.services import sessions as session_services
from labeling.services.session_templates import session_template_create
from model_runner.models import Generator
from tests.factories import GeneratorFactory, RaterFactory, RubricFactory
from tests.integrity import assert_no_drift
from tests.real_workers import worker_broker, worker_env
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

WORKER = Path(__file__).with_name("session_worker.py")
K = 4
#: Seconds a generating turn waits before another worker may take it. Longer than the restarted
#: worker takes to start here, so the test covers a turn that is not stale yet when it starts.
STALE_SECONDS = 8
TASK = "labeling.tasks.session_turn_generate_task"


def _broker(tmp_path: Path) -> tuple[str, dict[str, Any], str]:
    """(broker url, transport options, queue) for this test."""
    return worker_broker(
        tmp_path,
        queue="interactive",
        redis_options={"visibility_timeout": 4, "unacked_restore_interval": 1, "unacked_restore_throttle": 1},
        polling_interval=0.1,
    )


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(WORKER)],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def _sender(url: str, options: dict[str, Any], queue: str) -> Any:
    """What ``labeling.services.sessions._enqueue`` does, to the test's broker and queue."""

    def send(turn_ids: Iterable[int], delays: Mapping[int, float] | None = None) -> None:
        with Connection(url, transport_options=options) as conn:
            for turn_id in turn_ids:
                app.send_task(TASK, args=[turn_id], queue=queue, connection=conn)

    return send


def _say(api: APIClient, session_id: int, text: str) -> dict[str, Any]:
    response = api.post(f"/api/v1/sessions/{session_id}/messages/", {"text": text}, format="json")
    assert response.status_code == 202, response.content
    turn: dict[str, Any] = response.json()["turns"][-1]
    return turn


def _status(turn_id: int) -> str:
    return str(Turn.objects.get(pk=turn_id).status)


@pytest.mark.worker
def test_a_worker_killed_mid_turn_leaves_the_turn_to_the_next_worker(tmp_path, monkeypatch):
    url, options, queue = _broker(tmp_path)
    # Two models: a turn's 4 alternatives are 2 batches in a row (2 samples each), so the worker
    # can be killed after the first model's samples are stored and before the second's.
    first_model, second_model = (
        GeneratorFactory.create(name=name, backend=Generator.Backend.BUNDLED) for name in ("fake-a", "fake-b")
    )
    tess, theo = RaterFactory(username="tess"), RaterFactory(username="theo")
    template = session_template_create(
        name="chat, crash test",
        rubric=RubricFactory(),
        generators=[first_model, second_model],
        alternatives=K,
        members=[tess, theo],
    )
    monkeypatch.setattr(session_services, "_enqueue", _sender(url, options, queue))
    apis = {}
    for trainer in (tess, theo):
        apis[trainer.username] = APIClient()
        apis[trainer.username].force_authenticate(trainer)
    sessions = {
        name: api.post("/api/v1/sessions/", {"queue": template.pk}, format="json").json()["id"]
        for name, api in apis.items()
    }
    env = worker_env(
        url, options, queue, PREFLAB_FAKE_BATCH_SECONDS="2", PREFLAB_TURN_STALE_SECONDS=str(STALE_SECONDS)
    )
    log = tmp_path / "worker.log"

    first = _start_worker(env, log)
    try:
        crashed = _say(apis["tess"], sessions["tess"], "Hello, who are you?")
        prompt_id = Turn.objects.get(pk=crashed["id"]).prompt_id
        # The first model's 2 samples are stored; the worker sleeps in the second model's batch.
        wait_for(
            lambda: Candidate.objects.filter(prompt_id=prompt_id, generator=first_model).count() == 2,
            60,
            "the first model's samples",
            log,
        )
        # Another trainer's turn arrives while the worker is busy: it waits in the queue.
        waiting = _say(apis["theo"], sessions["theo"], "What is a haiku?")
        _kill(first)
    finally:
        _kill(first)
    assert _status(crashed["id"]) == Turn.Status.GENERATING
    assert _status(waiting["id"]) == Turn.Status.PENDING
    stored = {c.pk: c.text for c in Candidate.objects.filter(prompt_id=prompt_id)}
    assert len(stored) == 2
    assert not Candidate.objects.filter(generator=second_model).exists()

    # A new worker starts at once, before the dead worker's turn is stale: it answers the waiting
    # turn now and the generating one once it is stale (redelivered on Redis; asked again by the
    # new worker's start on either broker).
    second = _start_worker({**env, "PREFLAB_FAKE_BATCH_SECONDS": "0.2"}, log)
    try:
        wait_for(
            lambda: {_status(crashed["id"]), _status(waiting["id"])} == {Turn.Status.READY},
            STALE_SECONDS + 60,
            "both turns to be answered by the second worker",
            log,
        )
        # The sessions go on: the trainer ranks, and the next turn is answered by the same worker.
        api = apis["tess"]
        turn = api.get(f"/api/v1/sessions/{sessions['tess']}/").json()["turns"][-1]
        assert [a["label"] for a in turn["alternatives"]] == ["A", "B", "C", "D"]
        texts = sorted(a["text"] for a in turn["alternatives"])
        assert (
            sum(t.startswith("fake-a ") for t in texts) == 2
            and sum(t.startswith("fake-b ") for t in texts) == 2
        )
        ranked = api.post(
            f"/api/v1/assignments/{turn['assignment']}/judgment/",
            {"ranking": [["B"], ["A"], ["D", "C"]]},
            format="json",
        )
        assert ranked.status_code == 201, ranked.content
        following = _say(api, sessions["tess"], "And what can you do?")
        wait_for(lambda: _status(following["id"]) == Turn.Status.READY, 60, "the next turn", log)
    finally:
        _kill(second)

    # Nothing written twice: the first model's samples are the very rows stored before the crash,
    # the second model's were made once, and every (prompt, generator, sample index) is one row.
    after = {c.pk: c.text for c in Candidate.objects.filter(prompt_id=prompt_id)}
    assert len(after) == K and set(stored.items()) <= set(after.items())
    rows = Candidate.objects.filter(generator__in=[first_model, second_model])
    assert rows.count() == 3 * K
    assert (
        not rows.values("prompt_id", "generator_id", "sample_index").annotate(n=Count("id")).filter(n__gt=1)
    )
    crashed_turn = Turn.objects.get(pk=crashed["id"])
    assert crashed_turn.attempts == 2 and crashed_turn.comparison is not None
    assert crashed_turn.comparison.members.count() == K
    assert Turn.objects.get(pk=waiting["id"]).attempts == 1
    assert_no_drift()


def test_the_message_is_stored_before_anything_is_enqueued_and_survives_a_failed_enqueue(
    monkeypatch, settings, fake_backend
):
    """Through the API: when the task is enqueued, the trainer's message and the model's pending
    turn are committed (another connection sees them); when the broker is down, the request fails
    but nothing the trainer wrote is lost, and the turn is answered once asked again."""
    from labeling.tasks import session_turn_generate_task
    from model_runner.services import generator_get_bundled

    settings.PREFLAB_TURN_STALE_SECONDS = 0  # a turn no worker took may be asked again at once
    trainer = RaterFactory(username="tess")
    template = session_template_create(
        name="chat", rubric=RubricFactory(), generators=[generator_get_bundled()], members=[trainer]
    )
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(trainer)
    session_id = api.post("/api/v1/sessions/", {"queue": template.pk}, format="json").json()["id"]
    seen: list[dict[str, Any]] = []
    broker = {"up": False}
    enqueue = session_turn_generate_task.apply_async

    def apply_async(*args: Any, **kwargs: Any) -> Any:
        seen.append({"in_transaction": connection.in_atomic_block, **_from_another_connection(session_id)})
        if not broker["up"]:
            raise OperationalError("Error 111 connecting to the broker. Connection refused.")
        return enqueue(*args, **kwargs)

    monkeypatch.setattr(session_turn_generate_task, "apply_async", apply_async)
    response = api.post(f"/api/v1/sessions/{session_id}/messages/", {"text": "Hello there"}, format="json")
    assert response.status_code >= 500  # the broker is down: the request fails ...
    assert seen == [
        {"in_transaction": False, "user": ["Hello there"], "assistant": [(Turn.Status.PENDING, True)]}
    ]
    # ... but the message and the model's turn are stored, and the turn may be asked again.
    body = api.get(f"/api/v1/sessions/{session_id}/").json()
    user, model = body["turns"]
    assert user["text"] == "Hello there" and model["status"] == "pending" and model["retryable"]

    broker["up"] = True  # the broker is back (tasks run eagerly here)
    retried = api.post(f"/api/v1/sessions/{session_id}/turns/{model['id']}/retry/")
    assert retried.status_code == 202 and retried.json()["status"] == "ready"
    assert len(retried.json()["alternatives"]) == 4
    assert Session.objects.get(pk=session_id).turns.count() == 2
    assert_no_drift()


def _from_another_connection(session_id: int) -> dict[str, Any]:
    """The session's turns as another database connection sees them (committed rows only)."""
    result: dict[str, Any] = {}

    def read() -> None:
        try:
            turns = Turn.objects.filter(session_id=session_id).order_by("position")
            result["user"] = [t.text for t in turns if t.role == Turn.Role.USER]
            result["assistant"] = [
                (t.status, t.requested_at is not None) for t in turns if t.role == Turn.Role.ASSISTANT
            ]
        finally:
            connections.close_all()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(timeout=30)
    return result


def test_turns_sent_together_share_a_batch_and_a_lone_trainer_does_not_wait(
    monkeypatch, settings, fake_backend
):
    """The worker waits a moment (PREFLAB_INTERACTIVE_GATHER_MS) for the template's other talking
    trainers before it takes a batch: a turn sent meanwhile joins it; a trainer who does not send
    is waited for no longer than that; a lone trainer is not waited for at all."""
    from labeling.services.session_generation import turns_generate
    from model_runner.services import generator_get_bundled

    monkeypatch.setattr(
        session_services, "_enqueue", lambda *args, **kwargs: None
    )  # the test runs the worker
    settings.PREFLAB_INTERACTIVE_GATHER_MS = 3000
    tess, theo, tina = RaterFactory(), RaterFactory(), RaterFactory()
    bundled = generator_get_bundled()
    pair = session_template_create(
        name="pair", rubric=RubricFactory(), generators=[bundled], members=[tess, theo]
    )
    alone = session_template_create(
        name="alone", rubric=RubricFactory(), generators=[bundled], members=[tina]
    )

    def generate(turn: Turn) -> tuple[int, float]:
        started = time.monotonic()
        answered = turns_generate(turn_id=turn.pk)
        return answered, time.monotonic() - started

    # A lone trainer's turn goes at once.
    answered, waited = generate(session_services.session_say(session=_open(tina, alone), text="Hi"))
    assert answered == 1 and waited < 1

    # Theo's first turn was answered (he is talking, reading it); Tess sends: the worker waits for
    # Theo's next turn, which comes 0.3 s later, and answers both in one batch.
    tess_session, theo_session = _open(tess, pair), _open(theo, pair)
    assert generate(session_services.session_say(session=theo_session, text="Hello"))[0] == 1
    _rank_last(theo_session)
    waiting = session_services.session_say(session=tess_session, text="Hi there")
    timer = threading.Timer(0.3, _say_in_thread, args=(theo_session, "And now?"))
    timer.start()
    answered, waited = generate(waiting)
    timer.join()
    assert answered == 2 and 0.2 < waited < 2.5
    assert len(fake_backend.calls[-1]) == 2  # one model batch for both
    ready = Turn.objects.filter(session__queue=pair, status=Turn.Status.READY)
    assert {t.session_id for t in ready} == {tess_session.pk, theo_session.pk}
    assert len({t.claimed_at for t in ready}) == 1  # claimed together

    # Tess ranks and sends again; Theo does not: he is waited for no longer than the gather time.
    settings.PREFLAB_INTERACTIVE_GATHER_MS = 400
    _rank_last(tess_session)
    answered, waited = generate(session_services.session_say(session=tess_session, text="Bye"))
    assert answered == 1 and 0.35 < waited < 2
    assert_no_drift()


def _open(trainer: Any, queue: Any) -> Session:
    return session_services.session_start(trainer=trainer, queue=queue)


def _rank_last(session: Session) -> None:
    from labeling.services import judgment_submit

    turn = Turn.objects.filter(session=session, abandoned=False).order_by("-position").first()
    assert turn is not None and turn.assignment is not None
    judgment_submit(
        assignment=turn.assignment, ranking=[[label] for label in "ABCD"[: len(turn.assignment.shown_order)]]
    )


def _say_in_thread(session: Session, text: str) -> None:
    try:
        session_services.session_say(session=session, text=text)
    finally:
        connections.close_all()
