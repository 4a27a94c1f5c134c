"""Reads for exports: which judgments a snapshot contains, streamed as records, and the runs.

One module per seam: ``judgments`` (the filtered judgment queryset and the batched reads of
prompts and candidates), ``record_groups`` (records grouped by comparison: the record path),
``pair_chunks`` (column tuples for ``export.columnar``), ``facts`` (card facts and the estimate)
and ``runs`` (export runs and their files). The names callers use are re-exported here.
"""

from export.selectors.facts import export_estimate, export_likert_keys, export_queue_names, export_rubrics
from export.selectors.judgments import IdIn, export_judgment_queryset
from export.selectors.pair_chunks import COLUMN_CHUNK_SIZE, PairChunk, export_pair_chunks
from export.selectors.record_groups import (
    CHUNK_SIZE,
    GroupStats,
    export_comparison_records,
    export_record_groups,
    export_records,
    keep_group,
)
from export.selectors.runs import export_run_file, export_run_folder, export_run_get, export_run_list

__all__ = [
    "CHUNK_SIZE",
    "COLUMN_CHUNK_SIZE",
    "GroupStats",
    "IdIn",
    "PairChunk",
    "export_comparison_records",
    "export_estimate",
    "export_judgment_queryset",
    "export_likert_keys",
    "export_pair_chunks",
    "export_queue_names",
    "export_record_groups",
    "export_records",
    "export_rubrics",
    "export_run_file",
    "export_run_folder",
    "export_run_get",
    "export_run_list",
    "keep_group",
]
