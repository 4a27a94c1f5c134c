"""Writes for candidates: the JSONL import of responses made elsewhere (``candidates_import``).

All-or-nothing like ``prompts_import``: every line is checked first and nothing is written unless
the whole file is good, in one transaction. Candidates are deduplicated by (prompt, generator,
identical text). The Generator model is reached through the Candidate -> Generator foreign key
(comparisons sits below model_runner: only a TYPE_CHECKING import of it here).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from django.db import IntegrityError, transaction

from comparisons.importing import (
    CandidateRecord,
    ErrorCollector,
    ImportFailed,
    InvalidField,
    LineError,
    parse_candidate_line,
    read_jsonl,
)
from comparisons.models import Candidate, Prompt
from comparisons.services.common import _CONCURRENT_WRITE, BATCH_SIZE, ImportResult, _chunks
from comparisons.services.prompts import _PromptIndex
from labeling.errors import Conflict

if TYPE_CHECKING:  # types only: comparisons sits below model_runner (see docs/architecture.md)
    from model_runner.models import Generator


def _prompts_by_ref(refs: set[str]) -> dict[str, Prompt]:
    """Prompts named by external id or, failing that, by primary key (a string of digits)."""
    found: dict[str, Prompt] = {}
    for chunk in _chunks(refs):
        for prompt in Prompt.objects.filter(external_id__in=chunk):
            found[prompt.external_id or ""] = prompt
    by_pk = {int(ref): ref for ref in refs - found.keys() if ref.isdigit() and len(ref) < 19}
    for pk_chunk in _chunks(by_pk):
        for prompt in Prompt.objects.filter(pk__in=pk_chunk):
            found[by_pk[prompt.pk]] = prompt
    return found


def _generator_model() -> type[Generator]:
    """The Generator model, reached through the Candidate -> Generator foreign key: the one
    dependency of comparisons on model_runner (a candidate records which model wrote it)."""
    return cast("type[Generator]", Candidate._meta.get_field("generator").related_model)


def _generators_by_name(names: set[str]) -> dict[str, Generator]:
    """Generators with these names; missing ones are created with backend IMPORTED.

    A name that belongs to a generator with another backend is used as is, so imported
    responses join the comparisons of that model's generated ones.
    """
    generator_model = _generator_model()
    found = {g.name: g for g in generator_model.objects.filter(name__in=names)}
    for name in sorted(names - found.keys()):
        found[name], _ = generator_model.objects.get_or_create(
            name=name, defaults={"backend": generator_model.Backend.IMPORTED}
        )
    return found


@dataclass
class _Slot:
    """The candidates of one (prompt, generator): by text, and the sample indexes in use."""

    by_text: dict[str, Candidate] = field(default_factory=dict)
    indexes: set[int] = field(default_factory=set)

    def add(self, candidate: Candidate) -> None:
        self.by_text.setdefault(candidate.text, candidate)
        self.indexes.add(candidate.sample_index)


def candidates_import(*, stream: Iterable[bytes | str]) -> ImportResult:
    """Import responses made elsewhere from JSONL.

    Each line: ``"prompt_id"`` (external id or pk) or ``"messages"`` (the prompt is created
    when new), ``"text"``, ``"generator"`` (a model name; an IMPORTED generator is created when
    no generator has that name), optional ``"sample_index"`` (else the next free one for that
    prompt and generator) and ``"metadata"`` (stored as the candidate's ``sampling``).

    Deduplicates by (prompt, generator, identical text): re-importing a file creates nothing.
    All-or-nothing like ``prompts_import``: an unknown prompt_id, a taken sample_index or any
    bad line raises ImportFailed naming the line and field, and nothing is written.
    """
    errors = ErrorCollector()
    records: list[tuple[int, CandidateRecord]] = []
    for line_no, value in read_jsonl(stream, errors):
        try:
            records.append((line_no, parse_candidate_line(value)))
        except InvalidField as exc:
            errors.add(line_no, exc)
    errors.raise_if_any()
    if not records:
        raise ImportFailed([LineError(None, "file", "has no JSON lines to import")])

    try:
        with transaction.atomic():
            candidates, created = _candidates_write(records, errors)
    except IntegrityError:
        raise Conflict(_CONCURRENT_WRITE)
    return ImportResult(created=created, existing=len(candidates) - created, candidates=candidates)


def _candidates_write(
    records: list[tuple[int, CandidateRecord]], errors: ErrorCollector
) -> tuple[list[Candidate], int]:
    """The body of ``candidates_import``; runs inside its transaction and raises on any error."""
    # 1. Resolve every line's prompt (nothing written yet).
    refs = _prompts_by_ref({r.prompt_ref for _, r in records if r.prompt_ref is not None})
    index = _PromptIndex(r.prompt for _, r in records if r.prompt is not None)
    resolved: list[tuple[int, CandidateRecord, Prompt]] = []
    for line_no, record in records:
        if record.prompt is not None:
            prompt, _ = index.upsert(record.prompt, source=Prompt.Source.IMPORT, collection="")
        elif (found := refs.get(record.prompt_ref or "")) is not None:
            prompt = found
        else:
            errors.add(line_no, InvalidField("prompt_id", f"no prompt has the id {record.prompt_ref!r}"))
            continue
        resolved.append((line_no, record, prompt))
    errors.raise_if_any()

    # 2. Write the new prompts and generators so candidates can point at them; an error
    #    below still rolls them back with the transaction.
    index.save()
    generators = _generators_by_name({r.generator for _, r in records})
    slots: dict[tuple[int, int], _Slot] = defaultdict(_Slot)
    prompt_ids = {p.pk for _, _, p in resolved}
    generator_ids = [g.pk for g in generators.values()]
    for chunk in _chunks(prompt_ids):
        for candidate in Candidate.objects.filter(
            prompt_id__in=chunk, generator_id__in=generator_ids
        ).order_by("sample_index"):
            slots[(candidate.prompt_id, candidate.generator_id)].add(candidate)

    # 3. Match each line to an existing candidate or a new one.
    result: list[Candidate] = []
    new: list[Candidate] = []
    for line_no, record, prompt in resolved:
        generator = generators[record.generator]
        slot = slots[(prompt.pk, generator.pk)]
        if (existing := slot.by_text.get(record.text)) is not None:
            result.append(existing)
            continue
        if record.sample_index is None:
            sample_index = max(slot.indexes, default=-1) + 1
        elif record.sample_index in slot.indexes:
            errors.add(
                line_no,
                InvalidField(
                    "sample_index",
                    f"{record.sample_index} is already used by another response of {generator.name!r} to this prompt",
                ),
            )
            continue
        else:
            sample_index = record.sample_index
        candidate = Candidate(
            prompt=prompt,
            generator=generator,
            sample_index=sample_index,
            text=record.text,
            sampling=record.metadata,
            finish_reason=Candidate.FinishReason.IMPORTED,
        )
        slot.add(candidate)
        new.append(candidate)
        result.append(candidate)
    errors.raise_if_any()
    Candidate.objects.bulk_create(new, batch_size=BATCH_SIZE)
    return result, len(new)
