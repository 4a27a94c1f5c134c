"""Model backends. This package imports no torch at import time.

``backend_for(generator)`` picks the backend by ``generator.backend`` and loads the model (once per
process); the heavy module is imported only then, inside the worker. Adding a backend means adding
an entry to ``_LOADERS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from model_runner.backends.base import (
    Backend,
    BackendError,
    GenerationRequest,
    ModelLoadError,
    PromptOutcome,
    SampleResult,
    SamplingError,
    sampling_merge,
    sampling_validate,
)

if TYPE_CHECKING:
    from model_runner.models import Generator

__all__ = [
    "Backend",
    "BackendError",
    "GenerationRequest",
    "ModelLoadError",
    "PromptOutcome",
    "SampleResult",
    "SamplingError",
    "GENERATING_BACKENDS",
    "backend_for",
    "sampling_merge",
    "sampling_validate",
]

# backend name -> "module:function" that takes a Generator and returns a loaded Backend.
_LOADERS: dict[str, str] = {
    "bundled": "model_runner.backends.transformers_backend:backend_for_generator",
    "transformers": "model_runner.backends.transformers_backend:backend_for_generator",
    "openai": "model_runner.backends.openai_backend:backend_for_generator",
}

#: Backends that make responses (``imported`` and ``human`` only label where text came from).
GENERATING_BACKENDS = frozenset({"bundled", "transformers", "openai"})


def backend_for(generator: Generator) -> Backend:
    """The loaded backend for a generator; raises ``ModelLoadError`` with a readable message."""
    kind = str(generator.backend)
    target = _LOADERS.get(kind)
    if target is None:
        if kind in GENERATING_BACKENDS:
            raise ModelLoadError(f"generator {generator.name!r}: the {kind!r} backend is not available yet")
        raise ModelLoadError(f"generator {generator.name!r}: backend {kind!r} does not generate responses")
    module_name, func_name = target.split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    backend: Backend = loader(generator)
    return backend
