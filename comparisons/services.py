"""Writes for prompts, candidates and comparisons.

Imports are all-or-nothing: every line is read and checked first, every error is collected
(line and field), and nothing is written unless the whole file is good. The writes of one
import share a single transaction.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.db import IntegrityError, transaction

from labeling.errors import Conflict

from .importing import (
    CandidateRecord,
    ErrorCollector,
    ImportFailed,
    InvalidField,
    LineError,
    PromptRecord,
    parse_candidate_line,
    parse_prompt_line,
    read_jsonl,
    validate_identifier,
    validate_messages,
    validate_tags,
)
from .models import Candidate, Comparison, ComparisonCandidate, Prompt

if TYPE_CHECKING:  # types only: comparisons sits below model_runner (see docs/architecture.md)
    from model_runner.models import Generator

# Rows per INSERT and ids per IN (...): well under SQLite's variable limit, cheap on PostgreSQL.
BATCH_SIZE = 500
MAX_COLLECTION_LENGTH = 200

PAIRINGS = ("all_pairs", "random_pair", "cross_generator")
MIN_SIZE, MAX_SIZE = 2, 9

_T = TypeVar("_T")

_CONCURRENT_WRITE = (
    "another import wrote some of the same rows at the same time; nothing was imported, run it again"
)


@dataclass(frozen=True)
class ImportResult:
    """What an import did. ``prompts``/``candidates`` follow the file's lines (one per line)."""

    created: int
    existing: int
    prompts: list[Prompt] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)


def _chunks(items: Iterable[_T], size: int = BATCH_SIZE) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _clean_source(source: str) -> str:
    if source not in Prompt.Source.values:
        raise InvalidField("source", f"must be one of {', '.join(Prompt.Source.values)}")
    return source


def _clean_collection(collection: str | None) -> str:
    collection = (collection or "").strip()
    if len(collection) > MAX_COLLECTION_LENGTH:
        raise InvalidField("collection", f"longer than {MAX_COLLECTION_LENGTH} characters")
    return collection


# --- prompts -----------------------------------------------------------------------------------


class _PromptIndex:
    """Resolves prompt records against the database and each other without writing.

    Load it with every record of an import, ``upsert`` each record, then ``save`` once.
    """

    def __init__(self, records: Iterable[PromptRecord]) -> None:
        records = list(records)
        self.by_hash: dict[str, Prompt] = {}
        self.by_external: dict[str, Prompt] = {}
        self.new: list[Prompt] = []
        self.changed: dict[int, Prompt] = {}
        hashes = {r.content_hash for r in records}
        external_ids = {r.external_id for r in records if r.external_id is not None}
        for chunk in _chunks(hashes):
            self._remember(Prompt.objects.filter(content_hash__in=chunk))
        for ext_chunk in _chunks(external_ids):
            self._remember(Prompt.objects.filter(external_id__in=ext_chunk))

    def _remember(self, prompts: Iterable[Prompt]) -> None:
        for prompt in prompts:
            self.by_hash[prompt.content_hash] = prompt
            if prompt.external_id is not None:
                self.by_external[prompt.external_id] = prompt

    def upsert(self, record: PromptRecord, *, source: str, collection: str) -> tuple[Prompt, bool]:
        """The prompt for ``record`` (created in memory when new) and whether it is new.

        Matches by external id, then by content. An existing prompt gains the record's tags,
        its collection when it had none, and its external id when it had none; a prompt that
        already has another external id keeps it. Raises InvalidField("id") when the id
        already names different messages.
        """
        content_hash = record.content_hash
        prompt: Prompt | None = None
        if record.external_id is not None:
            prompt = self.by_external.get(record.external_id)
            if prompt is not None and prompt.content_hash != content_hash:
                which = f"prompt {prompt.pk}" if prompt.pk else "an earlier line"
                raise InvalidField(
                    "id", f"{record.external_id!r} already names a prompt with other messages ({which})"
                )
        if prompt is None:
            prompt = self.by_hash.get(content_hash)
            if prompt is not None and record.external_id is not None and prompt.external_id is None:
                prompt.external_id = record.external_id
                self.by_external[record.external_id] = prompt
                self._mark_changed(prompt)
        if prompt is None:
            prompt = Prompt(
                messages=record.messages,
                external_id=record.external_id,
                tags=list(record.tags),
                source=source,
                collection=collection,
                content_hash=content_hash,
            )
            self.new.append(prompt)
            self._remember([prompt])
            return prompt, True
        merged = list(prompt.tags or []) + [t for t in record.tags if t not in (prompt.tags or [])]
        if merged != prompt.tags:
            prompt.tags = merged
            self._mark_changed(prompt)
        if collection and not prompt.collection:
            prompt.collection = collection
            self._mark_changed(prompt)
        return prompt, False

    def _mark_changed(self, prompt: Prompt) -> None:
        # New prompts are inserted whole; only stored ones need an UPDATE.
        if prompt.pk is not None:
            self.changed[prompt.pk] = prompt

    def save(self) -> None:
        """Insert the new prompts (their pks are set) and update the changed ones."""
        Prompt.objects.bulk_create(self.new, batch_size=BATCH_SIZE)
        if self.changed:
            Prompt.objects.bulk_update(
                list(self.changed.values()), ["external_id", "tags", "collection"], batch_size=BATCH_SIZE
            )


def prompt_get_or_create(
    *,
    messages: Any,
    external_id: str | int | None = None,
    tags: list[str] | None = None,
    source: str = Prompt.Source.IMPORT,
    collection: str = "",
) -> tuple[Prompt, bool]:
    """The prompt for this conversation, created when new; and whether it was created.

    Validates ``messages`` (InvalidField naming e.g. ``messages[1].role``). Deduplicates by
    content hash and by external id; an existing prompt gains the given tags (merged, order
    kept), the collection when it had none and the external id when it had none. Its source
    never changes. Raises InvalidField("id") when ``external_id`` names other messages.
    Safe against a concurrent writer of the same prompt: the loser reads the winner's row.
    """
    record = PromptRecord(
        messages=validate_messages(messages),
        external_id=None if external_id is None else validate_identifier(external_id, field="id"),
        tags=validate_tags(tags),
    )
    source = _clean_source(source)
    collection = _clean_collection(collection)
    for attempt in range(2):
        index = _PromptIndex([record])
        prompt, created = index.upsert(record, source=source, collection=collection)
        try:
            with transaction.atomic():
                index.save()
        except IntegrityError:
            if attempt:
                raise Conflict(_CONCURRENT_WRITE)
            continue
        return prompt, created
    raise AssertionError("unreachable")  # pragma: no cover


def prompts_import(
    *,
    stream: Iterable[bytes | str],
    source: str = Prompt.Source.IMPORT,
    collection: str = "",
    default_tags: list[str] | None = None,
) -> ImportResult:
    """Import prompts from JSONL: ``{"id"?, "messages": [...], "tags"?}`` (or ``"prompt": "text"``) a line.

    All-or-nothing: raises ImportFailed (first error's line and field, up to 20 errors) and
    writes nothing when any line is bad, the file passes 50 MB or a line passes 1 MB.
    Re-importing a file creates nothing new; it merges tags into the existing prompts.
    Blank lines are skipped. ``default_tags`` are added to every line's prompt.
    """
    source = _clean_source(source)
    collection = _clean_collection(collection)
    default_tags = validate_tags(default_tags)
    errors = ErrorCollector()
    records: list[tuple[int, PromptRecord]] = []
    for line_no, value in read_jsonl(stream, errors):
        try:
            records.append((line_no, parse_prompt_line(value, default_tags=default_tags)))
        except InvalidField as exc:
            errors.add(line_no, exc)
    errors.raise_if_any()
    if not records:
        raise ImportFailed([LineError(None, "file", "has no JSON lines to import")])

    try:
        with transaction.atomic():
            index = _PromptIndex(record for _, record in records)
            prompts: list[Prompt] = []
            created = 0
            for line_no, record in records:
                try:
                    prompt, was_created = index.upsert(record, source=source, collection=collection)
                except InvalidField as exc:
                    errors.add(line_no, exc)
                    continue
                prompts.append(prompt)
                created += was_created
            errors.raise_if_any()
            index.save()
    except IntegrityError:
        raise Conflict(_CONCURRENT_WRITE)
    return ImportResult(created=created, existing=len(prompts) - created, prompts=prompts)


# --- candidates --------------------------------------------------------------------------------


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


# --- comparisons -------------------------------------------------------------------------------


def _candidate_sets(
    candidates: Sequence[Candidate], *, prompt: Prompt, pairing: str, size: int, seed: int
) -> list[tuple[Candidate, ...]]:
    """The candidate sets to compare for one prompt, each sorted by candidate id."""
    rng = random.Random(f"{seed}:{prompt.pk}")
    if size == 2:
        if pairing == "random_pair":
            return [tuple(sorted(rng.sample(list(candidates), 2), key=lambda c: c.pk))]
        pairs = itertools.combinations(candidates, 2)
        if pairing == "cross_generator":
            return [p for p in pairs if p[0].generator_id != p[1].generator_id]
        return list(pairs)
    if pairing == "cross_generator":
        # Deal from each generator in turn, so a K-way set mixes as many models as it can.
        by_generator: dict[int, list[Candidate]] = defaultdict(list)
        for candidate in candidates:
            by_generator[candidate.generator_id].append(candidate)
        if len(by_generator) < 2:
            return []
        hands = [rng.sample(group, len(group)) for _, group in sorted(by_generator.items())]
        rng.shuffle(hands)
        dealt = [c for round_ in itertools.zip_longest(*hands) for c in round_ if c is not None]
        chosen = dealt[:size]
    else:
        chosen = rng.sample(list(candidates), size)
    return [tuple(sorted(chosen, key=lambda c: c.pk))]


def comparisons_build(
    *,
    prompts: Iterable[Prompt],
    pairing: str = "all_pairs",
    size: int = 2,
    seed: int = 0,
    generators: Iterable[Generator] | None = None,
) -> list[Comparison]:
    """Comparisons of each prompt's candidates, reusing any that already exist.

    ``size == 2`` (pairs), by ``pairing``:
      * ``all_pairs``: every pair of the prompt's candidates;
      * ``random_pair``: one pair per prompt, drawn with ``random.Random(f"{seed}:{prompt.pk}")``;
      * ``cross_generator``: every pair whose two candidates come from different generators.
    ``size`` 3..9 (K-way): one set of ``size`` candidates per prompt, drawn with the same seeded
    random (``cross_generator`` takes from the generators in turn and needs two of them).

    Only candidates of ``generators`` count when given. Prompts with too few candidates are
    skipped. A comparison's candidates are stored in id order (``position``) and its
    ``candidate_key`` is their ids joined by ","; building the same set again returns the stored
    comparison, also when a concurrent build made it. Returns existing and new comparisons,
    by prompt id and then set. Raises InvalidField naming ``pairing`` or ``size``.
    """
    if pairing not in PAIRINGS:
        raise InvalidField("pairing", f"must be one of {', '.join(PAIRINGS)} (got {pairing!r})")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidField("size", f"must be an integer from {MIN_SIZE} to {MAX_SIZE}")
    prompt_list = sorted({p.pk: p for p in prompts}.values(), key=lambda p: p.pk)
    generator_ids = None if generators is None else [g.pk for g in generators]

    by_prompt: dict[int, list[Candidate]] = defaultdict(list)
    for chunk in _chunks([p.pk for p in prompt_list]):
        queryset = Candidate.objects.filter(prompt_id__in=chunk)
        if generator_ids is not None:
            queryset = queryset.filter(generator_id__in=generator_ids)
        for candidate in queryset.order_by("id"):
            by_prompt[candidate.prompt_id].append(candidate)

    wanted: dict[str, tuple[Prompt, tuple[Candidate, ...]]] = {}
    for prompt in prompt_list:
        candidates = by_prompt.get(prompt.pk, [])
        if len(candidates) < size:
            continue
        for group in _candidate_sets(candidates, prompt=prompt, pairing=pairing, size=size, seed=seed):
            wanted.setdefault(",".join(str(c.pk) for c in group), (prompt, group))
    if not wanted:
        return []

    with transaction.atomic():
        stored = _comparisons_by_key(wanted)
        missing = [key for key in wanted if key not in stored]
        # ignore_conflicts: a concurrent build may insert the same keys; both then read the rows.
        Comparison.objects.bulk_create(
            [Comparison(prompt=wanted[k][0], size=len(wanted[k][1]), candidate_key=k) for k in missing],
            batch_size=BATCH_SIZE,
            ignore_conflicts=True,
        )
        made = _comparisons_by_key(missing)
        ComparisonCandidate.objects.bulk_create(
            [
                ComparisonCandidate(comparison=made[key], candidate=candidate, position=position)
                for key in missing
                for position, candidate in enumerate(wanted[key][1])
            ],
            batch_size=BATCH_SIZE,
            ignore_conflicts=True,
        )
        stored.update(made)
    return [stored[key] for key in wanted]


def _comparisons_by_key(keys: Iterable[str]) -> dict[str, Comparison]:
    found: dict[str, Comparison] = {}
    for chunk in _chunks(keys):
        found.update((c.candidate_key, c) for c in Comparison.objects.filter(candidate_key__in=chunk))
    return found


__all__ = [
    "ImportFailed",
    "ImportResult",
    "InvalidField",
    "candidates_import",
    "comparisons_build",
    "prompt_get_or_create",
    "prompts_import",
]
