"""Jailbreaks from the wild: conversations from production logs imported as attacks for triage.

One JSONL line is one exchange a production model had::

    {"messages": [{"role": "user", "content": "..."}, ..., {"role": "assistant", "content": "..."}],
     "feedback": {"rating": "thumbs_down", "report_reason": "..."},   # optional
     "model": "prod-model-v3",                                          # optional
     "id": "log-123"}                                                   # optional

Each becomes a pending :class:`~labeling.models.Attack` (source ``wild``) in a red-team review
queue, where a reviewer triages it (``labeling.services.redteam_reviews``):

* the prompt is every message but the last (which must be the assistant's reply, right after a
  user message): a comparisons Prompt of source ``redteam`` tagged ``wild`` (deduplicated by
  its messages, as every prompt is);
* the reply is a Candidate of that prompt by the generator ``wild:<model>`` (``wild:unknown``
  without a model), created with backend ``imported`` when new, as the responses import does;
* the family (the split key, ``labeling.selectors.redteam``) is ``wild:`` + the first 16 hex
  characters of the SHA-256 of the first user message, so every logged turn of one conversation,
  and every conversation opening with the same attack, is on one side of the data;
* the feedback is kept on the attack (with the log line's ``id`` as ``log_id``).

Triage order: the review queue serves pending attacks by ``prescreen``, highest first. The
automatic pre-screen (``labeling.refusal``) scores 0.1..0.9; what users flagged goes before all
of it: a report (``rating`` ``report`` or any ``report_reason``) gets ``max(score, 0.99)``, a
thumbs down ``max(score, 0.95)``, a thumbs up or no feedback keeps the score.

All or nothing (invariant 6): every line is read and checked first, each problem recorded with
its line and field (the comparisons imports' collector, so one upload reports every bad line),
and nothing is written unless the whole file is good; the writes then share one transaction.
Re-importing a line creates nothing twice: an exchange (the same prompt messages and the same
reply text) already imported from the wild, or met earlier in the file, is counted as existing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from comparisons.importing import (
    ErrorCollector,
    InvalidField,
    file_error,
    iter_chunks,
    parse_rows,
    read_jsonl,
    shown_value,
)
from comparisons.models import Candidate, Prompt, messages_hash
from comparisons.records import (
    CandidateRecord,
    PromptRecord,
    validate_identifier,
    validate_messages,
    validate_name,
    validate_text,
    validate_turns,
)
from comparisons.services.candidates import candidates_resolve
from labeling.errors import ApplicationError, Conflict
from labeling.models import Attack, Queue, User
from labeling.services.attacks import attack_create

LINE_KEYS = ("messages", "feedback", "model", "id")
FEEDBACK_KEYS = ("rating", "report_reason")
RATINGS = ("thumbs_up", "thumbs_down", "report")
#: Pre-screen floors: reported items first, then thumbs down, then the automatic score (<= 0.9).
REPORT_PRESCREEN = 0.99
THUMBS_DOWN_PRESCREEN = 0.95
WILD_TAG = "wild"
GENERATOR_PREFIX = "wild:"
UNKNOWN_MODEL = "unknown"
MAX_MODEL_LENGTH = 200 - len(GENERATOR_PREFIX)  # Generator.name holds 200 characters
MAX_REPORT_REASON = 4_000  # fits the attack's description with its prefix


@dataclass(frozen=True)
class WildRecord:
    """One checked line: the prompt (every message but the reply), the reply, and the rest."""

    prompt: list[dict[str, str]]
    reply: str
    model: str = ""
    feedback: dict[str, Any] = field(default_factory=dict)

    @property
    def generator_name(self) -> str:
        return GENERATOR_PREFIX + (self.model or UNKNOWN_MODEL)

    @property
    def family(self) -> str:
        first = next(m["content"] for m in self.prompt if m["role"] == "user")
        return "wild:" + hashlib.sha256(first.encode("utf-8")).hexdigest()[:16]

    @property
    def content_hash(self) -> str:
        return messages_hash(self.prompt)

    @property
    def reported(self) -> bool:
        return self.feedback.get("rating") == "report" or bool(self.feedback.get("report_reason"))

    @property
    def prescreen_floor(self) -> float:
        if self.reported:
            return REPORT_PRESCREEN
        if self.feedback.get("rating") == "thumbs_down":
            return THUMBS_DOWN_PRESCREEN
        return 0.0


def wild_line_parse(value: Any) -> WildRecord:
    """Check one parsed JSONL line; InvalidField names the field (``messages[2].role``, ``feedback.rating``)."""
    if not isinstance(value, dict):
        raise InvalidField(None, 'each line must be a JSON object with "messages"')
    unknown = sorted(set(value) - set(LINE_KEYS))
    if unknown:
        raise InvalidField(unknown[0], f"unknown field (the fields are {', '.join(LINE_KEYS)})")
    if "messages" not in value:
        raise InvalidField("messages", "missing: the conversation, ending with the assistant's reply")
    turns = validate_turns(value["messages"], field="messages")
    last = len(turns) - 1
    if turns[-1]["role"] != "assistant":
        raise InvalidField(f"messages[{last}].role", "the last message must be the assistant's reply")
    if last == 0:
        raise InvalidField("messages", "needs a user message before the assistant's reply")
    prompt = validate_messages(turns[:-1], field="messages")  # ends with the user's message
    model = ""
    if value.get("model") is not None:
        model = validate_name(value["model"], field="model", max_length=MAX_MODEL_LENGTH)
    feedback: dict[str, Any] = {}
    if value.get("feedback") is not None:
        feedback = _feedback_clean(value["feedback"])
    if value.get("id") is not None:
        feedback["log_id"] = validate_identifier(value["id"], field="id")
    return WildRecord(prompt=prompt, reply=turns[-1]["content"], model=model, feedback=feedback)


def _feedback_clean(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidField("feedback", 'must be an object, e.g. {"rating": "thumbs_down"}')
    unknown = sorted(set(value) - set(FEEDBACK_KEYS))
    if unknown:
        raise InvalidField(
            f"feedback.{unknown[0]}", f"unknown field (the fields are {', '.join(FEEDBACK_KEYS)})"
        )
    clean: dict[str, Any] = {}
    rating = value.get("rating")
    if rating is not None:
        if rating not in RATINGS:
            raise InvalidField(
                "feedback.rating", f"must be one of {', '.join(RATINGS)} (got {shown_value(rating)})"
            )
        clean["rating"] = rating
    reason = value.get("report_reason")
    if reason is not None and reason != "":
        clean["report_reason"] = validate_text(reason, field="feedback.report_reason")
        if len(reason) > MAX_REPORT_REASON:
            raise InvalidField("feedback.report_reason", f"longer than {MAX_REPORT_REASON} characters")
    return clean


@dataclass(frozen=True)
class AttackImportResult:
    """What an import did: one attack per line (new or already there), in file order."""

    created: int
    existing: int
    attacks: list[Attack] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "existing": self.existing, "attacks": [a.pk for a in self.attacks]}


def attack_import_jsonl(
    *,
    queue: Queue,
    imported_by: User,
    file: Any = None,
    stream: Iterable[bytes | str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> AttackImportResult:
    """Import production exchanges as pending ``wild`` attacks into ``queue`` (see the module docstring).

    ``file``: a path, an uploaded file or an open binary file; or ``stream``: chunks of JSONL.
    ``on_progress(done, total)`` is told after each line is written. Only admins import (403);
    ``queue`` must be a red-team review queue (400, field ``queue``). A bad file raises
    ``ImportFailed`` (400) listing every line error, and nothing is written; a concurrent import
    of the same rows makes it a Conflict (409), with nothing written.
    """
    if not getattr(imported_by, "is_admin_role", False):
        raise ApplicationError("Only admins may import attacks.", status_code=403)
    if queue.kind != Queue.Kind.REDTEAM:
        raise ApplicationError(f"queue: '{queue.name}' is not a red-team review queue", field="queue")
    errors = ErrorCollector()
    if file is None and stream is None:
        raise file_error("missing: give the file to import")
    if isinstance(file, str | Path):
        with open(file, "rb") as fh:
            records = parse_rows(read_jsonl(iter_chunks(fh), errors), wild_line_parse, errors)
    else:
        chunks = iter_chunks(file) if file is not None else stream
        assert chunks is not None
        records = parse_rows(read_jsonl(chunks, errors), wild_line_parse, errors)
    errors.raise_if_any()
    try:
        with transaction.atomic():
            return _attacks_write(
                [r for _, r in records], queue=queue, imported_by=imported_by, on_progress=on_progress
            )
    except IntegrityError:
        raise Conflict(
            "another import wrote some of the same rows at the same time; nothing was imported, run it again"
        )


def _attacks_write(
    records: list[WildRecord],
    *,
    queue: Queue,
    imported_by: User,
    on_progress: Callable[[int, int], None] | None,
) -> AttackImportResult:
    # The exchanges already imported from the wild, by (prompt hash, reply text).
    hashes = {r.content_hash for r in records}
    known: dict[tuple[str, str], Attack] = {}
    stored = (
        Attack.objects.filter(source=Attack.Source.WILD, prompt__content_hash__in=hashes, reply__isnull=False)
        .select_related("prompt", "reply")
        .order_by("id")
    )
    for found in stored:
        assert found.reply is not None
        known.setdefault((found.prompt.content_hash, found.reply.text), found)
    new: dict[tuple[str, str], WildRecord] = {}
    for record in records:
        key = (record.content_hash, record.reply)
        if key not in known:
            new.setdefault(key, record)
    # Prompts, generators and replies in bulk, as the responses import writes them (a prompt or a
    # reply already stored is reused), then one attack per new exchange.
    replies = _replies_write(list(new.values()))
    for done, (key, record) in enumerate(new.items(), start=1):
        reply = replies[done - 1]
        reason = record.feedback.get("report_reason", "")
        known[key] = attack_create(
            queue=queue,
            source=Attack.Source.WILD,
            prompt=reply.prompt,
            reply=reply,
            family=record.family,
            author=imported_by,
            description=f"Reported by a user: {reason}" if reason else "",
            feedback=record.feedback,
            prescreen_floor=record.prescreen_floor,
        )
        if on_progress is not None:
            on_progress(done, len(new))
    attacks = [known[(r.content_hash, r.reply)] for r in records]
    return AttackImportResult(created=len(new), existing=len(records) - len(new), attacks=attacks)


def _replies_write(records: list[WildRecord]) -> list[Candidate]:
    """The reply Candidate of each record (in order), prompts and generators created as needed."""
    if not records:
        return []
    lines = [
        (
            n,
            CandidateRecord(
                text=r.reply,
                generator=r.generator_name,
                prompt=PromptRecord(messages=r.prompt, tags=[WILD_TAG]),
            ),
        )
        for n, r in enumerate(records, start=1)
    ]
    errors = ErrorCollector()
    plan = candidates_resolve(lines, errors, prompt_source=Prompt.Source.REDTEAM)
    errors.raise_if_any()  # the lines were checked: nothing here can fail but a concurrent write
    return plan.save().candidates
