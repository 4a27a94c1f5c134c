"""A snapshot folder as a zip, streamed: chunks are yielded as they are compressed, never the whole file.

Entries are in the order given, dated 1980-01-01 with mode 0644, so the same folder gives the
same zip bytes. Parquet and gzip files are stored (already compressed); the rest is deflated.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

READ_BLOCK = 1 << 20


class _Sink:
    """A write-only, unseekable stream that hands out what was written so far."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts = []
        return data


def zip_stream(folder: Path, paths: list[str], *, prefix: str) -> Iterator[bytes]:
    """Yield a zip of ``folder/<path>`` for each path, stored as ``<prefix>/<path>``."""
    sink = _Sink()
    with zipfile.ZipFile(cast(Any, sink), mode="w") as archive:
        for relative in paths:
            source = folder / relative
            info = zipfile.ZipInfo(f"{prefix}/{relative}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            stored = relative.endswith((".parquet", ".gz"))
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.file_size = source.stat().st_size
            with source.open("rb") as src, archive.open(info, "w", force_zip64=True) as dest:
                for block in iter(lambda: src.read(READ_BLOCK), b""):
                    dest.write(block)
                    chunk = sink.drain()
                    if chunk:
                        yield chunk
            chunk = sink.drain()
            if chunk:
                yield chunk
    yield sink.drain()
