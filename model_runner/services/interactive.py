"""Samples on demand, for the interactive path (a conversation's model turn), not a bulk job.

The caller names each prompt's sample indices, so a redelivered or repeated request writes nothing
twice (the candidates' unique key); the requests of several callers that share a generator and
sampling go to the model in one batch, with one shared prefill per prompt, as bulk generation does.
Web processes never call this: it loads the model (``backend_for``), inside the worker.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from comparisons.models import Candidate, Prompt
from model_runner.backends.base import BackendError, GenerationRequest, sampling_merge
from model_runner.models import Generator


@dataclass(frozen=True)
class SampleRequest:
    """The samples one caller wants for one prompt: their sample indices (one sample each)."""

    prompt: Prompt
    sample_indices: Sequence[int]


@dataclass
class SamplesMade:
    """What ``generation_samples_make`` made: each candidate asked for, by (prompt id, sample
    index); the prompts the model refused, with why; and the runner's own time for the batch."""

    candidates: dict[tuple[int, int], Candidate] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    generation_ms: int = 0


def generation_samples_make(
    *, generator: Generator, requests: Sequence[SampleRequest], sampling: Mapping[str, Any] | None = None
) -> SamplesMade:
    """Generate the missing samples of these requests with ``generator`` in one batch and store them.

    Sample indices that already have a candidate are not generated again (a retry after a worker
    died makes only what is missing); every candidate asked for is returned, old and new. Raises
    ``BackendError`` (a readable reason) when the model cannot load or the batch fails.
    """
    from model_runner.backends import backend_for

    made = SamplesMade()
    wanted: dict[int, list[int]] = {}
    for r in requests:  # several callers may ask for one prompt (other indices): one request each
        wanted.setdefault(r.prompt.pk, []).extend(
            i for i in r.sample_indices if i not in wanted.get(r.prompt.pk, [])
        )
    existing = _stored(generator, wanted)
    missing = {pid: [i for i in indices if i not in existing.get(pid, {})] for pid, indices in wanted.items()}
    missing = {pid: indices for pid, indices in missing.items() if indices}
    prompts = {r.prompt.pk: r.prompt for r in requests}
    merged = sampling_merge(generator.sampling, dict(sampling or {}))
    if missing:
        backend = backend_for(generator)
        batch = [
            GenerationRequest(prompt_id=pid, messages=prompts[pid].messages, num_samples=len(indices))
            for pid, indices in missing.items()
        ]
        started = time.monotonic()
        rows: list[Candidate] = []
        for outcomes in backend.generate(batch, sampling=merged, batch_size=len(batch)):
            for outcome in outcomes:
                if outcome.error:
                    made.errors[outcome.prompt_id] = outcome.error
                    continue
                for index, sample in zip(missing[outcome.prompt_id], outcome.samples, strict=True):
                    rows.append(
                        Candidate(
                            prompt_id=outcome.prompt_id,
                            generator=generator,
                            sample_index=index,
                            text=sample.text,
                            sampling=merged,
                            seed=sample.seed,
                            model_revision=backend.revision,
                            prompt_tokens=sample.prompt_tokens,
                            completion_tokens=sample.completion_tokens,
                            finish_reason=sample.finish_reason,
                            latency_ms=sample.latency_ms,
                        )
                    )
        made.generation_ms = round((time.monotonic() - started) * 1000)
        Candidate.objects.bulk_create(rows, ignore_conflicts=True)
        existing = _stored(generator, wanted)
    for pid, indices in wanted.items():
        if pid in made.errors:
            continue
        have = existing.get(pid, {})
        if any(i not in have for i in indices):
            raise BackendError(
                f"generator {generator.name!r}: the model returned fewer samples than asked for"
            )
        made.candidates.update(((pid, i), have[i]) for i in indices)
    return made


def _stored(generator: Generator, wanted: Mapping[int, list[int]]) -> dict[int, dict[int, Candidate]]:
    """The stored candidates of these prompts and sample indices, by prompt and index."""
    found: dict[int, dict[int, Candidate]] = {}
    indices = {i for values in wanted.values() for i in values}
    rows = Candidate.objects.filter(prompt_id__in=list(wanted), generator=generator, sample_index__in=indices)
    for candidate in rows:
        if candidate.sample_index in wanted[candidate.prompt_id]:
            found.setdefault(candidate.prompt_id, {})[candidate.sample_index] = candidate
    return found
