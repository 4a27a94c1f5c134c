"""Writes for prompts: one prompt (``prompt_get_or_create``) or an import of them (``prompts_import``).

Imports are all-or-nothing and make one pass (``common.rows_import``): every line is read and
checked, the lines that parse are checked against the database, every error is collected (line
and field), and nothing is written unless the whole file is good. The writes of one import share
a single transaction. Prompts are deduplicated by content hash and by external id
(:class:`_PromptIndex`, which ``candidates_import`` also uses for prompts given by messages).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction

from comparisons.importing import (
    ErrorCollector,
    InvalidField,
    PromptRecord,
    parse_prompt_line,
    shown_value,
    validate_identifier,
    validate_messages,
    validate_tags,
    validate_text,
)
from comparisons.models import Prompt, PromptExternalId
from comparisons.services.common import (
    _CONCURRENT_WRITE,
    BATCH_SIZE,
    ImportProgress,
    ImportResult,
    _chunks,
    import_reader,
    rows_import,
)
from labeling.errors import Conflict

MAX_COLLECTION_LENGTH = 200


def _clean_source(source: str) -> str:
    if source not in Prompt.Source.values:
        raise InvalidField("source", f"must be one of {', '.join(Prompt.Source.values)}")
    return source


def _clean_collection(collection: str | None) -> str:
    collection = (collection or "").strip()
    if collection:
        validate_text(collection, field="collection")
    if len(collection) > MAX_COLLECTION_LENGTH:
        raise InvalidField("collection", f"longer than {MAX_COLLECTION_LENGTH} characters")
    return collection


class _PromptIndex:
    """Resolves prompt records against the database and each other without writing.

    Load it with every record of an import, ``upsert`` each record, then ``save`` once. A prompt
    is known by its content hash and by every external id it has (``Prompt.external_id``, its
    first, and its ``PromptExternalId`` rows).
    """

    def __init__(self, records: Iterable[PromptRecord]) -> None:
        records = list(records)
        self.by_hash: dict[str, Prompt] = {}
        self.by_external: dict[str, Prompt] = {}
        self.new: list[Prompt] = []
        self.changed: dict[int, Prompt] = {}
        self.new_ids: list[tuple[Prompt, str]] = []  # (prompt, id) for PromptExternalId rows
        hashes = {r.content_hash for r in records}
        external_ids = {r.external_id for r in records if r.external_id is not None}
        for chunk in _chunks(hashes):
            self._remember(Prompt.objects.filter(content_hash__in=chunk))
        for ext_chunk in _chunks(external_ids):
            self._remember(Prompt.objects.filter(external_id__in=ext_chunk))
            aliases = PromptExternalId.objects.filter(value__in=ext_chunk).select_related("prompt")
            for alias in aliases:
                prompt = self.by_hash.setdefault(alias.prompt.content_hash, alias.prompt)
                self.by_external[alias.value] = prompt

    def _remember(self, prompts: Iterable[Prompt]) -> None:
        for prompt in prompts:
            prompt = self.by_hash.setdefault(prompt.content_hash, prompt)
            if prompt.external_id is not None:
                self.by_external[prompt.external_id] = prompt

    def upsert(self, record: PromptRecord, *, source: str, collection: str) -> tuple[Prompt, bool]:
        """The prompt for ``record`` (created in memory when new) and whether it is new.

        Matches by external id, then by content. An existing prompt gains the record's tags,
        its collection when it had none, and the record's external id: as its first
        (``external_id``, the one exports show) when it had none, else as one more id that names
        it. Raises InvalidField("id") when the id already names different messages.
        """
        content_hash = record.content_hash
        prompt: Prompt | None = None
        if record.external_id is not None:
            prompt = self.by_external.get(record.external_id)
            if prompt is not None and prompt.content_hash != content_hash:
                which = f"prompt {prompt.pk}" if prompt.pk else "an earlier line"
                raise InvalidField(
                    "id",
                    f"{shown_value(record.external_id)} already names a prompt with other messages ({which})",
                )
        if prompt is None:
            prompt = self.by_hash.get(content_hash)
            if prompt is not None and record.external_id is not None:
                if prompt.external_id is None:
                    prompt.external_id = record.external_id
                    self._mark_changed(prompt)
                self.by_external[record.external_id] = prompt
                self.new_ids.append((prompt, record.external_id))
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
            if record.external_id is not None:
                self.new_ids.append((prompt, record.external_id))
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
        """Insert the new prompts (their pks are set), update the changed ones, record new ids.

        A prompt stored before external ids had their own table (or written by hand) may lack the
        row of its first id: it is added with the next id that names the prompt.
        """
        Prompt.objects.bulk_create(self.new, batch_size=BATCH_SIZE)
        if self.changed:
            Prompt.objects.bulk_update(
                list(self.changed.values()), ["external_id", "tags", "collection"], batch_size=BATCH_SIZE
            )
        # The ids of new_ids were looked up when the index was loaded: none has a row yet. A
        # stored prompt's first id may lack its row (see above): those are looked up here.
        wanted = {value: prompt for prompt, value in self.new_ids}
        firsts = {
            prompt.external_id: prompt
            for prompt, _ in self.new_ids
            if prompt.pk is not None and prompt.external_id is not None and prompt.external_id not in wanted
        }
        for chunk in _chunks(firsts):
            for value in PromptExternalId.objects.filter(value__in=chunk).values_list("value", flat=True):
                del firsts[value]
        wanted.update(firsts)
        PromptExternalId.objects.bulk_create(
            [PromptExternalId(prompt=prompt, value=value) for value, prompt in wanted.items()],
            batch_size=BATCH_SIZE,
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
    source = _clean_source(source)
    record = PromptRecord(
        messages=validate_messages(messages),
        external_id=None if external_id is None else validate_identifier(external_id, field="id"),
        tags=validate_tags(tags),
        # A session's turns dedupe among conversations only (their split follows the session).
        namespace=Prompt.Source.CONVERSATION if source == Prompt.Source.CONVERSATION else "",
    )
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
    stream: Iterable[bytes | str] | None = None,
    file: Any = None,
    format: str | None = "jsonl",
    columns: Any = None,
    split: str | None = None,
    source: str = Prompt.Source.IMPORT,
    collection: str = "",
    default_tags: list[str] | None = None,
    progress: ImportProgress | None = None,
) -> ImportResult:
    """Import prompts: a line (row) holds ``{"id"?, "messages": [...], "tags"?}`` (or ``"prompt"``:
    the text of one user message, or the messages).

    ``file`` (a path, an uploaded or open file) or ``stream`` (chunks) is read as ``format``
    (``jsonl``, ``csv``, ``parquet``, ``arrow``, ``dataset``; None: from the file's name), its
    columns named by ``columns`` (``{"prompt": "question"}``; see ``comparisons.readers``).
    All-or-nothing, in one pass (``rows_import``): every line is checked, and every line that
    parses is also checked against the stored prompts (an ``id`` naming other messages), before
    ImportFailed reports all the errors at once (first error's line and field, up to 20 listed,
    all counted); nothing is written then, nor when the file passes 50 MB or a line passes 1 MB.
    Re-importing a file creates nothing new; it merges tags into the existing prompts, and an id
    not seen before that names a stored conversation is added to it (both ids then name it).
    Blank lines are skipped. ``default_tags`` are added to every line's prompt.
    """
    source = _clean_source(source)
    collection = _clean_collection(collection)
    default_tags = validate_tags(default_tags)
    reader = import_reader(
        kind="prompts",
        stream=stream,
        file=file,
        format=format,
        columns=columns,
        split=split,
        progress=progress,
    )

    def check(records: list[tuple[int, PromptRecord]], errors: ErrorCollector) -> _PromptsPlan:
        plan = _PromptsPlan(_PromptIndex(record for _, record in records))
        for line_no, record in records:
            try:
                prompt, was_created = plan.index.upsert(record, source=source, collection=collection)
            except InvalidField as exc:
                errors.add(line_no, exc)
                continue
            plan.prompts.append(prompt)
            plan.created += was_created
        return plan

    return rows_import(
        reader=reader,
        parse=partial(parse_prompt_line, default_tags=default_tags),
        check=check,
        progress=progress,
    )


@dataclass
class _PromptsPlan:
    """The prompts of an import's lines, resolved by ``_PromptIndex`` and not yet written."""

    index: _PromptIndex
    prompts: list[Prompt] = field(default_factory=list)
    created: int = 0

    def save(self) -> ImportResult:
        self.index.save()
        existing = len(self.prompts) - self.created
        return ImportResult(
            created=self.created,
            existing=existing,
            prompts=self.prompts,
            counts={"prompts": {"created": self.created, "existing": existing}},
        )
