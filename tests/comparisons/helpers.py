from __future__ import annotations

import json
from typing import Any


def jsonl(*rows: Any) -> bytes:
    """Rows as JSONL bytes; a str row is written as is (for broken lines)."""
    return b"".join((row if isinstance(row, str) else json.dumps(row)).encode() + b"\n" for row in rows)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def csv_bytes(header: list[str], *rows: list[Any]) -> bytes:
    """A CSV file (header first), quoted as Python's csv module writes it."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def parquet_bytes(columns: dict[str, list[Any]], *, row_group_size: int | None = None) -> bytes:
    """A Parquet file of these columns (pyarrow infers the types: lists of dicts become structs)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table(columns), out, row_group_size=row_group_size)
    return out.getvalue()


def arrow_stream_bytes(columns: dict[str, list[Any]]) -> bytes:
    """An Arrow IPC stream of these columns, as ``datasets`` writes its data files."""
    import io

    import pyarrow as pa

    table = pa.table(columns)
    out = io.BytesIO()
    with pa.ipc.new_stream(out, table.schema) as writer:
        writer.write_table(table, max_chunksize=2)
    return out.getvalue()
