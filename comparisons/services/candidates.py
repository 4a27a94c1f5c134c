"""Writes for candidates: the import of responses made elsewhere (``candidates_import``).

All-or-nothing in one pass like ``prompts_import``: every line is checked, including against the
database, and nothing is written unless the whole file is good, in one transaction. Candidates are deduplicated by (prompt, generator,
identical text). The Generator model is reached through the Candidate -> Generator foreign key
(comparisons sits below model_runner: only a TYPE_CHECKING import of it here).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from comparisons.importing import (
    CandidateRecord,
    ErrorCollector,
    InvalidField,
    parse_candidate_line,
    shown_value,
)
from comparisons.models import Candidate, Prompt, PromptExternalId
from comparisons.services.common import (
    BATCH_SIZE,
    ImportProgress,
    ImportResult,
    _chunks,
    import_reader,
    rows_import,
)
from comparisons.services.prompts import _PromptIndex

if TYPE_CHECKING:  # types only: comparisons sits below model_runner (see docs/architecture.md)
    from model_runner.models import Generator


def _prompts_by_ref(refs: set[str]) -> dict[str, Prompt]:
    """Prompts named by any of their external ids or, failing that, by primary key (ASCII digits)."""
    found: dict[str, Prompt] = {}
    for chunk in _chunks(refs):
        for prompt in Prompt.objects.filter(external_id__in=chunk):
            found[prompt.external_id or ""] = prompt
        for alias in PromptExternalId.objects.filter(value__in=chunk).select_related("prompt"):
            found.setdefault(alias.value, alias.prompt)
    by_pk = {
        int(ref): ref for ref in refs - found.keys() if ref.isascii() and ref.isdigit() and len(ref) < 19
    }
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
    """The candidates of one (prompt, generator), stored or planned: by text, and the sample indexes in use."""

    by_text: dict[str, Candidate] = field(default_factory=dict)
    indexes: set[int] = field(default_factory=set)

    def add(self, candidate: Candidate) -> None:
        self.by_text.setdefault(candidate.text, candidate)
        self.indexes.add(candidate.sample_index)


def candidates_import(
    *,
    stream: Iterable[bytes | str] | None = None,
    file: Any = None,
    format: str | None = "jsonl",
    columns: Any = None,
    split: str | None = None,
    progress: ImportProgress | None = None,
) -> ImportResult:
    """Import responses made elsewhere.

    Each line (row): ``"prompt_id"`` (any external id of the prompt, or its pk) or ``"messages"``
    / ``"prompt"`` (the prompt is created when new), ``"text"``, ``"generator"`` (a model name; an
    IMPORTED generator is created when no generator has that name), optional ``"sample_index"``
    (else the next free one for that prompt and generator) and ``"metadata"`` (stored as the
    candidate's ``sampling``). ``file``/``stream``, ``format`` and ``columns`` as for
    ``prompts_import``.

    Deduplicates by (prompt, generator, identical text): re-importing a file creates nothing.
    All-or-nothing, in one pass like ``prompts_import``: bad lines, an unknown prompt_id and a
    taken sample_index are all found before ImportFailed reports them together (line and field
    each), and nothing is written.
    """
    reader = import_reader(
        kind="candidates",
        stream=stream,
        file=file,
        format=format,
        columns=columns,
        split=split,
        progress=progress,
    )
    return rows_import(reader=reader, parse=parse_candidate_line, check=candidates_resolve, progress=progress)


@dataclass
class _CandidatesPlan:
    """An import's lines resolved against the database, nothing written yet.

    ``result`` has one candidate per line: a stored one, or a new one in ``new`` (its generator
    is set on ``save``, once missing generators exist; its prompt may be a new one of ``index``, whose
    primary key bulk_create picks up once ``index`` is saved).
    """

    index: _PromptIndex
    generator_names: set[str]
    result: list[Candidate] = field(default_factory=list)
    new: list[tuple[Candidate, str]] = field(default_factory=list)
    #: Lines whose prompt was given by its messages: one per line, (line, prompt, created).
    prompts: list[tuple[int, Prompt, bool]] = field(default_factory=list)

    def save(self) -> ImportResult:
        # New prompts and generators first, so the new candidates can point at them.
        self.index.save()
        generators = _generators_by_name(self.generator_names)
        for candidate, generator_name in self.new:
            candidate.generator = generators[generator_name]
        Candidate.objects.bulk_create([c for c, _ in self.new], batch_size=BATCH_SIZE)
        created = len(self.new)
        existing = len(self.result) - created
        counts = {"candidates": {"created": created, "existing": existing}}
        if self.prompts:
            new_prompts = sum(was_created for _, _, was_created in self.prompts)
            counts["prompts"] = {"created": new_prompts, "existing": len(self.prompts) - new_prompts}
        return ImportResult(created=created, existing=existing, candidates=self.result, counts=counts)


def candidates_resolve(
    records: list[tuple[int, CandidateRecord]],
    errors: ErrorCollector,
    *,
    prompt_source: str = Prompt.Source.IMPORT,
    collection: str = "",
) -> _CandidatesPlan:
    """Resolve every line that parsed, recording each line's error; reads only.

    Prompts given by their messages are made (when new) with ``prompt_source`` and ``collection``.
    """
    # 1. Every line's prompt: named by id, or given by its messages (new ones are kept in memory).
    refs = _prompts_by_ref({r.prompt_ref for _, r in records if r.prompt_ref is not None})
    index = _PromptIndex(r.prompt for _, r in records if r.prompt is not None)
    resolved: list[tuple[int, CandidateRecord, Prompt]] = []
    given: list[tuple[int, Prompt, bool]] = []
    for line_no, record in records:
        if record.prompt is not None:
            try:
                prompt, was_created = index.upsert(record.prompt, source=prompt_source, collection=collection)
            except InvalidField as exc:
                errors.add(line_no, exc)
                continue
            given.append((line_no, prompt, was_created))
        elif (found := refs.get(record.prompt_ref or "")) is not None:
            prompt = found
        else:
            errors.add(
                line_no, InvalidField("prompt_id", f"no prompt has the id {shown_value(record.prompt_ref)}")
            )
            continue
        resolved.append((line_no, record, prompt))

    # 2. The stored candidates of those prompts by the generators named (a new prompt or a new
    #    generator has none), by (prompt content hash, generator name).
    plan = _CandidatesPlan(index=index, generator_names={r.generator for _, r in records}, prompts=given)
    stored = dict(_generator_model().objects.filter(name__in=plan.generator_names).values_list("pk", "name"))
    slots: dict[tuple[str, str], _Slot] = defaultdict(_Slot)
    by_pk = {p.pk: p for _, _, p in resolved if p.pk is not None}
    for chunk in _chunks(by_pk):
        for candidate in Candidate.objects.filter(
            prompt_id__in=chunk, generator_id__in=list(stored)
        ).order_by("sample_index"):
            slots[(by_pk[candidate.prompt_id].content_hash, stored[candidate.generator_id])].add(candidate)

    # 3. Match each line to a stored or planned candidate, or plan a new one.
    for line_no, record, prompt in resolved:
        slot = slots[(prompt.content_hash, record.generator)]
        if (existing := slot.by_text.get(record.text)) is not None:
            plan.result.append(existing)
            continue
        if record.sample_index is None:
            sample_index = max(slot.indexes, default=-1) + 1
        elif record.sample_index in slot.indexes:
            errors.add(
                line_no,
                InvalidField(
                    "sample_index",
                    f"{record.sample_index} is already used by another response of "
                    f"{shown_value(record.generator)} to this prompt",
                ),
            )
            continue
        else:
            sample_index = record.sample_index
        candidate = Candidate(
            prompt=prompt,
            sample_index=sample_index,
            text=record.text,
            sampling=record.metadata,
            finish_reason=Candidate.FinishReason.IMPORTED,
        )
        slot.add(candidate)
        plan.new.append((candidate, record.generator))
        plan.result.append(candidate)
    return plan
