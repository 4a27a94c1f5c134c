"""The single-stream TRL export (``manage.py export_preferences``): raw TRL preference rows, no
splits and no card, written to one binary stream or, all or nothing, to one file.

The rows are those of a raw ``trl`` snapshot (the record path, the same view and pseudonyms);
the manifest has the same ``skipped``, margin mapping and rater id rules as a snapshot's.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.utils import timezone

from export.formats.base import MARGIN_MAPPING_DOC
from export.selectors.record_groups import GroupStats, export_record_groups
from export.services.snapshot import _build_view, _skipped, code_version
from export.spec import export_spec_clean
from export.writers import RATER_ID_DOC, JsonlStream, Pseudonyms


def export_preferences_write(
    *, out: BinaryIO, filters: Any, name: str, created_at: datetime | None = None
) -> dict[str, Any]:
    """Write the TRL preference rows (raw, no splits) to the binary stream ``out``; return the manifest.

    Rows are ordered by comparison, then judgment id; K-way rankings are expanded to pairs
    (sharing a ``ranking_id``); ties are left out and counted. Filters and name are validated
    first (ApplicationError); stored data that cannot be written raises ExportDataError naming the
    judgment, possibly after some rows were written to ``out``: callers that need all-or-nothing
    write to a temporary file (see :func:`export_preferences_write_file`).
    """
    spec = export_spec_clean(name=name, filters=filters)
    pseudonyms = Pseudonyms(spec.name)
    view = _build_view(spec, pseudonyms)
    stats = GroupStats()
    stream = JsonlStream(out)
    for _prompt, row in view.rows(export_record_groups(filters=spec.filters, full=False, stats=stats)):
        stream.write(row)
    out.flush()
    return {
        "format": spec.format,
        "view": "conversational, explicit prompt",
        "name": spec.name,
        "columns": view.columns,
        "rows": stream.rows,
        "skipped": _skipped(view, stats),
        "margin_mapping": MARGIN_MAPPING_DOC,
        "rater_id": RATER_ID_DOC,
        "filters": spec.filters,
        "sha256": stream.sha256,
        "created_at": (created_at or timezone.now()).astimezone(UTC).isoformat(),
        "code_version": code_version(),
    }


def export_preferences_write_file(
    *, path: Path, filters: Any, name: str, created_at: datetime | None = None
) -> dict[str, Any]:
    """Like :func:`export_preferences_write`, into ``path``, all or nothing (temporary file, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with open(fd, "wb") as fh:
            manifest = export_preferences_write(out=fh, filters=filters, name=name, created_at=created_at)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest
