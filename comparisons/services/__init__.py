"""Writes for prompts, candidates and comparisons.

One module per seam: ``prompts`` (one prompt, or an import of them), ``candidates`` (an import of
responses made elsewhere), ``preferences`` (an existing preference dataset: prompts, both replies,
the original label), ``import_jobs`` (the door the API and the page use: a small file now, a big
one as an ImportJob run by a worker), ``comparisons`` (building pairs and K-way sets), and
``common`` (batching, the one pass of an import and its result). Imports are all-or-nothing and
share a single transaction. The names callers use are re-exported here.
"""

from comparisons.importing import ImportFailed, InvalidField
from comparisons.services.candidates import candidates_import
from comparisons.services.common import BATCH_SIZE, ImportResult
from comparisons.services.comparisons import (
    MAX_SIZE,
    MIN_SIZE,
    PAIRINGS,
    ComparisonsBuilt,
    LeftOut,
    comparison_build_for_candidates,
    comparisons_build,
)
from comparisons.services.import_jobs import import_job_execute, import_start
from comparisons.services.preferences import preferences_import
from comparisons.services.prompts import MAX_COLLECTION_LENGTH, prompt_get_or_create, prompts_import

__all__ = [
    "BATCH_SIZE",
    "MAX_COLLECTION_LENGTH",
    "MAX_SIZE",
    "MIN_SIZE",
    "PAIRINGS",
    "ComparisonsBuilt",
    "ImportFailed",
    "ImportResult",
    "InvalidField",
    "LeftOut",
    "candidates_import",
    "comparison_build_for_candidates",
    "comparisons_build",
    "import_job_execute",
    "import_start",
    "preferences_import",
    "prompt_get_or_create",
    "prompts_import",
]
