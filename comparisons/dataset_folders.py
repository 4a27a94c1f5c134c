"""Columnar import files, read in batches: Parquet, Arrow IPC, and folders saved by ``datasets``.

A folder saved by Hugging Face ``datasets`` (``Dataset.save_to_disk``) holds ``state.json``
(its data files, in order), ``dataset_info.json`` and the data files themselves, Arrow IPC
streams named ``data-0000x-of-0000y.arrow``; a ``DatasetDict`` folder holds ``dataset_dict.json``
(its splits) and one such folder per split. Both are read here with pyarrow alone (the
``datasets`` library is never imported): from a folder on disk (the command line) or from a zip
of it (an upload). Rows come out as lists of dicts, a batch at a time.

The file (or a zip) counts against MAX_FILE_BYTES; the data it holds once read (Parquet
decompressed, the Arrow data of a folder or zip) against MAX_UNPACKED_BYTES.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from . import importing
from .import_errors import InvalidField, file_error, shown_value, shown_values

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 1000
#: Decides which columns to read: (the table's column names, those of a scalar type) -> names.
Wanted = Callable[[list[str], set[str]], list[str]]


def columnar_batches(
    data: Any, format: str, stack: ExitStack, *, wanted: Wanted, split: str | None = None
) -> Iterator[list[dict[str, Any]]]:
    """The rows of a ``parquet``, ``arrow`` or ``dataset`` file, a batch at a time, with the
    columns ``wanted`` picks. ImportFailed names the file's problem (not that format, a column
    missing, too big)."""
    unpacked = 0
    for batch in _record_batches(data, format, stack, split=split, wanted=wanted):
        unpacked += batch.nbytes
        if unpacked > importing.MAX_UNPACKED_BYTES:
            limit = importing.size_text(importing.MAX_UNPACKED_BYTES)
            raise file_error(f"holds more than {limit} of data once read; split it")
        yield batch.to_pylist()


def columnar_rows_total(data: Any, format: str, stack: ExitStack, *, split: str | None = None) -> int:
    """How many rows the file holds (Parquet: from its footer; Arrow: counted batch by batch)."""
    import pyarrow.parquet as pq

    if format == "parquet":
        return int(pq.ParquetFile(_seekable(data, stack)).metadata.num_rows)
    return sum(len(batch) for batch in _record_batches(data, format, stack, split=split, wanted=None))


def _record_batches(
    data: Any, format: str, stack: ExitStack, *, split: str | None, wanted: Wanted | None
) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if format == "parquet":
            parquet = pq.ParquetFile(_seekable(data, stack))
            columns = _columns(parquet.schema_arrow, wanted)
            yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)
        elif format == "arrow":
            yield from _arrow_batches(_seekable(data, stack), wanted)
        else:
            folder = _folder(data, stack)
            for name in folder.data_files(split):
                with folder.open(name) as handle:
                    yield from _arrow_batches(handle, wanted, name=name)
    except (pa.ArrowException, OSError, zipfile.BadZipFile) as exc:
        what = {"parquet": "a Parquet file", "arrow": "an Arrow IPC file"}.get(format, "a saved dataset")
        raise file_error(f"could not be read as {what} ({exc})")


def _columns(schema: pa.Schema, wanted: Wanted | None) -> list[str] | None:
    import pyarrow as pa

    if wanted is None:
        return None
    scalar = {
        f.name
        for f in schema
        if pa.types.is_string(f.type)
        or pa.types.is_large_string(f.type)
        or pa.types.is_integer(f.type)
        or pa.types.is_floating(f.type)
        or pa.types.is_boolean(f.type)
    }
    names = list(schema.names)
    columns = wanted(names, scalar)
    if not columns:
        raise file_error(f"has none of the columns this import reads (its columns: {shown_values(names)})")
    return columns


def _arrow_batches(source: Any, wanted: Wanted | None, *, name: str = "") -> Iterator[pa.RecordBatch]:
    """An Arrow IPC stream (as ``datasets`` writes) or, when seekable, an Arrow IPC file."""
    import pyarrow as pa

    try:
        reader: Any = pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        if not (hasattr(source, "seek") and getattr(source, "seekable", lambda: True)()):
            raise
        source.seek(0)
        reader = pa.ipc.open_file(source)
        columns = _columns(reader.schema, wanted)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            yield batch.select(columns) if columns is not None else batch
        return
    columns = _columns(reader.schema, wanted)
    for batch in reader:
        yield batch.select(columns) if columns is not None else batch


def _seekable(data: Any, stack: ExitStack, *, mapped: bool = True) -> Any:
    """A seekable binary file for ``data``: a path (memory-mapped when ``mapped``), an uploaded or
    open file, or byte chunks (a request body, spooled to a temporary file)."""
    import pyarrow as pa

    if isinstance(data, str | Path):
        path = Path(data)
        if not path.is_file():
            raise file_error(f"{path.name or path}: not a file")
        if path.stat().st_size > importing.MAX_FILE_BYTES:
            raise file_error(f"larger than the {importing.size_text(importing.MAX_FILE_BYTES)} limit")
        return stack.enter_context(pa.memory_map(str(path)) if mapped else path.open("rb"))
    handle = getattr(data, "file", data)  # Django's UploadedFile wraps the real file
    if hasattr(handle, "seek") and hasattr(handle, "read") and getattr(handle, "seekable", lambda: False)():
        handle.seek(0)
        return handle
    spool: IO[bytes] = stack.enter_context(tempfile.TemporaryFile())
    total = 0
    for chunk in importing.iter_chunks(data) if hasattr(data, "read") or hasattr(data, "chunks") else data:
        total += len(chunk)
        if total > importing.MAX_FILE_BYTES:
            raise file_error(f"larger than the {importing.size_text(importing.MAX_FILE_BYTES)} limit")
        spool.write(chunk)
    spool.seek(0)
    return spool


class _Folder:
    """A saved dataset's files: a folder on disk, or a zip of one (``root``: the folder's path in it)."""

    def __init__(self, *, path: Path | None = None, archive: zipfile.ZipFile | None = None) -> None:
        self.path = path
        self.archive = archive
        self.root = PurePosixPath("")
        if archive is not None:
            self._check_archive(archive)
            self.root = self._archive_root(archive)

    def exists(self, name: str) -> bool:
        if self.archive is not None:
            return str(self.root / name) in self.archive.NameToInfo
        return self.path is not None and (self.path / name).is_file()

    def read_json(self, name: str) -> dict[str, Any]:
        try:
            with self.open(name) as handle:
                value = importing.loads(bytes(handle.read()).decode("utf-8"))
        except (InvalidField, UnicodeDecodeError) as exc:
            raise file_error(f"{name}: not valid JSON ({getattr(exc, 'reason', exc)})")
        if not isinstance(value, dict):
            raise file_error(f"{name}: not a JSON object")
        return value

    def open(self, name: str) -> Any:
        """The file, to use in a ``with``: a member of the zip, or a memory map of the file."""
        import pyarrow as pa

        if self.archive is not None:
            return self.archive.open(str(self.root / name))
        assert self.path is not None
        return pa.memory_map(str(self.path / name))

    def data_files(self, split: str | None) -> list[str]:
        """The Arrow files of the dataset (of ``split``, for a folder of several), in order."""
        prefix = ""
        if self.exists("dataset_dict.json"):
            splits = self.read_json("dataset_dict.json").get("splits") or []
            if split is None and len(splits) == 1:
                split = splits[0]
            if split not in splits:
                given = "" if split is None else f" ({shown_value(split)} is not one)"
                raise file_error(
                    f"the dataset has the splits {shown_values(splits)}: give one{given}", field="split"
                )
            prefix = f"{split}/"
        elif split:
            raise file_error("the dataset has no splits (no dataset_dict.json)", field="split")
        if not self.exists(f"{prefix}state.json"):
            raise file_error("not a folder saved by datasets: it has no state.json or dataset_dict.json")
        state = self.read_json(f"{prefix}state.json")
        names: list[str] = []
        for entry in state.get("_data_files") or []:
            name = entry.get("filename") if isinstance(entry, dict) else None
            if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
                raise file_error(f"state.json names an odd data file: {shown_value(name)}")
            if not self.exists(prefix + name):
                raise file_error(f"state.json names {shown_value(name)}, which the folder lacks")
            names.append(name)
        if self.path is not None:
            unpacked = sum((self.path / prefix / name).stat().st_size for name in names)
            if unpacked > importing.MAX_UNPACKED_BYTES:
                raise file_error(
                    f"holds more than {importing.size_text(importing.MAX_UNPACKED_BYTES)} of data"
                )
        return [prefix + name for name in names]

    @staticmethod
    def _check_archive(archive: zipfile.ZipFile) -> None:
        unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > importing.MAX_UNPACKED_BYTES:
            raise file_error(
                f"the zip holds more than {importing.size_text(importing.MAX_UNPACKED_BYTES)} once unpacked"
            )

    @staticmethod
    def _archive_root(archive: zipfile.ZipFile) -> PurePosixPath:
        """The shallowest folder in the zip holding ``dataset_dict.json`` or ``state.json``."""
        markers = [
            PurePosixPath(name)
            for name in archive.namelist()
            if PurePosixPath(name).name in ("dataset_dict.json", "state.json")
        ]
        if not markers:
            raise file_error("the zip holds no folder saved by datasets (no state.json or dataset_dict.json)")
        return min(markers, key=lambda p: (len(p.parts), str(p))).parent


def _folder(data: Any, stack: ExitStack) -> _Folder:
    if isinstance(data, str | Path) and Path(data).is_dir():
        return _Folder(path=Path(data))
    source = _seekable(data, stack, mapped=False)
    return _Folder(archive=stack.enter_context(zipfile.ZipFile(source)))
