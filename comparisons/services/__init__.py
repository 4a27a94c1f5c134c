"""Writes for prompts, candidates and comparisons.

One module per seam: ``prompts`` (one prompt, or a JSONL import of them), ``candidates`` (a JSONL
import of responses made elsewhere), ``comparisons`` (building pairs and K-way sets), and
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
    comparisons_build,
)
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
    "comparisons_build",
    "prompt_get_or_create",
    "prompts_import",
]
