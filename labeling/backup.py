"""Backup and restore of the whole database: ``manage.py dump_preferences`` / ``load_preferences``.

A dump is one zip file (deflate-compressed):

- ``manifest.json``: the format and its version, when and from which database vendor it was made,
  the migrations applied to that database (per app), and per model, in load order, its member file,
  its row count and the sha256 of the member's bytes;
- ``data/<app>.<model>.jsonl``: every row of that model in Django's JSON Lines serialization, by
  primary key, with its many-to-many links; timestamps keep their microseconds (Django's own JSON
  encoder cuts them to milliseconds).

Every model of every installed app that has a table is in it: users, rubrics, queues, items,
assignments, judgments, prompts, candidates, comparisons, generators, generation jobs, sessions and
turns, reviews, the red-team tables, export runs, the audit log, API keys, login sessions, the
admin history, content types and permissions. Rows keep their primary keys, so everything that
points at them (generic references, the exports' ids and pseudonyms) is the same after a restore.
On PostgreSQL the dump reads one snapshot (``REPEATABLE READ``, read only), so it may run while
the site serves.

A load goes into an **empty** database at the **same migrations**, in one transaction: it checks the
manifest, the sha256 of every member and the migrations before writing anything; refuses a
database holding any row except what ``migrate`` itself writes (content types, permissions and the
seeded harm categories, ``MIGRATE_SEEDED``), which it replaces with the dump's; inserts the rows in
dependency order as raw inserts, a chunk at a time (no ``auto_now`` rewrite, no model signal, so
no receiver acts on them; the append-only audit log only ever sees INSERTs); checks foreign keys and each model's count against
the manifest; and resets PostgreSQL's sequences so new rows continue after the loaded ids. Any
failure rolls the whole load back.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.core import serializers
from django.core.management.color import no_style
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

FORMAT = "preflab-dump"
VERSION = 1
MANIFEST = "manifest.json"
#: Models whose rows ``migrate`` writes into a new database: a load replaces them with the dump's.
MIGRATE_SEEDED = ("contenttypes.contenttype", "auth.permission", "labeling.harmcategory")
#: Rows read from the database per round trip while dumping.
CHUNK = 2000

#: (what is being done, the model's label, rows done, rows in all); called every CHUNK rows.
Progress = Callable[[str, str, int, int], None]


class BackupError(Exception):
    """A dump that cannot be loaded here, or a database that cannot take it; the message says why."""


class ExactJSONEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder with whole microseconds in datetimes and times."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime | datetime.time):
            return o.isoformat()
        return super().default(o)


def label(model: type[models.Model]) -> str:
    return model._meta.label_lower


#: Derived tables, rebuilt from the judgments by the stats fold (``labeling.services.stats_facts``)
#: after a load: left out of backups (about 100 MB per million judgments), and never checked
#: for emptiness (a fold may have run on the new database before the load).
DERIVED = {"labeling.judgmentfact", "labeling.judgmentfactchunk", "labeling.judgmentfactsstate"}


def dumped_models(using: str = DEFAULT_DB_ALIAS) -> list[type[models.Model]]:
    """Every concrete model with a table in the database, parents before the models pointing at
    them, but the derived tables (``DERIVED``)."""
    tables = set(connections[using].introspection.table_names())
    chosen = [
        model
        for model in apps.get_models()
        if model._meta.managed
        and not model._meta.proxy
        and not model._meta.swapped
        and model._meta.db_table in tables
        and label(model) not in DERIVED
    ]
    return _by_dependencies(chosen)


def _by_dependencies(chosen: list[type[models.Model]]) -> list[type[models.Model]]:
    """Each model after the models its foreign keys and many-to-many links point at, otherwise in
    app order. A cycle (none today but a model's key to itself) is broken at the first model met:
    the database checks foreign keys when the load's transaction ends, so order is not what
    makes a load correct, only what makes it readable."""
    remaining = {model: None for model in chosen}
    needs: dict[type[models.Model], set[type[models.Model]]] = {}
    for model in chosen:
        targets = {
            field.remote_field.model._meta.concrete_model
            for field in [*model._meta.fields, *model._meta.many_to_many]
            if field.remote_field is not None and field.remote_field.model is not None
        }
        needs[model] = {t for t in targets if t in remaining and t is not model}
    ordered: list[type[models.Model]] = []
    while remaining:
        ready = [m for m in remaining if not needs[m] & remaining.keys()]
        for model in ready or [next(iter(remaining))]:
            ordered.append(model)
            del remaining[model]
    return ordered


def applied_migrations(using: str = DEFAULT_DB_ALIAS) -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for app_label, name in sorted(MigrationRecorder(connections[using]).applied_migrations()):
        applied.setdefault(app_label, []).append(name)
    return applied


class _HashingWriter(io.RawIOBase):
    """Passes bytes on to ``target`` and hashes them."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        self.target.write(data)
        return len(data)


def _counted(rows: Iterator[models.Model], count: list[int], step: Callable[[int], None]) -> Iterator[Any]:
    for row in rows:
        yield row
        count[0] += 1
        if count[0] % CHUNK == 0:
            step(count[0])


def dump(path: Path, *, using: str = DEFAULT_DB_ALIAS, progress: Progress | None = None) -> dict[str, Any]:
    """Write the whole database to ``path`` (a new file; replaced if it exists). Returns the manifest."""
    connection = connections[using]
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    entries = []
    # One snapshot for every table; only settable when this starts the transaction.
    snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic(using=using):
        if snapshot:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        migrations = applied_migrations(using)
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for model in dumped_models(using):
                name = label(model)
                total = model._base_manager.using(using).count()
                member = f"data/{name}.jsonl"
                count = [0]

                def step(done: int, name: str = name, total: int = total) -> None:
                    _tell(progress, "dump", name, done, total)

                with archive.open(member, "w", force_zip64=True) as raw:
                    hashing = _HashingWriter(raw)
                    text = io.TextIOWrapper(io.BufferedWriter(hashing), encoding="utf-8", newline="\n")
                    rows = model._base_manager.using(using).order_by("pk").iterator(chunk_size=CHUNK)
                    serializers.serialize(
                        "jsonl", _counted(rows, count, step), stream=text, cls=ExactJSONEncoder
                    )
                    text.flush()
                    text.detach()
                _tell(progress, "dump", name, count[0], total)
                entries.append(
                    {"model": name, "file": member, "count": count[0], "sha256": hashing.sha256.hexdigest()}
                )
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "created_at": timezone.now().isoformat(),
                "vendor": connection.vendor,
                "migrations": migrations,
                "models": entries,
            }
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    partial.replace(path)
    return manifest


def _tell(progress: Progress | None, what: str, name: str, done: int, total: int) -> None:
    if progress is not None:
        progress(what, name, done, total)


@dataclass(frozen=True)
class LoadReport:
    manifest: dict[str, Any]
    rows: int


def read_manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except KeyError:
        raise BackupError(f"not a Preflab dump: {MANIFEST} is missing") from None
    except ValueError as exc:
        raise BackupError(f"{MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"not a Preflab dump: {MANIFEST} has no format {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise BackupError(f"dump format version {manifest.get('version')!r}; this code reads {VERSION}")
    entries = manifest.get("models")
    if not isinstance(manifest.get("migrations"), dict) or not isinstance(entries, list):
        raise BackupError(f"{MANIFEST} lacks its migrations or its list of models")
    for entry in entries:
        if not isinstance(entry, dict) or not {"model", "file", "count", "sha256"} <= entry.keys():
            raise BackupError(f"{MANIFEST}: a model entry lacks model, file, count or sha256: {entry!r}")
    return manifest


def verify(archive: zipfile.ZipFile, manifest: dict[str, Any]) -> None:
    """Every member the manifest lists is there with its sha256."""
    for entry in manifest["models"]:
        digest = hashlib.sha256()
        try:
            with archive.open(entry["file"]) as member:
                while block := member.read(1 << 20):
                    digest.update(block)
        except KeyError:
            raise BackupError(f"{entry['file']} is missing from the dump") from None
        if digest.hexdigest() != entry["sha256"]:
            raise BackupError(f"{entry['file']}: sha256 does not match the manifest (the file is damaged)")


def _check_migrations(manifest: dict[str, Any], using: str) -> None:
    here = applied_migrations(using)
    there = manifest["migrations"]
    if here != there:
        apps_differing = sorted(a for a in set(here) | set(there) if here.get(a) != there.get(a))
        details = "; ".join(
            f"{a}: dump {there.get(a, [])[-1:] or ['none']} here {here.get(a, [])[-1:] or ['none']}"
            for a in apps_differing
        )
        raise BackupError(
            "the database is not at the dump's migrations (" + details + "): migrate it to the same "
            "code version as the dumped database (manage.py migrate with that release), then load"
        )


def _check_empty(model_by_label: dict[str, type[models.Model]], using: str) -> None:
    holding = [
        f"{name} ({n} rows)"
        for name, model in model_by_label.items()
        if name not in MIGRATE_SEEDED and (n := model._base_manager.using(using).count())
    ]
    if holding:
        raise BackupError(
            "the database is not empty: "
            + ", ".join(holding[:8])
            + (f" and {len(holding) - 8} more" if len(holding) > 8 else "")
            + ". Load into a new database that only `manage.py migrate` has run on"
            " (or empty this one with `manage.py flush` first)."
        )


def load(path: Path, *, using: str = DEFAULT_DB_ALIAS, progress: Progress | None = None) -> LoadReport:
    """Load a dump into the empty database ``using``; all or nothing. Raises BackupError."""
    from django.contrib.contenttypes.models import ContentType

    connection = connections[using]
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BackupError(f"{path}: cannot read it as a dump ({exc})") from None
    with archive:
        manifest = read_manifest(archive)
        verify(archive, manifest)
        _check_migrations(manifest, using)
        model_by_label: dict[str, type[models.Model]] = {}
        for entry in manifest["models"]:
            try:
                model_by_label[entry["model"]] = apps.get_model(entry["model"])
            except LookupError:
                raise BackupError(f"the dump has {entry['model']}, which this code does not know") from None
        rows = 0
        with transaction.atomic(using=using):
            _check_empty(model_by_label, using)
            # What migrate wrote is replaced by the dump's rows, ids and all (permissions and
            # the admin history go with their content types, both cascading).
            for name in reversed(MIGRATE_SEEDED):
                if name in model_by_label:
                    model_by_label[name]._base_manager.using(using).all().delete()
            ContentType.objects.clear_cache()
            for entry in manifest["models"]:
                rows += _load_model(archive, entry, using, progress)
            connection.check_constraints(
                table_names=[model._meta.db_table for model in model_by_label.values()]
            )
            wrong = [
                f"{entry['model']}: {n} rows, the manifest says {entry['count']}"
                for entry in manifest["models"]
                if (n := model_by_label[entry["model"]]._base_manager.using(using).count()) != entry["count"]
            ]
            if wrong:
                raise BackupError("loaded counts differ from the manifest: " + "; ".join(wrong))
            statements = connection.ops.sequence_reset_sql(no_style(), list(model_by_label.values()))
            with connection.cursor() as cursor:
                for sql in statements:
                    cursor.execute(sql)
    ContentType.objects.clear_cache()
    return LoadReport(manifest=manifest, rows=rows)


def _load_model(
    archive: zipfile.ZipFile, entry: dict[str, Any], using: str, progress: Progress | None
) -> int:
    """Insert one model's rows CHUNK at a time, as stored: a raw insert (``Model.save_base(raw=True)``
    does the same one row at a time) writes each field's value as it is (no ``auto_now``), and no
    model signal is sent (no receiver acts on a restored row). Then the many-to-many links."""
    name, total, done = entry["model"], entry["count"], 0
    model = apps.get_model(name)
    if model._meta.parents:
        raise BackupError(f"{name}: multi-table inheritance is not supported by load_preferences")
    connection = connections[using]
    fields = list(model._meta.local_concrete_fields)
    manager = model._base_manager.using(using)
    batch: list[models.Model] = []
    linked: list[Any] = []

    def insert() -> None:
        size = max(1, connection.ops.bulk_batch_size(fields, batch))
        for start in range(0, len(batch), size):
            manager._insert(batch[start : start + size], fields=fields, raw=True, using=using)
        batch.clear()

    with archive.open(entry["file"]) as member:
        text = io.TextIOWrapper(member, encoding="utf-8")
        for item in serializers.deserialize("jsonl", text, using=using):
            batch.append(item.object)
            if item.m2m_data and any(item.m2m_data.values()):
                linked.append(item)
            done += 1
            if len(batch) >= CHUNK:
                insert()
                _tell(progress, "load", name, done, total)
    insert()
    for item in linked:
        for field_name, targets in (item.m2m_data or {}).items():
            if targets:
                getattr(item.object, field_name).add(*targets)
    _tell(progress, "load", name, done, total)
    return done


def terminal_progress(stream: IO[str]) -> Progress:
    """A progress bar per model on a terminal (redrawn in place); one line per model elsewhere."""
    tty = stream.isatty()
    width = 30

    def show(what: str, name: str, done: int, total: int) -> None:
        finished = done >= total
        if not tty and not finished:
            return
        filled = width if not total else min(width, width * done // total)
        line = f"{what} {name:<40} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        stream.write(("\r" + line + ("\n" if finished else "")) if tty else line + "\n")
        stream.flush()

    return show
