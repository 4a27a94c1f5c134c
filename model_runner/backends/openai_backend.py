"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint (vLLM, TGI, Ollama, hosted APIs).

Pure standard library (no torch), so it may be loaded in any process. Guarantees:

- The API key is read from the environment variable named in ``generator.api_key_env`` when the
  backend is loaded; it is never stored in the database nor written into an error message. The
  endpoint and the variable's name are checked again at load (``backends.endpoints``): an http(s)
  URL on an allowed host, a variable whose name carries the allowed prefix.
- Errors give the HTTP status and its standard reason, never the body of the endpoint's answer
  (an admin must not be able to read other services through a job's errors).
- At most ``options.concurrency`` requests are in flight at once (default 8).
- 429 and 5xx answers, timeouts and dropped connections are retried ``options.max_retries`` times
  (default 4) with exponential backoff and jitter, honouring ``Retry-After``; then the batch fails
  with a readable reason (the prompts already answered in that batch are kept).
- A 400/413/422 answer (e.g. a prompt longer than the served model's context) is that prompt's
  error; the rest of the batch goes on. 401/403/404 mean the configuration is wrong: the batch fails.

Generator fields: ``model_path`` = base URL (``http://host:8000/v1``; ``/chat/completions`` is
appended unless already there), ``model_name`` = the ``model`` sent. Options: ``concurrency``,
``max_retries``, ``timeout`` (seconds per request, default 120), ``backoff`` (first wait, default 1 s),
``backoff_max`` (default 30 s), ``extra_sampling`` (also send ``top_k`` and ``repetition_penalty``,
which vLLM and TGI accept but api.openai.com rejects), ``headers`` (extra HTTP headers).
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from model_runner.backends.base import (
    BackendError,
    FinishReason,
    GenerationRequest,
    ModelLoadError,
    PromptOutcome,
    SampleResult,
    batch_seed,
)
from model_runner.backends.endpoints import EndpointError, api_key_env_check, endpoint_url_check
from model_runner.backends.options import OptionsError, options_validate

if TYPE_CHECKING:
    from model_runner.models import Generator

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
PROMPT_ERROR_STATUSES = frozenset({400, 413, 422})
DEFAULTS: dict[str, Any] = {
    "concurrency": 8,
    "max_retries": 4,
    "timeout": 120.0,
    "backoff": 1.0,
    "backoff_max": 30.0,
    "extra_sampling": False,
}


class PromptRejected(Exception):
    """The endpoint refused this one prompt (400/413/422): the prompt's error, not the batch's."""


@dataclass(frozen=True)
class _Answer:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: FinishReason
    model: str
    latency_ms: int


def _option(options: Mapping[str, Any], key: str, kind: type, minimum: float) -> Any:
    value = options.get(key, DEFAULTS[key])
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ModelLoadError(f"options.{key}: must be a number, got {value!r}")
    if number < minimum:
        raise ModelLoadError(f"options.{key}: must be at least {minimum}")
    return number


def backend_for_generator(generator: Generator) -> OpenAIBackend:
    """Build the backend; raises ``ModelLoadError`` naming the field when the configuration is incomplete."""
    name = generator.name
    try:
        base_url = endpoint_url_check(generator.model_path)
        key_env = api_key_env_check(generator.api_key_env)
    except EndpointError as exc:
        raise ModelLoadError(f"generator {name!r}: {exc}") from exc
    if not generator.model_name:
        raise ModelLoadError(f"generator {name!r}: model_name is empty (the model the endpoint serves)")
    api_key: str | None = None
    if key_env:
        api_key = os.environ.get(key_env)
        if not api_key:
            raise ModelLoadError(
                f"generator {name!r}: the environment variable {key_env!r} (api_key_env) is not set in the worker"
            )
    try:
        options = options_validate(generator.backend, generator.options)
    except OptionsError as exc:
        raise ModelLoadError(f"generator {name!r}: {exc}") from exc
    headers = options.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ModelLoadError("options.headers: must be an object of header names to values")
    return OpenAIBackend(
        name=name,
        base_url=base_url,
        model=generator.model_name,
        api_key=api_key,
        system_prompt=generator.system_prompt or None,
        concurrency=int(_option(options, "concurrency", int, 1)),
        max_retries=int(_option(options, "max_retries", int, 0)),
        timeout=float(_option(options, "timeout", float, 0.01)),
        backoff=float(_option(options, "backoff", float, 0)),
        backoff_max=float(_option(options, "backoff_max", float, 0)),
        extra_sampling=bool(options.get("extra_sampling", False)),
        headers={str(k): str(v) for k, v in headers.items()},
    )


class OpenAIBackend:
    """Chat completions over HTTP, K requests per prompt (one per sample, each with its own seed)."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        model: str,
        api_key: str | None = None,
        system_prompt: str | None = None,
        concurrency: int = 8,
        max_retries: int = 4,
        timeout: float = 120.0,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        extra_sampling: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else f"{base}/chat/completions"
        self.name = name
        self.model = model
        self.system_prompt = system_prompt
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.extra_sampling = extra_sampling
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        #: What the endpoint says it served (its ``model`` and ``system_fingerprint``), once known.
        self.revision = model

    # -- one request ------------------------------------------------------------------------------

    def _payload(self, messages: list[dict[str, str]], sampling: Mapping[str, Any], seed: int) -> bytes:
        if self.system_prompt and not (messages and messages[0].get("role") == "system"):
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": int(sampling["max_new_tokens"]),
            "temperature": float(sampling["temperature"]),
            "top_p": float(sampling["top_p"]),
            "seed": seed,
            "n": 1,
        }
        if sampling.get("stop"):
            body["stop"] = list(sampling["stop"])
        if self.extra_sampling:
            body["top_k"] = int(sampling["top_k"]) or -1
            body["repetition_penalty"] = float(sampling["repetition_penalty"])
        return json.dumps(body).encode()

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.backoff_max, self.backoff * (2**attempt))
        if retry_after:
            try:
                delay = max(delay, min(self.backoff_max, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: keep our own backoff
        time.sleep(delay * (0.75 + random.random() / 2))

    def _post(self, payload: bytes) -> _Answer:
        """One chat completion with retries; raises ``PromptRejected`` or ``BackendError`` (readable)."""
        last = ""
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(self.url, data=payload, headers=self._headers, method="POST")
            started = time.monotonic()
            retry_after: str | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                return self._parse(raw, round((time.monotonic() - started) * 1000))
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code in PROMPT_ERROR_STATUSES:
                    raise PromptRejected(f"the endpoint refused this prompt ({exc.code}): {detail}")
                if exc.code in (401, 403):
                    raise BackendError(
                        f"generator {self.name!r}: {self.url} refused the credentials ({exc.code}): {detail}; "
                        "check the environment variable named in api_key_env"
                    )
                if exc.code == 404:
                    raise BackendError(
                        f"generator {self.name!r}: {self.url} answered 404 ({detail}); "
                        "check model_path (the base URL, e.g. http://host:8000/v1) and model_name"
                    )
                if exc.code not in RETRY_STATUSES and exc.code < 500:
                    raise BackendError(f"generator {self.name!r}: {self.url} answered {exc.code}: {detail}")
                last = f"answered {exc.code}: {detail}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
            except TimeoutError:
                last = f"did not answer within {self.timeout:g} s"
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, TimeoutError | socket.timeout):
                    last = f"did not answer within {self.timeout:g} s"
                else:
                    last = f"cannot be reached ({reason})"
            except (ConnectionError, OSError) as exc:  # reset or dropped mid-answer
                last = f"dropped the connection ({exc})"
            if attempt < self.max_retries:
                self._wait(attempt, retry_after)
        attempts = self.max_retries + 1
        raise BackendError(
            f"generator {self.name!r}: the endpoint {self.url} {last} "
            f"(gave up after {attempts} attempt{'s' if attempts != 1 else ''})"
        )

    def _parse(self, raw: bytes, latency_ms: int) -> _Answer:
        try:
            body = json.loads(raw)
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(
                f"generator {self.name!r}: {self.url} did not answer with a chat completion "
                f"({len(raw)} bytes that are not one)"
            )
        usage = body.get("usage") or {}
        finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
        model = str(body.get("model") or self.model)
        if body.get("system_fingerprint"):
            model = f"{model}@{body['system_fingerprint']}"
        return _Answer(
            text=str(text),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=finish,
            model=model,
            latency_ms=latency_ms,
        )

    # -- batches ----------------------------------------------------------------------------------

    def generate(
        self, requests: Sequence[GenerationRequest], *, sampling: Mapping[str, Any], batch_size: int
    ) -> Iterator[list[PromptOutcome]]:
        """Yield outcomes ``batch_size`` prompts at a time; all of a chunk's requests run concurrently
        (at most ``concurrency`` at once). A chunk that fails keeps its fully answered prompts."""
        step = max(1, batch_size)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai") as pool:
            for start in range(0, len(requests), step):
                chunk = requests[start : start + step]
                started = time.monotonic()
                jobs = []
                for request in chunk:
                    base = batch_seed(sampling.get("seed"), [request.prompt_id], request.num_samples)
                    for j in range(request.num_samples):
                        seed = (base + j) & 0x7FFFFFFF
                        payload = self._payload(request.messages, sampling, seed)
                        jobs.append((request, seed, pool.submit(self._post, payload)))
                outcomes, failure = self._collect(chunk, jobs, started)
                if failure is not None:
                    if outcomes:
                        yield outcomes
                    raise failure
                yield outcomes

    def _collect(
        self, chunk: Sequence[GenerationRequest], jobs: list[Any], started: float
    ) -> tuple[list[PromptOutcome], BackendError | None]:
        """Wait for a chunk's requests. Each sample's ``latency_ms`` is the chunk's wall time shared
        out over its samples (as the transformers backend does for a model batch), so a job's summed
        latencies are its generation time even though requests overlap."""
        samples: dict[int, list[SampleResult]] = {r.prompt_id: [] for r in chunk}
        for _request, _seed, future in jobs:
            future.exception()  # wait for all of them; errors are read below
        latency_ms = round((time.monotonic() - started) * 1000 / max(1, len(jobs)))
        rejected: dict[int, str] = {}
        failed: dict[int, BackendError] = {}
        for request, seed, future in jobs:
            try:
                answer: _Answer = future.result()
            except PromptRejected as exc:
                rejected.setdefault(request.prompt_id, str(exc))
                continue
            except BackendError as exc:
                failed.setdefault(request.prompt_id, exc)
                continue
            self.revision = answer.model
            samples[request.prompt_id].append(
                SampleResult(
                    text=answer.text,
                    prompt_tokens=answer.prompt_tokens or 0,
                    completion_tokens=answer.completion_tokens or 0,
                    finish_reason=answer.finish_reason,
                    seed=seed,
                    latency_ms=latency_ms,
                )
            )
        outcomes: list[PromptOutcome] = []
        for request in chunk:
            pid = request.prompt_id
            if pid in failed:
                continue  # answered again when the batch is retried
            if pid in rejected:
                outcomes.append(PromptOutcome(pid, error=rejected[pid]))
            else:
                outcomes.append(PromptOutcome(pid, samples=samples[pid]))
        first_failure = next(iter(failed.values()), None)
        return outcomes, first_failure


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The status's standard reason ("Bad Request"), never the body of the answer: a job's errors
    are read by admins, and a body could carry what an internal service answered."""
    try:
        return HTTPStatus(exc.code).phrase
    except ValueError:
        return "unknown status"
