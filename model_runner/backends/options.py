"""A generator's backend ``options``: what each backend takes, checked where they are written.

Torch-free, so the API and the admin check options when a generator is saved, and the workers
check them again when they load one (rows saved before a rule existed get the same message then).
A typo is an error that lists the known keys, never an option silently ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
DEVICE_PATTERN = re.compile(r"(auto|cpu|mps|(cuda|xpu)(:[0-9]+)?)")


class OptionsError(ValueError):
    """An option is unknown or has a bad value; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"options.{key}: {message}" if key else f"options: {message}")
        self.key = key
        self.message = message


Check = Callable[[str, Any], Any]
#: Whole-number options go to C APIs (thread counts, batch sizes): at most a signed 32-bit integer.
MAX_INTEGER = 2**31 - 1


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past the largest float
        return False


def _whole(value: int | float) -> bool:
    return isinstance(value, int) or (math.isfinite(value) and value.is_integer())


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _integer(minimum: int) -> Check:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float) or not _whole(value):
            raise OptionsError(key, f"must be a whole number, got {_shown(value)}")
        if value < minimum:
            raise OptionsError(key, f"must be at least {minimum}, got {_shown(value)}")
        if value > MAX_INTEGER:
            raise OptionsError(key, f"must be at most {MAX_INTEGER}, got {_shown(value)}")
        return int(value)

    return check


def _number(minimum: float, *, above: bool = False) -> Check:
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
            raise OptionsError(key, f"must be a finite number, got {_shown(value)}")
        if value < minimum or (above and value == minimum):
            raise OptionsError(
                key, f"must be {'more than' if above else 'at least'} {minimum:g}, got {value!r}"
            )
        return float(value)

    return check


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise OptionsError(key, f"must be true or false, got {value!r}")
    return value


def _choice(choices: tuple[str, ...]) -> Check:
    def check(key: str, value: Any) -> str:
        if value not in choices:
            raise OptionsError(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return str(value)

    return check


def _device(key: str, value: Any) -> str:
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        raise OptionsError(key, f"must be auto, cpu, cuda, cuda:N, mps or xpu; got {value!r}")
    return value


def _headers(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise OptionsError(key, "must be an object of header names to string values")
    return dict(value)


_LOCAL: dict[str, Check] = {
    "device": _device,
    "dtype": _choice(DTYPES),
    "threads": _integer(1),
    "max_batch_sequences": _integer(1),
    "batch_size": _integer(1),
    "context_length": _integer(16),
    "compile": _boolean,
    "fast_sampler": _boolean,
    "attn_implementation": _choice(ATTENTION),
}
_OPENAI: dict[str, Check] = {
    "concurrency": _integer(1),
    "max_retries": _integer(0),
    "timeout": _number(0, above=True),
    "backoff": _number(0),
    "backoff_max": _number(0),
    "extra_sampling": _boolean,
    "headers": _headers,
    "batch_size": _integer(1),
}
#: Options per backend; backends missing here (imported, human) take none.
OPTIONS: dict[str, dict[str, Check]] = {"bundled": _LOCAL, "transformers": _LOCAL, "openai": _OPENAI}


def options_validate(backend: str, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a generator's options for its backend and return them normalized; raises ``OptionsError``
    naming the first bad key."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise OptionsError("", "must be an object")
    known = OPTIONS.get(backend, {})
    clean: dict[str, Any] = {}
    for key, value in values.items():
        check = known.get(key)
        if check is None:
            hint = f"known: {', '.join(sorted(known))}" if known else f"the {backend} backend takes none"
            raise OptionsError(str(key), f"unknown option ({hint})")
        clean[key] = check(key, value)
    return clean
