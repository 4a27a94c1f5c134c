"""File writers: rows to JSONL (optionally gzipped) and Parquet, byte for byte the same on every run.

Guarantees:

* JSONL lines are ``json.dumps(row, ensure_ascii=False, separators=(",", ":"))`` plus ``\\n`` in
  UTF-8, keys in the view's column order. Gzip members carry no file name and mtime 0.
* Parquet files are written with pyarrow in record batches of ``BATCH_ROWS`` rows against the
  view's explicit schema (so an all-null column keeps its type); row groups follow the batches,
  so the same rows give the same bytes with the same pyarrow version.
* ``rater_id`` never carries a username: it is a keyed hash of the user id, stable within one
  dataset name and unlinkable across names (see :func:`rater_pseudonym`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

BATCH_ROWS = 10_000

RATER_ID_DOC = "first 16 hex chars of HMAC-SHA256(key = SECRET_KEY + NUL + dataset name, message = user id)"


def rater_pseudonym(*, user_id: int, name: str) -> str:
    """A pseudonymous rater id: stable for one (user, dataset name), unlinkable to the username.

    Keyed with the site's SECRET_KEY and the dataset name, so the same rater gets the same id in
    every snapshot of one dataset, and different ids across datasets.
    """
    key = settings.SECRET_KEY.encode("utf-8") + b"\x00" + name.encode("utf-8")
    return hmac.new(key, str(user_id).encode("ascii"), hashlib.sha256).hexdigest()[:16]


class Pseudonyms:
    """Cached :func:`rater_pseudonym` for one dataset name: one HMAC per rater, not per row."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cache: dict[int, str] = {}

    def __call__(self, user_id: int) -> str:
        value = self._cache.get(user_id)
        if value is None:
            value = self._cache[user_id] = rater_pseudonym(user_id=user_id, name=self.name)
        return value

    @property
    def count(self) -> int:
        return len(self._cache)


def dumps_line(row: dict[str, Any]) -> bytes:
    """One JSONL line, in the one serialization every export uses."""
    return (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class JsonlStream:
    """JSONL rows to an open binary stream, hashing what it writes (for a single-stream export)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.rows = 0

    def write(self, row: dict[str, Any]) -> None:
        line = dumps_line(row)
        self._out.write(line)
        self._hash.update(line)
        self.rows += 1

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


@dataclass
class SplitFiles:
    """The open files of one split."""

    split: str
    jsonl_path: Path | None = None
    parquet_path: Path | None = None
    jsonl: Any = None
    raw: Any = None
    parquet: pq.ParquetWriter | None = None
    batch: list[dict[str, Any]] = field(default_factory=list)  # rows not yet in ``pending``
    pending: list[pa.Table] = field(default_factory=list)  # Arrow rows not yet written
    pending_rows: int = 0
    rows: int = 0


class SnapshotWriter:
    """Rows of one view into ``folder/data/<split>.jsonl[.gz]`` and ``folder/data/<split>.parquet``.

    Files of a split are opened on its first row (``train`` always exists, even empty).
    :meth:`close` flushes and returns the written files, sorted by path, each with split, kind,
    rows, bytes and sha256.
    """

    def __init__(self, folder: Path, *, schema: pa.Schema, kinds: list[str], gzip_jsonl: bool) -> None:
        self.folder = folder
        self.schema = schema
        self.kinds = kinds
        self.gzip_jsonl = gzip_jsonl
        self.splits: dict[str, SplitFiles] = {}
        (folder / "data").mkdir(parents=True, exist_ok=True)
        self._open("train")

    def _open(self, split: str) -> SplitFiles:
        files = SplitFiles(split)
        data = self.folder / "data"
        if "jsonl" in self.kinds:
            files.jsonl_path = data / (f"{split}.jsonl.gz" if self.gzip_jsonl else f"{split}.jsonl")
            files.raw = files.jsonl_path.open("wb")
            files.jsonl = (
                gzip.GzipFile(filename="", mode="wb", fileobj=files.raw, mtime=0)
                if self.gzip_jsonl
                else files.raw
            )
        if "parquet" in self.kinds:
            files.parquet_path = data / f"{split}.parquet"
            files.parquet = pq.ParquetWriter(files.parquet_path, self.schema, compression="zstd")
        self.splits[split] = files
        return files

    def write(self, split: str, row: dict[str, Any]) -> None:
        files = self.splits.get(split) or self._open(split)
        if files.jsonl is not None:
            files.jsonl.write(dumps_line(row))
        if files.parquet is not None:
            files.batch.append(row)
            if files.pending_rows + len(files.batch) >= BATCH_ROWS:
                self._flush(files)
        files.rows += 1

    def write_table(self, split: str, table: pa.Table) -> None:
        """Rows already in Arrow form (the view's schema), in order after those written before.

        The files come out byte for byte as if each row had gone through :meth:`write`: JSONL
        lines from the same ``dumps_line``, and Parquet row groups of ``BATCH_ROWS`` rows.
        """
        if not table.num_rows:
            return
        files = self.splits.get(split) or self._open(split)
        if files.jsonl is not None:
            for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                files.jsonl.write(b"".join(dumps_line(row) for row in batch.to_pylist()))
        if files.parquet is not None:
            self._batch_to_pending(files)
            files.pending.append(table)
            files.pending_rows += table.num_rows
            if files.pending_rows >= BATCH_ROWS:
                self._flush(files)
        files.rows += table.num_rows

    def _batch_to_pending(self, files: SplitFiles) -> None:
        if files.batch:
            files.pending.append(pa.Table.from_pylist(files.batch, schema=self.schema))
            files.pending_rows += len(files.batch)
            files.batch = []

    def _flush(self, files: SplitFiles, *, final: bool = False) -> None:
        """Write every whole BATCH_ROWS-row group pending (and, when ``final``, the rest) as one batch each."""
        if files.parquet is None:
            return
        self._batch_to_pending(files)
        if not files.pending_rows:
            return
        table = pa.concat_tables(files.pending) if len(files.pending) > 1 else files.pending[0]
        start = 0
        while files.pending_rows - start >= BATCH_ROWS or (final and start < files.pending_rows):
            size = min(BATCH_ROWS, files.pending_rows - start)
            files.parquet.write_batch(table.slice(start, size).combine_chunks().to_batches()[0])
            start += size
        rest = table.slice(start)
        files.pending = [rest] if rest.num_rows else []
        files.pending_rows = rest.num_rows

    def close(self) -> list[dict[str, Any]]:
        out = []
        for files in self.splits.values():
            self._flush(files, final=True)
            if files.parquet is not None:
                files.parquet.close()
            if files.jsonl is not None:
                files.jsonl.close()
            if files.raw is not None and files.raw is not files.jsonl:
                files.raw.close()
            for kind, path in (("jsonl", files.jsonl_path), ("parquet", files.parquet_path)):
                if path is not None:
                    out.append(
                        {
                            "path": path.relative_to(self.folder).as_posix(),
                            "split": files.split,
                            "kind": kind,
                            "rows": files.rows,
                            "bytes": path.stat().st_size,
                            "sha256": file_sha256(path),
                        }
                    )
        return sorted(out, key=lambda f: f["path"])

    def abort(self) -> None:
        # Closing after a failure: the caller removes the folder next, so close errors don't matter.
        for files in self.splits.values():
            for handle in (files.parquet, files.jsonl, files.raw):
                if handle is not None:
                    with contextlib.suppress(OSError, ValueError, pa.ArrowException):
                        handle.close()
