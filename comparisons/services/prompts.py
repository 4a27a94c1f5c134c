"""Writes for prompts: one prompt (``prompt_get_or_create``) or a JSONL import (``prompts_import``).

Imports are all-or-nothing and make one pass (``common.jsonl_import``): every line is read and
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
)
from comparisons.models import Prompt
from comparisons.services.common import (
    _CONCURRENT_WRITE,
    BATCH_SIZE,
    ImportResult,
    _chunks,
    jsonl_import,
)
from labeling.errors import Conflict

MAX_COLLECTION_LENGTH = 200


def _clean_source(source: str) -> str:
    if source not in Prompt.Source.values:
        raise InvalidField("source", f"must be one of {', '.join(Prompt.Source.values)}")
    return source


def _clean_collection(collection: str | None) -> str:
    collection = (collection or "").strip()
    if len(collection) > MAX_COLLECTION_LENGTH:
        raise InvalidField("collection", f"longer than {MAX_COLLECTION_LENGTH} characters")
    return collection


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
                    "id",
                    f"{shown_value(record.external_id)} already names a prompt with other messages ({which})",
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

    All-or-nothing, in one pass (``jsonl_import``): every line is checked, and every line that
    parses is also checked against the stored prompts (an ``id`` naming other messages), before
    ImportFailed reports all the errors at once (first error's line and field, up to 20 listed,
    all counted); nothing is written then, nor when the file passes 50 MB or a line passes 1 MB.
    Re-importing a file creates nothing new; it merges tags into the existing prompts.
    Blank lines are skipped. ``default_tags`` are added to every line's prompt.
    """
    source = _clean_source(source)
    collection = _clean_collection(collection)
    default_tags = validate_tags(default_tags)

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

    return jsonl_import(
        stream=stream, parse=partial(parse_prompt_line, default_tags=default_tags), check=check
    )


@dataclass
class _PromptsPlan:
    """The prompts of an import's lines, resolved by ``_PromptIndex`` and not yet written."""

    index: _PromptIndex
    prompts: list[Prompt] = field(default_factory=list)
    created: int = 0

    def save(self) -> ImportResult:
        self.index.save()
        return ImportResult(
            created=self.created, existing=len(self.prompts) - self.created, prompts=self.prompts
        )
