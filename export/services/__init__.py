"""Writes for exports: validate a request, create a run, write its snapshot folder.

``snapshot`` writes a snapshot folder for a validated spec; ``preferences`` the single-stream TRL
export of ``manage.py export_preferences``; ``runs`` the ExportRun lifecycle (create, execute,
fail). ``ExportRun.status`` changes only in :func:`export_run_execute` (``export_run_create``
makes runs in their initial ``queued`` state). The names callers use are re-exported here.
"""

from export.records import ExportDataError
from export.services.preferences import export_preferences_write, export_preferences_write_file
from export.services.runs import export_run_create, export_run_execute
from export.services.snapshot import code_version, export_snapshot_write
from export.spec import export_filters_clean, export_name_clean

__all__ = [
    "ExportDataError",
    "code_version",
    "export_filters_clean",
    "export_name_clean",
    "export_preferences_write",
    "export_preferences_write_file",
    "export_run_create",
    "export_run_execute",
    "export_snapshot_write",
]
