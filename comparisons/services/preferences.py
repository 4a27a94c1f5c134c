"""Writes for an existing preference dataset: its prompts, both replies of each line as candidates,
and the label it came with (``preferences_import``).

So a team can re-rate public data (HH-RLHF, UltraFeedback, any TRL preference set) with its own
rubric: each line becomes a prompt (deduplicated as any import's) with two candidates, written by
an ``imported`` generator named after the dataset, which join comparisons like any others. The
original choice is stored as an ``ImportedPreference`` (with the line's other scalar columns as
its metadata), which nothing shown to raters reads. All-or-nothing in one pass and one
transaction, like the other imports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from comparisons.importing import CandidateRecord, ErrorCollector, InvalidField
from comparisons.models import ImportedPreference, Prompt
from comparisons.preference_rows import PreferenceRecord, parse_preference_line
from comparisons.records import MAX_GENERATOR_NAME_LENGTH, validate_name, validate_tags
from comparisons.services.candidates import _CandidatesPlan, candidates_resolve
from comparisons.services.common import (
    BATCH_SIZE,
    ImportProgress,
    ImportResult,
    _chunks,
    import_reader,
    rows_import,
)
from comparisons.services.prompts import _clean_collection, _clean_source

_SUFFIXES = {".gz", ".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".arrow", ".zip"}


def dataset_name_clean(dataset: str | None, *, file_name: str = "") -> str:
    """The dataset's name (its candidates' generator): as given, else the file's or folder's name
    without its extensions (``hh-rlhf.jsonl.gz`` -> ``hh-rlhf``). InvalidField("dataset") when
    neither says, or the name is not a short text."""
    if dataset is None or (isinstance(dataset, str) and not dataset.strip()):
        path = PurePosixPath(str(file_name or "").replace("\\", "/"))
        name = path.name
        while PurePosixPath(name).suffix.lower() in _SUFFIXES:
            name = name[: -len(PurePosixPath(name).suffix)]
        if not name.strip():
            raise InvalidField("dataset", "required: name the dataset (its responses' generator)")
        dataset = name
    return validate_name(dataset, field="dataset", max_length=MAX_GENERATOR_NAME_LENGTH)


def preferences_import(
    *,
    stream: Iterable[bytes | str] | None = None,
    file: Any = None,
    format: str | None = None,
    columns: Any = None,
    split: str | None = None,
    dataset: str | None = None,
    source: str = Prompt.Source.IMPORT,
    collection: str = "",
    default_tags: list[str] | None = None,
    progress: ImportProgress | None = None,
) -> ImportResult:
    """Import a preference dataset: a line (row) holds ``prompt``? (text, messages or a transcript),
    ``chosen`` and ``rejected`` (replies, message lists or HH transcripts), ``id``? and ``tags``?
    (``comparisons.preference_rows`` reads the shapes); ``columns`` maps them to the file's columns.

    Each line's prompt is found or made (``source``, ``collection``, tags plus ``default_tags``);
    its two replies become candidates of the generator ``dataset`` (made with backend
    ``imported`` when new; default: the file's name), deduplicated by text, so re-importing
    creates nothing; and the choice is stored once per (chosen, rejected) pair. ``created`` and
    ``existing`` count those pairs; ``counts`` has prompts, candidates and preferences.
    """
    source = _clean_source(source)
    collection = _clean_collection(collection)
    default_tags = validate_tags(default_tags)
    dataset = dataset_name_clean(dataset, file_name=str(getattr(file, "name", "") or file or ""))
    reader = import_reader(
        kind="preferences",
        stream=stream,
        file=file,
        format=format,
        columns=columns,
        split=split,
        progress=progress,
    )

    def check(records: list[tuple[int, PreferenceRecord]], errors: ErrorCollector) -> _PreferencesPlan:
        replies = [
            (line_no, CandidateRecord(text=text, generator=dataset, prompt=record.prompt))
            for line_no, record in records
            for text in (record.chosen, record.rejected)
        ]
        plan = candidates_resolve(replies, errors, prompt_source=source, collection=collection)
        return _PreferencesPlan(candidates=plan, records=records, dataset=dataset)

    return rows_import(
        reader=reader,
        parse=partial(parse_preference_line, default_tags=default_tags),
        check=check,
        progress=progress,
    )


@dataclass
class _PreferencesPlan:
    """The lines' prompts and candidates (``candidates``: two a line, chosen first), not yet written."""

    candidates: _CandidatesPlan
    records: list[tuple[int, PreferenceRecord]]
    dataset: str
    made: list[ImportedPreference] = field(default_factory=list)

    def save(self) -> ImportResult:
        written = self.candidates.save()
        pairs = list(zip(written.candidates[::2], written.candidates[1::2], strict=True))
        stored: set[tuple[int, int]] = set()
        for chunk in _chunks(sorted({chosen.pk for chosen, _ in pairs})):
            stored.update(
                ImportedPreference.objects.filter(chosen_id__in=chunk).values_list("chosen_id", "rejected_id")
            )
        seen = set(stored)
        for (line_no, record), (chosen, rejected) in zip(self.records, pairs, strict=True):
            if (chosen.pk, rejected.pk) in seen:
                continue
            seen.add((chosen.pk, rejected.pk))
            self.made.append(
                ImportedPreference(
                    prompt=chosen.prompt,
                    chosen=chosen,
                    rejected=rejected,
                    dataset=self.dataset,
                    line=line_no,
                    metadata=record.metadata,
                )
            )
        ImportedPreference.objects.bulk_create(self.made, batch_size=BATCH_SIZE)
        per_line = self.candidates.prompts[::2]
        prompts = [prompt for _, prompt, _ in per_line]
        new_prompts = len({prompt.pk for _, prompt, was_created in per_line if was_created})
        created = len(self.made)
        counts = {
            "prompts": {"created": new_prompts, "existing": len({p.pk for p in prompts}) - new_prompts},
            "candidates": written.counts["candidates"],
            "preferences": {"created": created, "existing": len(self.records) - created},
        }
        return ImportResult(
            created=created,
            existing=len(self.records) - created,
            prompts=prompts,
            candidates=written.candidates,
            counts=counts,
        )
