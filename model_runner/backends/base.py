"""Pure-python pieces of the model runner: requests, results, sampling settings, errors.

Nothing here imports torch, so web processes may import it (services validate sampling settings
with it). The heavy backends live next to it and are imported only inside the worker path.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

FinishReason = Literal["stop", "length"]

#: Built-in sampling defaults; a generator's ``sampling`` and then a job's ``sampling`` override them.
SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": 0.7,
    "top_p": 0.95,
    "top_k": 50,
    "max_new_tokens": 256,
    "repetition_penalty": 1.05,
}

#: The most new tokens one sample may ask for (guards a typo such as 1e9 from tying up a GPU).
MAX_NEW_TOKENS_LIMIT = 32768
#: Whole-number settings (top_k, seed) fit a signed 64-bit integer, as every consumer takes them.
MAX_INTEGER = 2**63 - 1


class BackendError(Exception):
    """An error a backend reports with a message meant for people; it fails the whole batch."""


class ModelLoadError(BackendError):
    """The model could not be loaded (missing folder or file, unreadable weights, unknown backend)."""


class SamplingError(ValueError):
    """A sampling setting is unknown or out of range; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def _number(key: str, value: Any, *, integer: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SamplingError(key, f"must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SamplingError(key, "must be a finite number")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise SamplingError(key, f"must be a whole number, got {value!r}")
        if not -MAX_INTEGER <= value <= MAX_INTEGER:
            raise SamplingError(key, f"must be at most {MAX_INTEGER} in size")
        return int(value)
    try:
        return float(value)
    except OverflowError:  # an int past the largest float
        raise SamplingError(key, "is too large a number")


def sampling_validate(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check sampling overrides and return them normalized (only the keys given).

    Known keys: temperature (0..10; 0 = greedy), top_p (0 < p <= 1), top_k (>= 0; 0 = off),
    max_new_tokens (1..32768), repetition_penalty (> 0), stop (list of strings), seed (integer >= 0).
    Raises ``SamplingError`` naming the first bad key.
    """
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise SamplingError("sampling", "must be an object")
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key == "temperature":
            v = _number(key, value)
            if not 0 <= v <= 10:
                raise SamplingError(key, "must be between 0 and 10")
            clean[key] = v
        elif key == "top_p":
            v = _number(key, value)
            if not 0 < v <= 1:
                raise SamplingError(key, "must be greater than 0 and at most 1")
            clean[key] = v
        elif key == "top_k":
            n = int(_number(key, value, integer=True))
            if n < 0:
                raise SamplingError(key, "must be 0 (off) or more")
            clean[key] = n
        elif key == "max_new_tokens":
            n = int(_number(key, value, integer=True))
            if not 1 <= n <= MAX_NEW_TOKENS_LIMIT:
                raise SamplingError(key, f"must be between 1 and {MAX_NEW_TOKENS_LIMIT}")
            clean[key] = n
        elif key == "repetition_penalty":
            v = _number(key, value)
            if v <= 0:
                raise SamplingError(key, "must be greater than 0")
            clean[key] = v
        elif key == "stop":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
                raise SamplingError(key, "must be a list of non-empty strings")
            clean[key] = list(value)
        elif key == "seed":
            n = int(_number(key, value, integer=True))
            if n < 0:
                raise SamplingError(key, "must be 0 or more")
            clean[key] = n
        else:
            known = ", ".join(sorted([*SAMPLING_DEFAULTS, "stop", "seed"]))
            raise SamplingError(str(key), f"unknown sampling setting (known: {known})")
    return clean


def sampling_merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Built-in defaults <- each layer in order (generator.sampling, then job.sampling)."""
    merged = dict(SAMPLING_DEFAULTS)
    for layer in layers:
        merged.update(sampling_validate(layer))
    return merged


def batch_seed(base_seed: int | None, prompt_ids: Sequence[int], num_samples: int) -> int:
    """The seed of one model batch, always < 2**31.

    With a base seed it is a pure function of (seed, prompts, sample count), so re-running the same
    batch with the same seed reproduces it; without one it is fresh randomness.
    """
    if base_seed is None:
        return secrets.randbelow(2**31)
    key = f"{base_seed}:{num_samples}:{','.join(str(i) for i in prompt_ids)}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to answer ``num_samples`` times."""

    prompt_id: int
    messages: list[dict[str, str]]
    num_samples: int = 1


@dataclass(frozen=True)
class SampleResult:
    """One generated response. ``completion_tokens`` counts the tokens before the first EOS."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    seed: int
    latency_ms: int = 0


@dataclass(frozen=True)
class PromptOutcome:
    """The samples made for one request, or why none could be made (``error``)."""

    prompt_id: int
    samples: list[SampleResult] = field(default_factory=list)
    error: str | None = None


class Backend(Protocol):
    """A loaded model that answers prompts.

    ``generate`` yields outcomes one model batch at a time, so callers can save and report progress
    as it goes; every request gets exactly one outcome across the yielded lists.
    """

    revision: str

    def generate(
        self, requests: Sequence[GenerationRequest], *, sampling: Mapping[str, Any], batch_size: int
    ) -> Iterator[list[PromptOutcome]]: ...
