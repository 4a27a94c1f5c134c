"""The audit log: each audited action through its door writes an event naming who, what and from
where; nothing can change or delete an event, down to the database; admins read, filter and
download it on /manage/audit/ and at GET /api/v1/audit/."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import DatabaseError, transaction
from django.test import Client
from rest_framework.test import APIClient

from labeling.audit import audit_record
from labeling.models import AuditEvent, Queue, Rubric, User
from tests.factories import (
    PASSWORD,
    CandidateFactory,
    GeneratorFactory,
    PromptFactory,
    RaterFactory,
    RubricFactory,
)

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.7"
AGENT = "audit-test/1.0"


def _admin_api(user) -> APIClient:
    client = APIClient(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT=AGENT)
    client.force_authenticate(user)
    return client


def _admin_page(user) -> Client:
    client = Client(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT=AGENT)
    client.force_login(user)
    return client


def _event(action: str, **filters) -> AuditEvent:
    found = list(AuditEvent.objects.filter(action=action, **filters))
    assert len(found) == 1, (action, [(e.action, e.object_repr) for e in AuditEvent.objects.all()])
    return found[0]


def _by(event: AuditEvent, user) -> None:
    assert (event.actor_id, event.actor_name) == (user.pk, user.username)
    assert (event.ip_address, event.user_agent) == (ADDRESS, AGENT)


def test_users_created_and_their_roles_and_activation_changed(admin_user):
    api = _admin_api(admin_user)
    made = api.post(
        "/api/v1/users/",
        {"username": "newbie", "password": "long-enough-pass", "role": "rater"},
        format="json",
    )
    assert made.status_code == 201
    user = User.objects.get(username="newbie")
    created = _event("user.create", object_id=str(user.pk))
    _by(created, admin_user)
    assert created.object_type == "labeling.user" and created.changes["role"] == "rater"
    assert "password" not in json.dumps(created.changes)

    page = _admin_page(admin_user)
    form = page.get(f"/admin/labeling/user/{user.pk}/change/").context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("password", "groups")}
    data.update(
        {"role": "reviewer", "is_active": "", "date_joined_0": "2024-01-01", "date_joined_1": "00:00:00"}
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    data["content_opt_outs"] = "[]"
    saved = page.post(f"/admin/labeling/user/{user.pk}/change/", data)
    assert saved.status_code == 302, saved.context["adminform"].form.errors if saved.context else saved
    role = _event("user.role_change", object_id=str(user.pk))
    _by(role, admin_user)
    assert role.changes["role"] == ["rater", "reviewer"]
    assert _event("user.deactivate", object_id=str(user.pk)).changes["is_active"] == [True, False]
    assert _event("admin.change", object_id=str(user.pk)).actor_id == admin_user.pk


def test_rubrics_made_and_new_versions(admin_user):
    api = _admin_api(admin_user)
    body = {"name": "hhh", "criteria": [{"key": "helpful", "question": "?", "kind": "preference"}]}
    assert api.post("/api/v1/rubrics/", body, format="json").status_code == 201
    _by(_event("rubric.create"), admin_user)
    rubric = Rubric.objects.get(name="hhh")
    page = _admin_page(admin_user)
    page.post("/admin/labeling/rubric/", {"action": "new_version", "_selected_action": [rubric.pk]})
    version = _event("rubric.new_version")
    _by(version, admin_user)
    assert version.changes == {"version": 2, "criteria": ["helpful"]}


def test_queue_creation_and_changes(admin_user, rater, rater2):
    RubricFactory(name="r")
    generator = GeneratorFactory()
    prompt = PromptFactory(tags=["chat"])
    for i in range(2):
        CandidateFactory(prompt=prompt, generator=generator, sample_index=i)
    api = _admin_api(admin_user)
    made = api.post(
        "/api/v1/queues/",
        {"name": "q", "kind": "pairwise", "rubric": "r", "tags": ["chat"], "members": [rater.username]},
        format="json",
    )
    assert made.status_code == 201, made.content
    queue = Queue.objects.get(name="q")
    _by(_event("queue.create", object_id=str(queue.pk)), admin_user)
    assert _event("queue.items_add", object_id=str(queue.pk)).changes == {"added": 1}
    changed = api.patch(
        f"/api/v1/queues/{queue.pk}/",
        {"overlap": 3, "status": "paused", "members": [rater2.username]},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    update = _event("queue.update")
    _by(update, admin_user)
    assert update.changes == {"overlap": [1, 3]}
    assert _event("queue.status").changes == {"status": ["active", "paused"]}
    assert _event("queue.members").changes == {"added": [rater2.username], "removed": [rater.username]}


def test_logins_logouts_and_failures_from_the_page(rater):
    client = Client(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT=AGENT)
    client.post("/accounts/login/", {"username": rater.username, "password": "wrong"})
    failed = _event("auth.login_failed")
    assert failed.actor_id is None and failed.actor_name == "anonymous"
    assert failed.changes == {"username": rater.username, "via": "page"} and failed.ip_address == ADDRESS
    assert (
        client.post("/accounts/login/", {"username": rater.username, "password": PASSWORD}).status_code == 302
    )
    login = _event("auth.login")
    _by(login, rater)
    assert login.changes == {"via": "page"}
    client.post("/accounts/logout/")
    _by(_event("auth.logout"), rater)


def test_api_logins_and_keys(rater):
    api = APIClient(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT=AGENT)
    token = api.post("/api/v1/auth/token/", {"username": rater.username, "password": PASSWORD}).json()[
        "token"
    ]
    login = _event("auth.login")
    _by(login, rater)
    assert login.changes == {"via": "api"}
    key = _event("api_key.create")
    _by(key, rater)
    assert key.changes["name"] == "login" and token not in json.dumps(key.changes)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    key_id = api.get("/api/v1/auth/keys/").json()[0]["id"]
    assert api.delete(f"/api/v1/auth/keys/{key_id}/").status_code == 204
    revoked = _event("api_key.revoke")
    _by(revoked, rater)
    assert revoked.changes == {"user": rater.username, "name": "login", "reason": "revoked"}


def test_admin_deletions_one_or_many_are_recorded(admin_user):
    page = _admin_page(admin_user)
    one, *many = RubricFactory.create_batch(3)
    assert page.post(f"/admin/labeling/rubric/{one.pk}/delete/", {"post": "yes"}).status_code == 302
    _by(_event("admin.delete", object_id=str(one.pk)), admin_user)
    bulk = page.post(
        "/admin/labeling/rubric/",
        {"action": "delete_selected", "_selected_action": [r.pk for r in many], "post": "yes"},
    )
    assert bulk.status_code == 302 and not Rubric.objects.exists()
    for rubric in many:
        _by(_event("admin.delete", object_id=str(rubric.pk)), admin_user)


def test_events_outside_a_request_name_the_process():
    rubric = RubricFactory()
    audit_record("rubric.update", target=rubric, changes={"description": ["a", "b"], "password": "x"})
    event = _event("rubric.update")
    assert event.actor_id is None and event.actor_name == "system" and event.ip_address is None
    assert event.changes == {"description": ["a", "b"], "password": "[redacted]"}


def test_the_log_is_append_only_down_to_the_database(admin_user):
    audit_record("rubric.update", object_type="labeling.rubric", object_id=1, object_repr="r")
    event = AuditEvent.objects.get()
    for change in (
        lambda: AuditEvent.objects.filter(pk=event.pk).update(action="nothing"),
        lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
        lambda: event.save(),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            change()
    assert AuditEvent.objects.get().action == "rubric.update"
    # nor through the admin
    page = _admin_page(admin_user)
    assert page.get(f"/admin/labeling/auditevent/{event.pk}/change/").status_code == 200  # read-only view
    assert page.post(f"/admin/labeling/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert page.get("/admin/labeling/auditevent/add/").status_code == 403
    # deleting a user keeps their events as they were
    user = RaterFactory(username="gone")
    audit_record("auth.logout", actor=user)
    user.delete()
    assert _event("auth.logout").actor_name == "gone"


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_log_and_keeps_the_guard():
    from django.core.management import call_command

    audit_record("rubric.update", object_type="labeling.rubric")
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEvent.objects.exists()
    audit_record("rubric.update", object_type="labeling.rubric")
    with pytest.raises(DatabaseError, match="append-only"):
        AuditEvent.objects.all().delete()


def _rows(page) -> str:
    html = page.content.decode()
    return html[html.index("<tbody>") :]


def test_admins_read_filter_and_download_the_log(admin_user, researcher):
    rater = RaterFactory(username="ann")
    audit_record("auth.login", actor=rater, target=rater)
    audit_record(
        "queue.update", actor=admin_user, object_type="labeling.queue", object_id=7, object_repr="=q"
    )
    page = _admin_page(admin_user)
    listed = page.get("/manage/audit/", {"action": "auth"})
    assert listed.status_code == 200
    assert "<code>auth.login</code>" in _rows(listed) and "queue.update" not in _rows(listed)
    by_object = _rows(page.get("/manage/audit/", {"object_type": "labeling.queue", "object_id": "7"}))
    assert "<code>queue.update</code>" in by_object and "auth.login" not in by_object
    assert b"No events match" in page.get("/manage/audit/", {"actor": "nobody"}).content
    assert page.get("/manage/audit/", {"since": "yesterday"}).status_code == 400
    assert b"ann" in page.get("/manage/audit/", {"since": "2000-01-01", "until": "2999-12-31"}).content

    csv_rows = list(
        csv.DictReader(
            io.StringIO(b"".join(page.get("/manage/audit/", {"download": "csv"}).streaming_content).decode())
        )
    )
    assert [(r["actor_name"], r["action"]) for r in csv_rows] == [
        ("ann", "auth.login"),
        ("admin-user", "queue.update"),
        ("admin-user", "auth.login"),  # force_login logs in
    ]
    assert csv_rows[1]["object_repr"] == "'=q"  # never a spreadsheet formula
    jsonl = page.get("/manage/audit/", {"download": "jsonl", "actor": "ann"})
    lines = [json.loads(line) for line in b"".join(jsonl.streaming_content).decode().splitlines()]
    assert [line["actor_name"] for line in lines] == ["ann"]
    assert jsonl["Content-Disposition"] == 'attachment; filename="preflab-audit.jsonl"'
    _by(_event("audit.download", changes__format="jsonl"), admin_user)

    api = _admin_api(admin_user)
    body = api.get("/api/v1/audit/", {"actor": "ann"}).json()
    assert body["count"] == 1 and body["results"][0]["action"] == "auth.login"
    download = api.get("/api/v1/audit/", {"download": "csv", "action": "queue.update"})
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert api.get("/api/v1/audit/", {"download": "xml"}).status_code == 400

    for who in (researcher, rater):
        assert _admin_page(who).get("/manage/audit/").status_code == 403
        assert _admin_api(who).get("/api/v1/audit/").status_code == 403
