"""Seed benchmark data into PostgreSQL fast, with COPY: prompts, candidates, pairwise comparisons,
queue items, submitted assignments and their judgments. Shared by ``manage.py bench_export`` and
``manage.py bench_stats`` (each with its own name prefix and shape, ``SeedPlan``).

Every row is written in one transaction (nothing half-seeded); the counters (``QueueItem.claimed``,
``judged``) match the rows. Run only against a database of its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from comparisons.models import Candidate, Comparison, ComparisonCandidate, Prompt, messages_hash
from labeling.models import Assignment, Criterion, Judgment, Queue, QueueItem, Rubric, User
from model_runner.models import Generator

TABLES: tuple[type[models.Model], ...] = (
    Prompt,
    Candidate,
    Comparison,
    ComparisonCandidate,
    QueueItem,
    Assignment,
    Judgment,
)


def _cycled_preference(n: int, item: int, rater: int) -> int:
    return (-3, -2, -1, 1, 2, 3, 0)[n % 7]


@dataclass(frozen=True)
class SeedPlan:
    """What to seed. ``queue_items``: items per queue, the queues named ``{prefix}-a``, ``-b``, ...;
    each item is judged by ``overlap`` of the ``raters`` raters. ``preference(n, item, rater)``
    gives judgment n's preference; ``judgment_extra(n, item, rater)`` any more columns (criteria,
    flags); ``criteria`` are (key, kind) pairs added to the rubric. Candidates of an item come from
    two different generators of ``generators`` (one: the same generator)."""

    prefix: str
    queue_items: tuple[int, ...]
    overlap: int
    raters: int
    generators: int = 1
    criteria: tuple[tuple[str, str], ...] = ()
    preference: Callable[[int, int, int], int] = _cycled_preference
    judgment_extra: Callable[[int, int, int], dict[str, Any]] | None = None
    progress: Callable[[str], None] = field(default=lambda message: None)

    @property
    def judgments(self) -> int:
        return sum(self.queue_items) * self.overlap


def stderr_progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def seeded_judgments(prefix: str) -> dict[str, int]:
    """Judgments per queue already seeded under ``prefix`` (queue name -> count)."""
    names = Queue.objects.filter(name__startswith=prefix).values_list("name", flat=True)
    return {
        name: Judgment.objects.filter(assignment__item__queue__name=name).count() for name in sorted(names)
    }


def seed_is_current(plan: SeedPlan) -> bool:
    """The database holds exactly what ``plan`` would seed (judgments per queue)."""
    wanted = {_queue_name(plan.prefix, q): n * plan.overlap for q, n in enumerate(plan.queue_items)}
    return seeded_judgments(plan.prefix) == wanted


def _queue_name(prefix: str, index: int) -> str:
    return f"{prefix}-{chr(ord('a') + index)}"


def seed_drop(prefix: str) -> None:
    """Delete everything seeded under ``prefix``."""
    prompts = Prompt.objects.filter(external_id__startswith=f"{prefix}-")
    with transaction.atomic():
        Judgment.objects.filter(assignment__item__queue__name__startswith=prefix).delete()
        Queue.objects.filter(name__startswith=prefix).delete()
        Comparison.objects.filter(prompt__in=prompts).delete()
        Candidate.objects.filter(prompt__in=prompts).delete()
        prompts.delete()
        Generator.objects.filter(name__startswith=prefix).delete()
        Rubric.objects.filter(name__startswith=prefix).delete()
        User.objects.filter(username__startswith=prefix).delete()


def seed(plan: SeedPlan) -> None:
    """Drop what ``plan.prefix`` seeded before and seed ``plan`` anew."""
    prefix, overlap = plan.prefix, plan.overlap
    if plan.raters < overlap:
        raise ValueError(f"raters: at least overlap ({overlap}) raters are needed")
    seed_drop(prefix)
    now = timezone.now()
    rubric = Rubric.objects.create(name=f"{prefix}-rubric", frozen=True)
    for position, (key, kind) in enumerate(plan.criteria):
        Criterion.objects.create(rubric=rubric, key=key, question=f"{key}?", kind=kind, position=position)
    queues = [
        Queue.objects.create(name=_queue_name(prefix, q), rubric=rubric, overlap=overlap)
        for q in range(len(plan.queue_items))
    ]
    generators = [
        Generator.objects.create(name=f"{prefix}-generator-{g}", backend=Generator.Backend.IMPORTED)
        for g in range(plan.generators)
    ]
    raters = User.objects.bulk_create(
        User(username=f"{prefix}-rater-{i}", role=User.Role.RATER, password="!") for i in range(plan.raters)
    )
    rater_ids = [u.pk for u in raters]
    items = sum(plan.queue_items)
    item_queue: list[int] = []
    for queue, n in zip(queues, plan.queue_items, strict=True):
        item_queue += [queue.pk] * n
    base = {model: _next_id(model) for model in (Prompt, Candidate, Comparison, QueueItem, Assignment)}
    g = len(generators)

    def generator_of(i: int, s: int) -> int:
        if s == 0 or g == 1:
            return generators[i % g].pk
        return generators[(i % g + 1 + (i // g) % (g - 1)) % g].pk

    def prompt_rows() -> Iterator[dict[str, Any]]:
        for i in range(items):
            messages = [
                {"role": "user", "content": f"Bench question {i}: explain item {i} in two sentences."}
            ]
            yield {
                "id": base[Prompt] + i,
                "external_id": f"{prefix}-{i}",
                "messages": json.dumps(messages),
                "content_hash": messages_hash(messages),
            }

    def candidate_rows() -> Iterator[dict[str, Any]]:
        for i in range(items):
            for s in range(2):
                yield {
                    "id": base[Candidate] + 2 * i + s,
                    "prompt_id": base[Prompt] + i,
                    "generator_id": generator_of(i, s),
                    "sample_index": s,
                    "text": f"Answer {s} to bench question {i}. "
                    + "It has a few more words to be realistic. " * 3,
                }

    def comparison_rows() -> Iterator[dict[str, Any]]:
        for i in range(items):
            c = base[Candidate] + 2 * i
            yield {
                "id": base[Comparison] + i,
                "prompt_id": base[Prompt] + i,
                "size": 2,
                "candidate_key": f"{c},{c + 1}",
            }

    def member_rows() -> Iterator[dict[str, Any]]:
        for i in range(items):
            for s in range(2):
                yield {
                    "comparison_id": base[Comparison] + i,
                    "candidate_id": base[Candidate] + 2 * i + s,
                    "position": s,
                }

    def item_rows() -> Iterator[dict[str, Any]]:
        for i in range(items):
            yield {
                "id": base[QueueItem] + i,
                "queue_id": item_queue[i],
                "comparison_id": base[Comparison] + i,
                "claimed": overlap,
                "judged": overlap,
            }

    def assignment_rows() -> Iterator[dict[str, Any]]:
        expires = now + timedelta(minutes=15)
        for i in range(items):
            c = base[Candidate] + 2 * i
            for r in range(overlap):
                shown = [c, c + 1] if (i + r) % 2 == 0 else [c + 1, c]
                yield {
                    "id": base[Assignment] + i * overlap + r,
                    "item_id": base[QueueItem] + i,
                    "rater_id": rater_ids[(i * overlap + r) % len(rater_ids)],
                    "status": Assignment.Status.SUBMITTED,
                    "shown_order": json.dumps(shown),
                    "expires_at": expires,
                }

    def judgment_rows() -> Iterator[dict[str, Any]]:
        for n in range(items * overlap):
            i, rater = divmod(n, overlap)
            row = {
                "assignment_id": base[Assignment] + n,
                "rubric_id": rubric.pk,
                "preference": plan.preference(n, i, rater),
                "active_seconds": 10.0 + n % 50,
            }
            if plan.judgment_extra is not None:
                row |= plan.judgment_extra(n, i, rater)
            yield row

    with transaction.atomic():
        for model, rows in zip(
            TABLES,
            (
                prompt_rows(),
                candidate_rows(),
                comparison_rows(),
                member_rows(),
                item_rows(),
                assignment_rows(),
                judgment_rows(),
            ),
            strict=True,
        ):
            plan.progress(f"seeding {model._meta.db_table} ...")
            _copy(model, rows, now=now)
        _reset_sequences()
    with connection.cursor() as cursor:
        for model in TABLES:
            plan.progress(f"analyzing {model._meta.db_table} ...")
            cursor.execute(f'ANALYZE "{model._meta.db_table}"')


def _next_id(model: type[models.Model]) -> int:
    last = model._default_manager.aggregate(m=models.Max("pk"))["m"]
    return (last or 0) + 1


def _copy(model: type[models.Model], rows: Iterator[dict[str, Any]], *, now: Any) -> None:
    """COPY rows into the model's table; columns not given get the field's default (JSON as text)."""
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.name != "id")]
    first = next(rows, None)
    if first is None:
        return
    given = [f for f in fields if f.attname in first or f.name in first]
    defaults: dict[str, Any] = {}
    for f in fields:
        if f in given:
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            defaults[str(f.column)] = now
        elif f.primary_key:
            continue
        elif f.has_default() or not f.null:
            value = f.get_default()
            defaults[str(f.column)] = json.dumps(value) if isinstance(f, models.JSONField) else value
        else:
            defaults[str(f.column)] = None
    columns = [f.column for f in given] + list(defaults)
    keys = [f.attname if f.attname in first else f.name for f in given]
    constant = tuple(defaults.values())
    column_sql = ", ".join(f'"{c}"' for c in columns)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f'COPY "{model._meta.db_table}" ({column_sql}) FROM STDIN') as copy:
            for row in _chain(first, rows):
                copy.write_row(tuple(row[k] for k in keys) + constant)


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def _reset_sequences() -> None:
    from django.core.management.color import no_style

    sql = connection.ops.sequence_reset_sql(no_style(), list(TABLES))
    with connection.cursor() as cursor:
        for statement in sql:
            cursor.execute(statement)
