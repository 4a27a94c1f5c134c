"""The model leaderboard: Bradley-Terry scores of generators from every pairwise outcome raters
gave, overall, per queue or per prompt tag. ``/manage/leaderboard/`` and
``GET /api/v1/leaderboard/`` take the same parameters (``leaderboard_params_clean``) and show the
same numbers (``leaderboard``).

Battles: a pairwise judgment is one battle between the generators of its two candidates
(``preference`` in the labels the rater saw, mapped through ``Assignment.shown_order``; negative
= A better, 0 = a tie). A ranking of K labels is its K-choose-2 pairs: a label in an earlier group
beats one in a later group, two labels in one group tie. A battle between two candidates of the
same generator says nothing about generators and is left out, and so are human-written
candidates (generator backend ``human``) unless ``include_human``.

Pairwise judgments are counted by the database (joined to their comparison's two candidates,
GROUP BY the two generators, which one was shown as A, and the preference's sign), so a million
of them come back as a few rows; rankings are read once as text, counted by (ranking, generators
in the order shown) and expanded here. The fit and the bootstrap run on the counts
(``labeling.bradley_terry``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    Count,
    F,
    FilteredRelation,
    Func,
    IntegerField,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from comparisons.models import ComparisonCandidate
from labeling import bradley_terry
from labeling.errors import ApplicationError, decimal_int, id_or_none
from labeling.models import Judgment, Queue
from labeling.selectors.assignments import LABELS
from model_runner.models import Generator

#: Bootstrap rounds: Chatbot Arena's 100 by default, at most MAX_ROUNDS.
ROUNDS, MAX_ROUNDS = 100, 1000
#: Virtual ties per generator, spread over the others: keeps a generator that never lost (or
#: never won) at a finite score; against thousands of battles it moves scores by a fraction of a point.
PRIOR_TIES = 1.0
TRUE_WORDS, FALSE_WORDS = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}
MAX_TAG_LENGTH = 200
METHOD = {
    "model": "Bradley-Terry: P(i beats j) = 1 / (1 + 10 ** ((score_j - score_i) / 400))",
    "fit": "maximum likelihood, by Newman's (2023) iteration of Zermelo's equations",
    "scale": "400 points per factor of 10 in odds; scores average 1000",
    "ties": "half a win for each side",
    "rankings": "each ranking of K responses counts as its K*(K-1)/2 pairs",
    "prior_ties": PRIOR_TIES,
    "interval": "2.5 and 97.5 percentiles of the scores refitted on battles resampled with replacement",
}


@dataclass(frozen=True)
class LeaderboardParams:
    queue: Queue | None = None
    tag: str | None = None
    rounds: int = ROUNDS
    include_human: bool = False
    seed: int = 0


def _bool(value: str, field: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ApplicationError(f"{field}: write true or false", field=field)


def _int(value: str, field: str, low: int, high: int) -> int:
    number = decimal_int(value.strip())
    if number is None or not low <= number <= high:
        raise ApplicationError(f"{field}: write a whole number from {low} to {high}", field=field)
    return number


def leaderboard_params_clean(params: Mapping[str, Any]) -> LeaderboardParams:
    """The query parameters, checked: ``queue`` (id), ``tag``, ``rounds`` (100..1000),
    ``include_human`` (true/false), ``seed``. Raises ApplicationError naming a bad one."""
    raw = {name: str(params.get(name) or "") for name in ("queue", "tag", "rounds", "include_human", "seed")}
    queue = None
    if raw["queue"].strip():
        pk = id_or_none(raw["queue"].strip(), Queue._meta.pk)
        queue = Queue.objects.filter(pk=pk).first() if pk is not None else None
        if queue is None:
            raise ApplicationError(f"queue: no queue has the id {raw['queue'].strip()[:20]!r}", field="queue")
    tag = raw["tag"].strip() or None
    if tag is not None and len(tag) > MAX_TAG_LENGTH:
        raise ApplicationError(f"tag: at most {MAX_TAG_LENGTH} characters", field="tag")
    return LeaderboardParams(
        queue=queue,
        tag=tag,
        rounds=_int(raw["rounds"], "rounds", ROUNDS, MAX_ROUNDS) if raw["rounds"].strip() else ROUNDS,
        include_human=_bool(raw["include_human"], "include_human"),
        seed=_int(raw["seed"], "seed", 0, 2**32 - 1) if raw["seed"].strip() else 0,
    )


def _judgments(params: LeaderboardParams) -> QuerySet[Judgment]:
    judgments = Judgment.objects.all()
    if params.queue is not None:
        judgments = judgments.filter(assignment__item__queue=params.queue)
    if params.tag is not None:
        if connection.features.supports_json_field_contains:
            judgments = judgments.filter(assignment__item__comparison__prompt__tags__contains=[params.tag])
        else:
            tags = F("assignment__item__comparison__prompt__tags")
            judgments = judgments.filter(_JsonArrayHolds(tags, Value(params.tag)))
    return judgments


class _JsonArrayHolds(Func):
    """SQLite: the JSON array in the first expression holds the second (SQLite has no JSON
    containment lookup; its json_each() answers the same question, on the joined column)."""

    output_field = BooleanField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, tuple[Any, ...]]:
        array, array_params = compiler.compile(self.source_expressions[0])
        value, value_params = compiler.compile(self.source_expressions[1])
        # Both parts are compiled expressions: a column reference and a placeholder (the tag is a parameter).
        sql = f"EXISTS (SELECT 1 FROM json_each({array}) WHERE json_each.value = {value})"  # noqa: S608
        return sql, (*array_params, *value_params)


def _member(position: int) -> FilteredRelation:
    """The comparison's candidate stored at ``position``, joined (not a subquery per row)."""
    members = "assignment__item__comparison__members"
    return FilteredRelation(members, condition=Q(**{f"{members}__position": position}))


def _pairwise_outcomes(judgments: QuerySet[Judgment]) -> Counter[tuple[int, int, int]]:
    """(generator of A, generator of B, outcome) -> judgments; outcome -1 = A won, 0 = tie, 1 = B won.

    One GROUP BY over the judgments joined to the comparison's two stored candidates: by their
    generators, whether the first stored one was shown as A (``shown_order[0]``), and the sign.
    """
    shown_as_a = Cast(KeyTextTransform("0", "assignment__shown_order"), BigIntegerField())
    rows = (
        judgments.filter(preference__isnull=False)
        .annotate(first=_member(0), second=_member(1))
        .annotate(
            first_is_a=Case(
                When(first__candidate_id=shown_as_a, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
            outcome=Case(
                When(preference__lt=0, then=Value(-1)),
                When(preference__gt=0, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            ),
        )
        .order_by()
        .values_list(
            "first__candidate__generator_id", "second__candidate__generator_id", "first_is_a", "outcome"
        )
        .annotate(n=Count("pk"))
    )
    outcomes: Counter[tuple[int, int, int]] = Counter()
    for first, second, first_is_a, outcome, n in rows:
        if first is not None and second is not None:
            outcomes[(first, second, outcome) if first_is_a else (second, first, outcome)] += n
    return outcomes


def _ranking_label_pairs(ranking: Any) -> list[tuple[int, int, int]]:
    """A ranking's pairs of labels as (label index x, label index y, outcome): -1 = x ranked
    above y, 0 = in one group."""
    placed = []  # (label index: A = 0, group: 0 = best)
    for group_index, group in enumerate(ranking or []):
        for label in group:
            if isinstance(label, str) and len(label) == 1 and label in LABELS:
                placed.append((LABELS.index(label), group_index))
    pairs = []
    for (x, x_group), (y, y_group) in combinations(placed, 2):
        pairs.append((x, y, 0) if x_group == y_group else (x, y, -1) if x_group < y_group else (y, x, -1))
    return pairs


def _ranking_outcomes(judgments: QuerySet[Judgment]) -> Counter[tuple[int, int, int]]:
    """Each ranking's pairs as (generator x, generator y, outcome): -1 = x ranked above y, 0 = one group.

    The rankings are read once as text and counted by (ranking, generators in the order shown);
    each distinct ranking is parsed, and each count expanded into its pairs, once.
    """
    rankings = judgments.filter(preference__isnull=True, ranking__isnull=False)
    if not rankings.exists():
        return Counter()
    generator_of = dict(
        ComparisonCandidate.objects.filter(
            comparison__in=rankings.order_by().values("assignment__item__comparison")
        ).values_list("candidate_id", "candidate__generator_id")
    )
    rows = (
        rankings.order_by()
        .annotate(
            ranking_text=Cast("ranking", TextField()), shown_text=Cast("assignment__shown_order", TextField())
        )
        .values_list("ranking_text", "shown_text")
    )
    shown: Counter[tuple[str, tuple[int | None, ...]]] = Counter()
    for ranking_text, shown_text in rows.iterator(chunk_size=5000):
        shown[(ranking_text, tuple(generator_of.get(c) for c in json.loads(shown_text)))] += 1
    pairs_of: dict[str, list[tuple[int, int, int]]] = {}
    outcomes: Counter[tuple[int, int, int]] = Counter()
    for (ranking_text, generators), n in shown.items():
        if ranking_text not in pairs_of:
            pairs_of[ranking_text] = _ranking_label_pairs(json.loads(ranking_text))
        for x, y, outcome in pairs_of[ranking_text]:
            first, second = (generators[x], generators[y]) if max(x, y) < len(generators) else (None, None)
            if first is not None and second is not None:
                outcomes[(first, second, outcome)] += n
    return outcomes


def leaderboard_counts(params: LeaderboardParams) -> tuple[list[Generator], np.ndarray, np.ndarray]:
    """The generators in the battles (by name) and the win and tie matrices between them, in
    that order: ``wins[i, j]`` = battles i won against j, ``ties`` symmetric."""
    judgments = _judgments(params)
    outcomes = _pairwise_outcomes(judgments) + _ranking_outcomes(judgments)
    seen = {g for a, b, _ in outcomes for g in (a, b)}
    generators = list(Generator.objects.filter(pk__in=seen).order_by("name", "pk"))
    if not params.include_human:
        generators = [g for g in generators if g.backend != Generator.Backend.HUMAN]
    index = {g.pk: i for i, g in enumerate(generators)}
    wins = np.zeros((len(generators), len(generators)), dtype=np.int64)
    ties = np.zeros_like(wins)
    for (a, b, outcome), n in outcomes.items():
        if a == b or a not in index or b not in index:
            continue  # the same generator on both sides, or a human left out
        i, j = index[a], index[b]
        if outcome < 0:
            wins[i, j] += n
        elif outcome > 0:
            wins[j, i] += n
        else:
            ties[i, j] += n
            ties[j, i] += n
    return generators, wins, ties


def _number(value: float, digits: int = 1) -> float | None:
    return None if np.isnan(value) else round(float(value), digits)


def leaderboard(params: LeaderboardParams) -> dict[str, Any]:
    """Scores, 95% intervals, ranks and rank ranges, battles and wins/ties/losses per generator
    (best first), and the win-rate and battle-count matrices in the same order."""
    generators, wins, ties = leaderboard_counts(params)
    scope = {
        "queue": params.queue.pk if params.queue else None,
        "tag": params.tag,
        "include_human": params.include_human,
        "rounds": params.rounds,
        "seed": params.seed,
    }
    battles = wins + wins.T + ties
    body: dict[str, Any] = {"scope": scope, "method": METHOD, "battles": int(battles.sum() // 2)}
    # Only generators that fought someone are rated.
    kept = [i for i in range(len(generators)) if battles[i].sum() > 0]
    if len(kept) < 2:
        return body | {"generators": [], "win_rate": [], "battle_counts": []}
    wins, ties, battles = wins[np.ix_(kept, kept)], ties[np.ix_(kept, kept)], battles[np.ix_(kept, kept)]
    ratings = bradley_terry.rate(wins, ties, rounds=params.rounds, seed=params.seed, prior=PRIOR_TIES)
    order = sorted(range(len(kept)), key=lambda i: (-ratings.scores[i], generators[kept[i]].name))
    rates = bradley_terry.win_rates(wins, ties)
    rows = []
    for i in order:
        generator = generators[kept[i]]
        won, tied, fought = int(wins[i].sum()), int(ties[i].sum()), int(battles[i].sum())
        rows.append(
            {
                "id": generator.pk,
                "name": generator.name,
                "backend": generator.backend,
                "score": _number(ratings.scores[i]),
                "lower": _number(ratings.lower[i]),
                "upper": _number(ratings.upper[i]),
                "rank": int(ratings.rank[i]),
                "rank_best": int(ratings.rank_best[i]),
                "rank_worst": int(ratings.rank_worst[i]),
                "battles": fought,
                "wins": won,
                "ties": tied,
                "losses": fought - won - tied,
                "win_rate": _number((won + tied / 2) / fought, 4),
            }
        )
    return body | {
        "generators": rows,
        "win_rate": [[None if i == j else _number(rates[i, j], 4) for j in order] for i in order],
        "battle_counts": [[int(battles[i, j]) for j in order] for i in order],
    }
