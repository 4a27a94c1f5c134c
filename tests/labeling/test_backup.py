"""manage.py dump_preferences / load_preferences: a database emptied and restored from a dump holds
the same rows (ids, timestamps to the microsecond, links), and an export made after the round trip
is byte-identical to the one made before; refusals (a database that is not empty, a damaged file,
other migrations) write nothing."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from export.models import ExportRun
from export.services import export_run_create, export_run_execute
from labeling import backup
from labeling.audit import audit_record
from labeling.models import AuditEvent, User
from model_runner.models import GenerationJob
from tests.export.conftest import export_data  # noqa: F401  (the fixture: judgments of every kind)
from tests.factories import AttackFactory, GenerationJobFactory, ReviewerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _every_row() -> dict[str, list[dict]]:
    """Each table's rows by primary key; many-to-many link tables without their own ids."""
    rows: dict[str, list[dict]] = {}
    for model in backup.dumped_models():
        rows[backup.label(model)] = list(model._base_manager.order_by("pk").values())
        for field in model._meta.local_many_to_many:
            through = field.remote_field.through
            if through._meta.auto_created:
                values = through._base_manager.values(
                    *(f.attname for f in through._meta.fields if not f.primary_key)
                )
                rows[through._meta.label_lower] = sorted(values, key=lambda r: sorted(r.items()))
    return rows


def _export(researcher: User) -> dict[str, str]:
    """{file path: sha256} of a fresh export named "snap", computed from the bytes on disk."""
    run = export_run_create(created_by=researcher, name="snap", enqueue=False)
    export_run_execute(export_run=run)
    run.refresh_from_db()
    assert run.status == ExportRun.Status.SUCCEEDED, run.error
    folder = Path(settings.PREFLAB_EXPORT_ROOT) / run.file_path
    files = {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    assert files and {f["path"] for f in run.files} <= set(files)
    return files


@pytest.fixture
def full_database(export_data, researcher):  # noqa: F811
    """The export fixture's judgments, plus red-team attacks, a reviewer, generation jobs and audit
    events (the append-only table)."""
    AttackFactory.create_batch(2)
    ReviewerFactory()
    GenerationJobFactory(status=GenerationJob.Status.SUCCEEDED, completion_tokens=40, generation_seconds=1.25)
    audit_record("test.event", actor=researcher, changes={"why": "backup test"})
    return export_data


def test_round_trip_restores_every_row_and_the_same_export(full_database, researcher, tmp_path):
    before_export = _export(researcher)
    before = _every_row()
    assert len(before["labeling.judgment"]) >= 7 and before["labeling.auditevent"]
    path = tmp_path / "backup.zip"
    call_command("dump_preferences", str(path), verbosity=0)

    manifest = json.loads(zipfile.ZipFile(path).read("manifest.json"))
    counts = {entry["model"]: entry["count"] for entry in manifest["models"]}
    assert counts["labeling.judgment"] == len(before["labeling.judgment"])
    assert counts["export.exportrun"] == 1
    # Every model with a table, each once, in an order that loads (users before queues, ...).
    order = [entry["model"] for entry in manifest["models"]]
    assert sorted(order) == sorted(backup.label(m) for m in backup.dumped_models())
    assert (
        order.index("labeling.user") < order.index("labeling.assignment") < order.index("labeling.judgment")
    )
    assert order.index("comparisons.prompt") < order.index("comparisons.candidate")

    call_command("flush", interactive=False, verbosity=0)
    assert not User.objects.exists() and not AuditEvent.objects.exists()
    call_command("load_preferences", str(path), verbosity=0)

    after = _every_row()
    # A dump of the restored database is the same, file for file.
    again = tmp_path / "again.zip"
    call_command("dump_preferences", str(again), verbosity=0)
    assert json.loads(zipfile.ZipFile(again).read("manifest.json"))["models"] == manifest["models"]
    assert after.keys() == before.keys()
    for name in before:
        assert after[name] == before[name], name
    # New rows continue after the loaded ids (PostgreSQL's sequences were reset).
    researcher = User.objects.get(username=researcher.username)
    after_export = _export(researcher)
    assert ExportRun.objects.count() == 2
    assert after_export == before_export


def test_load_refuses_a_database_that_is_not_empty(full_database, tmp_path):
    path = tmp_path / "backup.zip"
    call_command("dump_preferences", str(path), verbosity=0)
    judgments = full_database.queue.items.count()
    with pytest.raises(CommandError, match=r"the database is not empty: .*labeling\.user \(\d+ rows\)"):
        call_command("load_preferences", str(path), verbosity=0)
    assert full_database.queue.items.count() == judgments


def test_load_refuses_a_damaged_file_and_writes_nothing(full_database, tmp_path):
    path = tmp_path / "backup.zip"
    call_command("dump_preferences", str(path), verbosity=0)
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(damaged, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "data/labeling.judgment.jsonl":
                data = data.replace(b'"preference": -3', b'"preference": 3')
            target.writestr(info, data)
    call_command("flush", interactive=False, verbosity=0)
    with pytest.raises(CommandError, match=r"data/labeling\.judgment\.jsonl: sha256 does not match"):
        call_command("load_preferences", str(damaged), verbosity=0)
    assert not User.objects.exists()


def test_load_refuses_other_migrations(tmp_path, db):
    path = tmp_path / "backup.zip"
    call_command("dump_preferences", str(path), verbosity=0)
    with zipfile.ZipFile(path) as source:
        manifest = json.loads(source.read("manifest.json"))
        manifest["migrations"]["labeling"].append("9999_from_the_future")
        other = tmp_path / "other.zip"
        with zipfile.ZipFile(other, "w") as target:
            for info in source.infolist():
                data = (
                    source.read(info) if info.filename != "manifest.json" else json.dumps(manifest).encode()
                )
                target.writestr(info, data)
    with pytest.raises(CommandError, match=r"not at the dump's migrations \(labeling: dump \['9999_from"):
        call_command("load_preferences", str(other), verbosity=0)


def test_the_append_only_audit_log_is_still_guarded_after_a_load(full_database, tmp_path):
    path = tmp_path / "backup.zip"
    call_command("dump_preferences", str(path), verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    call_command("load_preferences", str(path), verbosity=0)
    from django.db import DatabaseError, transaction

    event = AuditEvent.objects.first()
    assert event is not None
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="changed")
    assert connection.vendor in {"sqlite", "postgresql"}
    assert apps.get_model("labeling", "auditevent") is AuditEvent
