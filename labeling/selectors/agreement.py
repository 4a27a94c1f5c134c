"""Inter-rater agreement of a queue, per criterion: percent agreement, Cohen's kappa, Fleiss'
kappa and Krippendorff's alpha, each with its number of items and a bootstrap 95% interval.

What is measured (gold items left out: their answer is known, they test raters, not the data):

- ``overall``: the pairwise preference -3..3 re-expressed in the comparison's stored order, one
  unit per item; ordinal.
- ``overall_direction``: which response is better, or a tie (the sign of the preference); nominal.
- each ``preference`` criterion: as ``overall``, ordinal;
- each ``likert`` criterion: the 1..7 score of each response, one unit per (item, response); ordinal;
- each ``flag`` criterion: ticked or not (an answer of false, or a flag missing from a judgment
  that answered the criterion, is "not ticked"; a judgment with no answer is left out); nominal.

Preferences come from pairs only (a K-way ranking has no -3..3 answer). Only the compact fields
each judgment needs are loaded, never model instances. A pairwise queue is measured on numpy
arrays (``stats_facts``; each distinct criteria text decoded once; the patterns counted with
``np.bincount``), a ranking queue row by row (``_collect``); both give the same figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from labeling.models import Criterion, Judgment, Queue
from labeling.selectors.agreement_math import (
    BOOTSTRAP_ROUNDS,
    BOOTSTRAP_SEED,
    NO_ITEMS,
    Level,
    Patterns,
    agreement_figures,
    patterns_from_units,
)
from labeling.selectors.assignments import LABELS
from labeling.selectors.quality import comparison_orders, preference_in_positions
from labeling.selectors.queues import rubric_criteria
from labeling.selectors.stats_facts import JudgmentFacts, judgment_facts

#: How each kind of answer is measured: (categories, Krippendorff level).
SCALES: dict[str, tuple[int, Level]] = {
    "overall": (7, "ordinal"),
    "overall_direction": (3, "nominal"),
    Criterion.Kind.PREFERENCE: (7, "ordinal"),
    Criterion.Kind.LIKERT: (7, "ordinal"),
    Criterion.Kind.FLAG: (2, "nominal"),
}

# (unit, rater, category index) triples, by measure key.
Answers = dict[str, list[tuple[Any, int, int]]]


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def _collect(queue: Queue, criteria: list[Criterion]) -> Answers:
    rows = list(
        Judgment.objects.filter(assignment__item__queue=queue, assignment__item__is_gold=False).values_list(
            "assignment__item_id",
            "assignment__item__comparison_id",
            "assignment__rater_id",
            "assignment__shown_order",
            "preference",
            "criteria",
            "flags",
        )
    )
    orders = comparison_orders([row[1] for row in rows])
    answers: Answers = defaultdict(list)
    for item_id, comparison_id, rater_id, shown, preference, given, flags in rows:
        canonical = orders.get(comparison_id, [])
        pair = len(canonical) == 2 and len(shown) == 2
        given = given or {}
        if pair and preference is not None:
            p = preference_in_positions(preference=preference, shown_order=shown, canonical=canonical)
            answers["overall"].append((item_id, rater_id, p + 3))
            answers["overall_direction"].append((item_id, rater_id, _sign(p) + 1))
        for criterion in criteria:
            value = given.get(criterion.key)
            if criterion.kind == Criterion.Kind.PREFERENCE and pair and isinstance(value, int):
                p = preference_in_positions(preference=value, shown_order=shown, canonical=canonical)
                answers[f"criterion:{criterion.key}"].append((item_id, rater_id, p + 3))
            elif criterion.kind == Criterion.Kind.LIKERT and isinstance(value, dict):
                for label, score in value.items():
                    index = LABELS.find(label)
                    if 0 <= index < len(shown) and isinstance(score, int):
                        answers[f"criterion:{criterion.key}"].append(
                            ((item_id, shown[index]), rater_id, score - 1)
                        )
            elif criterion.kind == Criterion.Kind.FLAG and (
                isinstance(value, bool) or criterion.key in (flags or [])
            ):
                ticked = value is True or criterion.key in (flags or [])
                answers[f"criterion:{criterion.key}"].append((item_id, rater_id, int(ticked)))
    return answers


def measure_agreement(
    triples: Iterable[tuple[Any, int, int]], *, n_categories: int, level: Level
) -> dict[str, Any]:
    """All four figures for (unit, rater, category index) triples; units answered by fewer than
    two raters carry no agreement and are left out."""
    by_unit: dict[Any, list[tuple[int, int]]] = defaultdict(list)
    for unit, rater, category in triples:
        by_unit[unit].append((rater, category))
    units = [answers for answers in by_unit.values() if len(answers) >= 2]
    raters = sorted({rater for answers in units for rater, _ in answers})
    if not units:
        cohen_reason: str | None = NO_ITEMS
    elif len(raters) != 2:
        cohen_reason = (
            f"{len(raters)} raters answered these items; Cohen's kappa compares exactly two "
            "(Fleiss' kappa and Krippendorff's alpha take any number)"
        )
    else:
        cohen_reason = None
    two = (raters[0], raters[1]) if cohen_reason is None else None
    patterns = patterns_from_units(units, n_categories=n_categories, two_raters=two)
    return agreement_figures(patterns, level=level, cohen_reason=cohen_reason)


# (unit, rater, category index) arrays, by measure key: the fast path's answers.
ArrayAnswers = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _criteria_pairs(criteria: list[Criterion]) -> list[tuple[str, str]]:
    return [(c.key, str(c.kind)) for c in criteria]


def _collect_pairs(queue: Queue, criteria: list[Criterion], facts: JudgmentFacts) -> ArrayAnswers:
    """``_collect`` for a pairwise queue, on arrays: the overall answers and each criterion's
    (read from the JSON by the database, ``stats_facts.answer_columns``) from ``facts``."""
    if criteria and facts.answers is None:
        facts = judgment_facts(queue=queue, criteria=_criteria_pairs(criteria))
    real = ~facts.gold & ~np.isnan(facts.swapped)
    item, rater = facts.item[real], facts.rater[real]
    swapped = facts.swapped[real] == 1
    answers: ArrayAnswers = {}
    preference = facts.canonical_preference()[real]
    has = ~np.isnan(preference)
    p = preference[has].astype(np.int64)
    answers["overall"] = (item[has], rater[has], p + 3)
    answers["overall_direction"] = (item[has], rater[has], np.sign(p) + 1)
    given = facts.answers or {}
    for criterion in criteria:
        key = criterion.key
        if criterion.kind == Criterion.Kind.LIKERT:
            a, b = given[f"{key}:A"][real], given[f"{key}:B"][real]
            # Label A is the stored first response unless the pair was shown swapped.
            first, second = np.where(swapped, b, a), np.where(swapped, a, b)
            units = np.concatenate([item * 2, item * 2 + 1])
            raters = np.concatenate([rater, rater])
            categories = np.concatenate([first, second]) - 1
        elif criterion.kind == Criterion.Kind.PREFERENCE:
            value = given[key][real]
            units, raters, categories = item, rater, np.where(swapped, -value, value) + 3
        else:
            units, raters, categories = item, rater, given[key][real]
        n_categories = SCALES[criterion.kind][0]
        found = ~np.isnan(categories) & (categories >= 0) & (categories < n_categories)
        answers[f"criterion:{key}"] = (units[found], raters[found], categories[found].astype(np.int64))
    return answers


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_counts=True)``, faster: each row (small counts) read as
    one number in base max + 1, so the same rows in the same (lexicographic) order."""
    base = int(rows.max()) + 1
    if base ** rows.shape[1] >= 2**62:
        return np.unique(rows, axis=0, return_counts=True)
    place = base ** np.arange(rows.shape[1] - 1, -1, -1, dtype=np.int64)
    keys, weights = np.unique(rows.astype(np.int64) @ place, return_counts=True)
    return (keys[:, None] // place) % base, weights


def _unique_inverse(values: np.ndarray) -> tuple[int, np.ndarray]:
    """How many distinct values, and each value's index among them in sorted order: what
    ``np.unique(values, return_inverse=True)`` gives, counted in one pass over the values' range
    when it is not much wider than their number (ids: items, raters), without sorting."""
    if not len(values):
        return 0, np.zeros(0, dtype=np.int64)
    low, high = int(values.min()), int(values.max())
    if high - low > 4 * len(values) + 1_000_000:
        distinct, inverse = np.unique(values, return_inverse=True)
        return len(distinct), inverse
    shifted = values.astype(np.int64) - low
    present = np.bincount(shifted, minlength=high - low + 1) > 0
    rank = np.cumsum(present) - 1
    return int(rank[-1]) + 1, rank[shifted]


def measure_agreement_arrays(
    units: np.ndarray, raters: np.ndarray, categories: np.ndarray, *, n_categories: int, level: Level
) -> dict[str, Any]:
    """``measure_agreement`` on arrays: the patterns counted with numpy (two raters: as before)."""
    n_units, unit = _unique_inverse(units)
    answered = np.bincount(unit, minlength=n_units)
    keep = answered[unit] >= 2
    if _unique_inverse(raters[keep])[0] == 2:
        triples = zip(units[keep].tolist(), raters[keep].tolist(), categories[keep].tolist(), strict=True)
        return measure_agreement(triples, n_categories=n_categories, level=level)
    if not keep.any():
        return measure_agreement([], n_categories=n_categories, level=level)
    n_kept, kept_unit = _unique_inverse(unit[keep])
    rows = np.bincount(kept_unit * n_categories + categories[keep], minlength=n_kept * n_categories).reshape(
        -1, n_categories
    )
    unique, weights = _unique_rows(rows)
    patterns = Patterns(counts=unique.astype(float), weights=weights.astype(float), pairs=None)
    count = _unique_inverse(raters[keep])[0]
    reason = (
        f"{count} raters answered these items; Cohen's kappa compares exactly two "
        "(Fleiss' kappa and Krippendorff's alpha take any number)"
    )
    return agreement_figures(patterns, level=level, cohen_reason=reason)


def measured_criteria(queue: Queue) -> list[Criterion]:
    """The rubric's criteria that have an agreement (preference, likert, flag), in order."""
    kinds = (Criterion.Kind.PREFERENCE, Criterion.Kind.LIKERT, Criterion.Kind.FLAG)
    return [c for c in rubric_criteria(queue.rubric) if c.kind in kinds]


def queue_agreement(*, queue: Queue, facts: JudgmentFacts | None = None) -> dict[str, Any]:
    """Agreement per measure (see the module docstring), in rubric order after the overall ones.
    A pairwise queue is measured on arrays (``facts``: its judgments, read if not given)."""
    criteria = measured_criteria(queue)
    if queue.kind == Queue.Kind.PAIRWISE:
        arrays = _collect_pairs(queue, criteria, facts or judgment_facts(queue=queue))
        return _measures(
            criteria,
            lambda key, n, level: (
                measure_agreement_arrays(*arrays[key], n_categories=n, level=level)
                if key in arrays
                else measure_agreement([], n_categories=n, level=level)
            ),
        )
    answers = _collect(queue, criteria)
    return _measures(
        criteria, lambda key, n, level: measure_agreement(answers.get(key, []), n_categories=n, level=level)
    )


def _measures(
    criteria: list[Criterion], measure: Callable[[str, int, Level], dict[str, Any]]
) -> dict[str, Any]:
    measures: list[tuple[str, str, str]] = [
        ("overall", "overall", "Overall preference (-3..3)"),
        ("overall_direction", "overall_direction", "Overall: which is better, or a tie"),
    ]
    measures += [(c.key, c.kind, c.question) for c in criteria]
    out = []
    for i, (key, kind, question) in enumerate(measures):
        n_categories, level = SCALES[kind]
        figures = measure(key if i < 2 else f"criterion:{key}", n_categories, level)
        out.append({"key": key, "kind": kind, "question": question, "level": level, **figures})
    return {"bootstrap_rounds": BOOTSTRAP_ROUNDS, "bootstrap_seed": BOOTSTRAP_SEED, "criteria": out}
