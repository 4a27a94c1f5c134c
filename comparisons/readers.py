"""An import's file, in any format, read as numbered rows of named fields. Pure: no database access.

Formats: ``jsonl`` (one JSON object a line; also gzip-compressed), ``csv`` (a header line, then
one row a line or more; also gzip-compressed), ``parquet``, ``arrow`` (an Arrow IPC stream or
file, such as a data file of a saved Hugging Face ``datasets`` folder) and ``dataset`` (a folder
saved by ``datasets``' ``save_to_disk``, or a zip of one). Every format is read in batches or
chunks, never whole, and comes out the same: (line number, {field: value}) with the column
mapping applied, each value checked for depth and control characters, the error naming the
file's own column. Lines of JSONL and CSV are counted as in the file; rows of the columnar
formats from 1 (the messages say ``row``).

The fields a line may hold depend on what is imported (:data:`FIELDS`); ``columns`` maps a field
to the file's column that holds it (``{"prompt": "question", "text": "answer"}``); a field not
mapped is read from the column of its own name. pyarrow is imported only to read columnar files.
"""

from __future__ import annotations

import csv
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import Any

from . import importing
from .dataset_folders import columnar_batches, columnar_rows_total
from .import_errors import ErrorCollector, InvalidField, LineError, file_error, shown_value, shown_values
from .textchecks import printable, text_problem, value_problems

FORMATS = ("jsonl", "csv", "parquet", "arrow", "dataset")
KINDS = ("prompts", "candidates", "preferences")
#: The fields each kind of import reads from a line.
FIELDS: dict[str, tuple[str, ...]] = {
    "prompts": ("id", "messages", "prompt", "tags"),
    "candidates": ("prompt_id", "messages", "prompt", "text", "generator", "sample_index", "metadata"),
    "preferences": ("id", "prompt", "chosen", "rejected", "tags"),
}
#: Where a preference line keeps the columns it does not read (scalars only): ``metadata``.
EXTRA = "_extra"
MAX_EXTRA_TEXT = 1000
MAX_COLUMN_NAME = 200
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".zip": "dataset",
}
_MEDIA_TYPES = {
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/vnd.apache.arrow.stream": "arrow",
    "application/vnd.apache.arrow.file": "arrow",
    "application/zip": "dataset",
}
_PROGRESS_EVERY = 2000
_GZIP_MAGIC = b"\x1f\x8b"
_DIGITS = re.compile(r"\d{1,10}")


def format_clean(value: Any, *, name: str = "", media_type: str = "") -> str:
    """The format asked for, or the one the file's name (``.csv``, ``.jsonl.gz``, ``.zip``...) or
    the body's media type says; ``jsonl`` when nothing says. InvalidField("format") otherwise."""
    if value in (None, ""):
        suffixes = [s.lower() for s in PurePosixPath(name or "").suffixes]
        if suffixes and suffixes[-1] == ".gz":
            suffixes.pop()
        by_name = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
        return by_name or _MEDIA_TYPES.get(media_type.split(";")[0].strip().lower(), "jsonl")
    if not isinstance(value, str) or value.strip().lower() not in FORMATS:
        raise InvalidField("format", f"must be one of {', '.join(FORMATS)} (got {shown_value(value)})")
    return value.strip().lower()


def columns_clean(value: Any, *, kind: str) -> dict[str, str]:
    """A column mapping: a JSON object or ``field=column`` pairs separated by commas (a form, the
    command line). Keys must be fields of ``kind`` (InvalidField ``columns.<key>`` otherwise)."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = importing.loads(text)
            except InvalidField as exc:
                raise InvalidField("columns", exc.reason)
        else:
            value = {}
            for pair in filter(None, (p.strip() for p in text.split(","))):
                key, sep, column = pair.partition("=")
                if not sep:
                    raise InvalidField("columns", f"write each as field=column (got {shown_value(pair)})")
                value[key.strip()] = column.strip()
    if not isinstance(value, dict):
        raise InvalidField("columns", "must be an object of field: column")
    fields = FIELDS[kind]
    mapping: dict[str, str] = {}
    for key, column in value.items():
        if key not in fields:
            raise InvalidField(f"columns.{key}", f"not a field of {kind} imports; one of {', '.join(fields)}")
        if not isinstance(column, str) or not column.strip():
            raise InvalidField(f"columns.{key}", "must name a column")
        if (problem := text_problem(column)) is not None or len(column) > MAX_COLUMN_NAME:
            raise InvalidField(f"columns.{key}", problem or f"longer than {MAX_COLUMN_NAME} characters")
        mapping[key] = column.strip()
    return mapping


class RowReader:
    """Reads ``data`` (a path, an uploaded file, an open binary file, or byte chunks) in ``format``
    as (line number, {field: value}) for an import of ``kind``.

    Problems of a line go to the collector given to :meth:`rows` and the line is skipped; problems
    of the file as a whole raise ImportFailed at once. ``on_progress(n)`` is called now and then
    with the number of lines (rows) read so far.
    """

    def __init__(
        self,
        data: Any,
        *,
        kind: str,
        format: str = "jsonl",
        columns: dict[str, str] | None = None,
        split: str | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.data = data
        self.kind = kind
        self.format = format
        self.fields = FIELDS[kind]
        self.columns = {field: (columns or {}).get(field, field) for field in self.fields}
        self.split = split
        self.on_progress = on_progress
        self.unit = "line" if format in ("jsonl", "csv") else "row"

    def rename(self, field: str | None) -> str | None:
        """A field path as the file names it: ``messages[1].role`` -> ``conversation[1].role``."""
        if not field:
            return field
        root = re.split(r"[.\[]", field, maxsplit=1)[0]
        column = self.columns.get(root, root)
        return column + field[len(root) :] if column != root else field

    @property
    def empty_message(self) -> str:
        return "has no JSON lines to import" if self.format == "jsonl" else f"has no {self.unit}s to import"

    def rows(self, errors: ErrorCollector) -> Iterator[tuple[int, Any]]:
        errors.unit = self.unit
        with ExitStack() as stack:
            if self.format in ("jsonl", "csv"):
                chunks = _gunzipped(_chunks(self.data, stack))
                raw = (
                    importing.read_jsonl(chunks, errors)
                    if self.format == "jsonl"
                    else _csv_rows(chunks, errors, on_header=self.check_columns)
                )
            else:
                raw = _tabular(
                    columnar_batches(self.data, self.format, stack, wanted=self._wanted, split=self.split)
                )
            for done, (line_no, value) in enumerate(raw, 1):
                if self.on_progress is not None and done % _PROGRESS_EVERY == 0:
                    self.on_progress(line_no)
                row = self._project(line_no, value, errors)
                if row is not None:
                    yield line_no, row

    def total(self) -> int | None:
        """How many lines (rows) the file holds, for progress; None when it cannot be told cheaply."""
        if not isinstance(self.data, str | Path):
            return None
        with ExitStack() as stack:
            if self.format in ("jsonl", "csv"):
                lines = 0
                last = b"\n"
                for chunk in _gunzipped(_chunks(self.data, stack)):
                    data = chunk.encode() if isinstance(chunk, str) else chunk
                    if data:
                        lines += data.count(b"\n")
                        last = data[-1:]
                return lines + (last != b"\n")
            return columnar_rows_total(self.data, self.format, stack, split=self.split)

    def _wanted(self, names: list[str], scalar: set[str]) -> list[str]:
        """The columns to read of a table with these column names (``scalar``: of a scalar type)."""
        self.check_columns(names)
        wanted = [c for c in names if c in self.columns.values()]
        if self.kind == "preferences":
            wanted += [c for c in names if c in scalar and c not in wanted]
        return wanted

    def _project(self, line_no: int, value: Any, errors: ErrorCollector) -> Any:
        """The line's fields by name (the mapping applied, tabular text decoded), or None when the
        line is refused."""
        if not isinstance(value, dict):
            return value  # the record parser says "each line must be a JSON object"
        tabular = self.format != "jsonl"
        row: dict[str, Any] = {}
        try:
            for field, column in self.columns.items():
                if column not in value or (tabular and value[column] is None):
                    continue
                item = value[column]
                if tabular:
                    try:
                        item = _decode_cell(field, item)
                    except InvalidField as exc:
                        raise InvalidField(column, exc.reason)
                    # The line is level 0, as in a JSONL line (read_jsonl checked those whole).
                    if (problem := next(value_problems(item, column, 1), None)) is not None:
                        raise InvalidField(*problem)
                row[field] = item
            if self.kind == "preferences":
                row[EXTRA] = _extras(value, used=set(self.columns.values()))
        except InvalidField as exc:  # its field names the file's column already
            errors.add(line_no, LineError(line_no, exc.field, exc.reason, self.unit))
            return None
        return row

    def check_columns(self, names: list[str]) -> None:
        """A file-wide error when a table's columns include none of the fields' columns."""
        if not set(names) & set(self.columns.values()):
            wanted = sorted(set(self.columns.values()))
            raise file_error(
                f"has none of the columns {shown_values(wanted)} (its columns: {shown_values(names)}); "
                "name the ones to read with columns"
            )


def _decode_cell(field: str, value: Any) -> Any:
    """A table cell as the field takes it: JSON text for ``messages``/``metadata``; ``tags`` as a
    JSON list or comma-separated; ``sample_index`` from its digits. Other values are as read."""
    if not isinstance(value, str):
        return value
    if field in ("messages", "metadata") or (field == "tags" and value.lstrip().startswith("[")):
        try:
            return importing.loads(value)
        except InvalidField as exc:
            raise InvalidField(field, exc.reason)
    if field == "tags":
        return [t for t in value.split(",") if t.strip()]
    if field == "sample_index" and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    return value


def _extras(value: dict[str, Any], *, used: set[str]) -> dict[str, Any]:
    """The scalar columns a preference line does not read, kept as its metadata (texts up to
    MAX_EXTRA_TEXT characters; lists, objects, longer texts and non-finite numbers are left out)."""
    extras: dict[str, Any] = {}
    for key, item in value.items():
        if key in used or item is None or isinstance(item, dict | list):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            continue
        if isinstance(item, str):
            if len(item) > MAX_EXTRA_TEXT:
                continue
            if (problem := text_problem(item) or text_problem(key)) is not None:
                raise InvalidField(printable(key), problem)
        elif not isinstance(item, bool | int | float):
            continue
        extras[key] = item
    return extras


def _chunks(data: Any, stack: ExitStack) -> Iterable[bytes | str]:
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.is_file():
            raise file_error(f"{path.name or path}: not a file")
        return importing.iter_chunks(stack.enter_context(path.open("rb")))
    if hasattr(data, "chunks") or hasattr(data, "read"):
        return importing.iter_chunks(data)
    return data


def _gunzipped(chunks: Iterable[bytes | str]) -> Iterator[bytes | str]:
    """The chunks as they are, or decompressed when they start as a gzip file does. The compressed
    file counts against MAX_FILE_BYTES, what it holds against MAX_UNPACKED_BYTES (line reading)."""
    iterator = iter(chunks)
    first = next(iterator, b"")
    if not (isinstance(first, bytes | bytearray) and bytes(first[:2]) == _GZIP_MAGIC):
        yield first
        yield from iterator
        return
    limit = importing.MAX_FILE_BYTES
    decompressor = zlib.decompressobj(wbits=31)
    fed = False  # whether the current gzip member has begun
    read = 0
    try:
        for chunk in _chain(first, iterator):
            data = bytes(chunk) if not isinstance(chunk, str) else chunk.encode()
            read += len(data)
            if read > limit:
                raise file_error(f"larger than the {importing.size_text(limit)} limit")
            while data:
                fed = True
                yield decompressor.decompress(data, importing.READ_CHUNK_BYTES * 4)
                data = decompressor.unconsumed_tail
                if decompressor.eof:  # a file of several gzip members: the next one starts here
                    data = decompressor.unused_data + data
                    decompressor = zlib.decompressobj(wbits=31)
                    fed = False
        yield decompressor.flush()
    except zlib.error as exc:
        raise file_error(f"not a valid gzip file ({exc})")
    if fed and not decompressor.eof:
        raise file_error("not a complete gzip file: it ends early")


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _csv_rows(
    chunks: Iterable[bytes | str], errors: ErrorCollector, *, on_header: Callable[[list[str]], None]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(first line of the row, {column: text or None}) for each row after the header.

    A row may span lines (a quoted cell with line breaks); an empty cell is None (missing).
    """
    limit = max(importing.MAX_LINE_BYTES, 1)
    if csv.field_size_limit() < limit:  # the module's limit (128 KB) is below a line's
        csv.field_size_limit(limit)
    state = {"line": 0}

    def lines() -> Iterator[str]:
        for line_no, raw in importing.split_lines(chunks, limit=importing.MAX_UNPACKED_BYTES, keep_ends=True):
            state["line"] = line_no
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                errors.add(line_no, LineError(line_no, None, f"not valid UTF-8 (byte {exc.start + 1})"))
                text = raw.decode("utf-8", errors="replace")
            yield text.removeprefix("\ufeff") if line_no == 1 else text

    reader = csv.reader(lines(), strict=True)
    header: list[str] | None = None
    start = 1
    try:
        for cells in reader:
            line_no, start = start, reader.line_num + 1
            if not cells or cells == [""]:
                continue
            if header is None:
                header = [c.strip() for c in cells]
                duplicates = sorted({c for c in header if header.count(c) > 1})
                if duplicates:
                    raise file_error(f"the header names a column twice: {shown_values(duplicates)}")
                on_header(header)
                continue
            if len(cells) > len(header):
                errors.add(
                    line_no, LineError(line_no, None, f"has {len(cells)} cells; the header has {len(header)}")
                )
                continue
            yield (
                line_no,
                {name: (cell if cell != "" else None) for name, cell in zip(header, cells, strict=False)},
            )
    except csv.Error as exc:
        errors.add(state["line"], LineError(state["line"], None, f"not valid CSV ({exc})"))
        errors.raise_if_any()
    if header is None:
        raise file_error("has no header line (the column names)")


def _tabular(batches: Iterator[list[dict[str, Any]]]) -> Iterator[tuple[int, dict[str, Any]]]:
    row_no = 0
    for batch in batches:
        for row in batch:
            row_no += 1
            yield row_no, row
