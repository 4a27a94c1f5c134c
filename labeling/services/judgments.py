"""Recording judgments: the answers are checked here; the assignment's move to SUBMITTED and
the item's counters are ``labeling.services.assignments``' (``assignment_submit``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from comparisons.models import Candidate
from labeling.errors import ApplicationError, column_check
from labeling.models import Assignment, ContentCategory, Criterion, Judgment, Queue, Rubric
from labeling.selectors.assignments import LABELS
from labeling.selectors.content_warnings import CONTENT_WARNING_PREFIX
from labeling.selectors.queues import rubric_criteria
from labeling.services.adaptive import queue_reprioritize
from labeling.services.assignments import HUMAN_GENERATOR_NAME, assignment_submit
from labeling.services.pauses import rater_queue_pause_check
from labeling.services.sessions import turn_keep_ranked
from model_runner.models import Generator

# ----------------------------------------------------------------------------- judgments

#: "Both are bad": a tie (preference 0) on a pair, with this flag.
BOTH_BAD_FLAG = "both_bad"
#: The longest texts a judgment keeps: longer ones are refused, never cut.
MAX_RATIONALE = 20000
MAX_REWRITE = 50000
MAX_TEXT_ANSWER = 10000


def judgment_flags_allowed(rubric: Rubric) -> list[str]:
    """The flag names a judgment under ``rubric`` may carry: ``both_bad``, ``cw:<category>`` for
    each content category (a content warning for later raters), and the keys of the rubric's
    flag criteria."""
    flag_keys = [c.key for c in rubric_criteria(rubric) if c.kind == Criterion.Kind.FLAG]
    categories = [f"{CONTENT_WARNING_PREFIX}{category}" for category in ContentCategory.values]
    return [BOTH_BAD_FLAG, *categories, *flag_keys]


def _validate_preference(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -3 <= value <= 3:
        raise ApplicationError(
            f"{field}: must be an integer from -3 (A much better) to 3 (B much better)", field=field
        )
    return value


def _validate_ranking(value: Any, labels: list[str]) -> list[list[str]]:
    shape = 'ranking: must be a list of groups of labels, best first, like [["A"], ["C", "B"]]'
    if not isinstance(value, list) or not value:
        raise ApplicationError(shape, field="ranking")
    for i, group in enumerate(value):
        if not isinstance(group, list) or not group or not all(isinstance(label, str) for label in group):
            raise ApplicationError(
                f"ranking[{i}]: must be a non-empty list of labels ({', '.join(labels)})", field="ranking"
            )
    flat = [label for group in value for label in group]
    if sorted(flat) != sorted(labels) or len(set(flat)) != len(flat):
        raise ApplicationError(
            f"ranking: must place each of {', '.join(labels)} exactly once", field="ranking"
        )
    return value


def _validate_likert(value: Any, field: str, labels: list[str], *, required: bool) -> dict[str, int]:
    """Scores 1..7 by response label. A required Likert criterion scores every response; an
    optional one may score some of them (or, left out, none)."""
    if not isinstance(value, dict) or set(value) - set(labels):
        raise ApplicationError(
            f"{field}: must map response labels ({', '.join(labels)}) to 1..7", field=field
        )
    for label in labels:
        score = value.get(label)
        if score is None:
            if required:
                raise ApplicationError(
                    f"{field}.{label}: required: this Likert criterion scores every response (1..7)",
                    field=f"{field}.{label}",
                )
            continue
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 7:
            raise ApplicationError(f"{field}.{label}: must be an integer 1..7", field=f"{field}.{label}")
    return {label: value[label] for label in labels if value.get(label) is not None}


def _validate_criteria(rubric: Rubric, answers: Any, labels: list[str]) -> dict[str, Any]:
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        raise ApplicationError("criteria: must be an object keyed by criterion", field="criteria")
    criteria = {c.key: c for c in rubric_criteria(rubric)}
    for key in answers:
        if key not in criteria:
            raise ApplicationError(
                f"criteria.{key}: not in rubric {rubric} (its criteria: {', '.join(criteria) or 'none'})",
                field=f"criteria.{key}",
            )
    clean: dict[str, Any] = {}
    for key, criterion in criteria.items():
        field = f"criteria.{key}"
        value = answers.get(key)
        if value is None or value == "" or value == {}:
            if criterion.required:
                raise ApplicationError(f"{field}: required ({criterion.question})", field=field)
            continue
        if criterion.kind == Criterion.Kind.PREFERENCE:
            clean[key] = _validate_preference(value, field)
        elif criterion.kind == Criterion.Kind.LIKERT:
            clean[key] = _validate_likert(value, field, labels, required=criterion.required)
        elif criterion.kind == Criterion.Kind.FLAG:
            if not isinstance(value, bool):
                raise ApplicationError(f"{field}: must be true or false", field=field)
            clean[key] = value
        else:
            if not isinstance(value, str):
                raise ApplicationError(f"{field}: must be text", field=field)
            clean[key] = _text(value, field, MAX_TEXT_ANSWER)
    return clean


def _validate_flags(flags: Any, *, rubric: Rubric, preference: int | None) -> list[str]:
    """The flags, each one of ``judgment_flags_allowed``, sorted without repeats; ``both_bad``
    only with a tie on a pair."""
    if flags is None:
        return []
    if not isinstance(flags, list) or not all(isinstance(f, str) and f for f in flags):
        raise ApplicationError("flags: must be a list of flag names", field="flags")
    if not flags:
        return []
    allowed = judgment_flags_allowed(rubric)  # the criteria are cached once the rubric is frozen
    for i, flag in enumerate(flags):
        if flag not in allowed:
            shown = flag if len(flag) <= 40 else flag[:40] + "..."
            raise ApplicationError(
                f"flags[{i}]: unknown flag {shown!r} (allowed: {', '.join(allowed)})", field=f"flags[{i}]"
            )
    if BOTH_BAD_FLAG in flags and preference != 0:
        raise ApplicationError(
            f"flags: {BOTH_BAD_FLAG} goes with a tie on a pair (preference 0)", field="flags"
        )
    return sorted(set(flags))


def _text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ApplicationError(f"{field}: must be text", field=field)
    if len(value) > limit:
        raise ApplicationError(f"{field}: at most {limit} characters (this has {len(value)})", field=field)
    return column_check(Judgment._meta.get_field("rationale"), value, name=field)


def judgment_submit(
    *,
    assignment: Assignment,
    preference: Any = None,
    ranking: Any = None,
    criteria: Any = None,
    flags: Any = None,
    rationale: str = "",
    rewrite: str = "",
    active_seconds: float | None = None,
    now: datetime | None = None,
) -> tuple[Judgment, bool]:
    """Record the rater's judgment. Returns (judgment, created).

    Idempotent: a double click, retry or replay returns the stored judgment with created=False.
    A lease that ran out is still accepted while the item has room (its slot is taken again);
    otherwise it is refused with a Conflict and nothing is written. A ``rewrite`` ("write a
    better response") is also stored as a human-written candidate, in the same transaction.
    """
    now = now or timezone.now()
    queue = assignment.item.queue
    labels = list(LABELS[: len(assignment.shown_order)])
    if assignment.status == Assignment.Status.SUBMITTED:
        # A replay: answer with what is stored, whatever this request carries.
        existing = Judgment.objects.filter(assignment=assignment).first()
        if existing is not None:
            return existing, False
    if queue.kind == Queue.Kind.PAIRWISE:
        if preference is None:
            raise ApplicationError("preference: required for a pairwise item (-3..3)", field="preference")
        preference = _validate_preference(preference, "preference")
        ranking = None
    else:
        if ranking is None:
            raise ApplicationError("ranking: required for a ranking item", field="ranking")
        ranking = _validate_ranking(ranking, labels)
        preference = None
    clean_criteria = _validate_criteria(queue.rubric, criteria, labels)
    clean_flags = _validate_flags(flags, rubric=queue.rubric, preference=preference)
    rationale = _text(rationale or "", "rationale", MAX_RATIONALE)
    rewrite = _text(rewrite or "", "rewrite", MAX_REWRITE)
    active_seconds = column_check(Judgment._meta.get_field("active_seconds"), active_seconds, low=0)

    judgment = Judgment(
        assignment=assignment,
        rubric=queue.rubric,
        preference=preference,
        ranking=ranking,
        criteria=clean_criteria,
        flags=clean_flags,
        rationale=rationale,
        rewrite=rewrite,
        active_seconds=active_seconds,
    )
    try:
        with transaction.atomic():
            stored = assignment_submit(judgment=judgment, queue=queue, now=now)
            if stored is not judgment:
                return stored, False  # a concurrent double click got here first
            if not queue.rubric.frozen:
                Rubric.objects.filter(pk=queue.rubric_id).update(frozen=True)
            if assignment.item.is_gold and queue.gold_min_accuracy is not None:
                # The rater's gold evidence changed: the one place a pause is decided.
                rater_queue_pause_check(queue=queue, rater_id=assignment.rater_id, now=now)
            written = candidate_create_from_rewrite(judgment=judgment) if judgment.rewrite.strip() else None
            if queue.kind == Queue.Kind.CONVERSATION:
                # A conversation goes on with the trainer's better reply or the top-ranked one.
                turn_keep_ranked(assignment=assignment, judgment=judgment, rewrite=written)
            if queue.pairing == Queue.Pairing.ADAPTIVE:
                prompt_id = assignment.item.comparison.prompt_id
                transaction.on_commit(lambda: queue_reprioritize(queue=queue, prompt_ids=[prompt_id]))
    except IntegrityError:
        # A concurrent replay won the race on the one-to-one key: return what it stored.
        return Judgment.objects.get(assignment=assignment), False
    return judgment, True


def _human_generator() -> Generator:
    generator, _ = Generator.objects.get_or_create(
        name=HUMAN_GENERATOR_NAME, defaults={"backend": Generator.Backend.HUMAN}
    )
    return generator


def candidate_create_from_rewrite(*, judgment: Judgment) -> Candidate | None:
    """Store a judgment's "write a better response" text as a human-written candidate.

    The candidate belongs to the item's prompt, is authored by the rater, comes from the ``human``
    generator and uses the judgment's id as its sample index, so one judgment stores at most one
    (a replay finds the existing row). It joins no comparison here: the rater never sees it in
    their blind view; pairing it against model responses is a later queue's decision.
    """
    text = (judgment.rewrite or "").strip()
    if not text:
        return None
    assignment = judgment.assignment
    candidate, _ = Candidate.objects.get_or_create(
        prompt_id=assignment.item.comparison.prompt_id,
        generator=_human_generator(),
        sample_index=judgment.pk,
        defaults={
            "text": text,
            "author_id": assignment.rater_id,
            "finish_reason": Candidate.FinishReason.HUMAN,
        },
    )
    return candidate
