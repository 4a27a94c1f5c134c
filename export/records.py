"""The lossless in-memory record of one judgment, and what every view derives from it.

A :class:`JudgmentRecord` holds one judgment with its prompt, the comparison's candidates (in
stored position order) and the order the rater saw them in. Views never look at the database;
they read records (``native``, ``rankings``, ``ratings``) or :class:`PairEvent` objects derived
from them (``trl``, ``hh``, ``helpsteer``). The ``sft`` view reads :class:`SessionRecord` objects
instead: one finished conversation and the turns of its kept branch.

Conventions, fixed here once:

* A judgment's ``preference`` is in the labels the rater saw: negative = label A better.
* A ranking is groups of labels, best first, ties grouped. Expanded to pairs, the strength of
  label x over label y is ``clamp(group(x) - group(y), -3, 3)``: negative = x better, and the
  magnitude is the number of groups between them (1 for neighbours), capped at 3.
* Per comparison, ``agreement`` (what ``min_agreement`` tests in raw exports) is the mean, over
  every pair of candidates, of the share of judgments that agree with the most common answer
  for that pair (x better / tie / y better). One judgment agrees with itself: 1.0.
* Aggregated exports pool by *candidate pair*: every vote on two candidates of one prompt, from
  every comparison that holds both (a pair judgment, a pair inside a K-way ranking, in any
  queue), direction-corrected, makes one event (:func:`pooled_events`). Its ``agreement`` is the
  *majority share*: the share of those votes that agree with the event's direction (the winning
  side, or "tie" for a tie); ``min_agreement`` and ``min_judgments`` test that event.
* A comparison's *duplicates* are candidates the raters did not see because their text repeats
  a shown candidate's (``comparisons.ComparisonDuplicate``). A duplicate is tied with its shown
  copy: it carries that copy's ``position``. It is never one side of a pair event: its pairs
  would repeat its copy's pairs with the same texts, and against its copy it is the same text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

LABELS = "ABCDEFGHI"


class ExportDataError(Exception):
    """Stored data cannot be exported as asked; the message names the judgment."""


@dataclass(slots=True)
class PromptInfo:
    id: int
    public_id: str
    messages: list[dict[str, str]]
    source: str
    tags: list[str]
    content_hash: str
    split: str = ""


@dataclass(slots=True)
class CandidateInfo:
    id: int
    position: int
    text: str
    generator: str
    model_revision: str = ""
    sampling: Any = None
    seed: int | None = None
    finish_reason: str = ""


@dataclass(slots=True)
class JudgmentRecord:
    id: int
    comparison_id: int
    prompt: PromptInfo
    candidates: list[CandidateInfo]  # position order
    shown: list[CandidateInfo]  # label order: shown[0] is label A
    preference: int | None
    ranking: list[list[str]] | None
    rater_user_id: int
    queue_id: int
    is_gold: bool
    rubric_id: int
    created_at: datetime | None = None
    criteria: Any = None
    flags: Any = None
    rationale: str = ""
    rewrite: str = ""
    active_seconds: float | None = None
    gold_answer: Any = None
    # Unseen copies of shown candidates, each with its copy's position; by position, then id.
    duplicates: list[CandidateInfo] = field(default_factory=list)

    def groups(self) -> list[list[CandidateInfo]]:
        """The answer as groups of shown candidates, best first (a pair is a 2-way ranking)."""
        if self.ranking is not None:
            return [[self.shown[LABELS.index(label)] for label in group] for group in self.ranking]
        a, b = self.shown
        assert self.preference is not None
        if self.preference < 0:
            return [[a], [b]]
        if self.preference > 0:
            return [[b], [a]]
        return [[a, b]]

    def position_ranks(self) -> list[int]:
        """Group index of each candidate, indexed by the candidate's position."""
        ranks = [0] * len(self.candidates)
        for g, group in enumerate(self.groups()):
            for candidate in group:
                ranks[candidate.position] = g
        return ranks


@dataclass(slots=True)
class PairEvent:
    """One preference between two candidates of one prompt.

    ``strength`` is negative when ``x`` is better, in -3..3 for single judgments and a float mean
    for aggregated ones. Raw events have ``x`` = the candidate shown first; aggregated (pooled)
    ones the candidate with the lower position in ``comparison_id``, the first comparison (by
    id) that holds both, and ``records`` the judgments whose votes were pooled.
    """

    prompt: PromptInfo
    comparison_id: int
    x: CandidateInfo
    y: CandidateInfo
    strength: float
    record: JudgmentRecord | None
    ranking_id: int | None
    n_judgments: int = 1
    agreement: float = 1.0
    records: list[JudgmentRecord] = field(default_factory=list)
    #: Aggregation ``adjudicated``: the direction and strength are a reviewer's final label.
    adjudicated: bool = False


@dataclass(slots=True)
class TurnInfo:
    """One turn on a session's kept branch (see ``labeling.models.Turn``), with the ids that tie an
    assistant turn's reply to the rest of the data: its prompt, its kept candidate, its ranking."""

    id: int
    parent_id: int | None
    role: str
    status: str
    text: str
    prompt: PromptInfo | None
    comparison_id: int | None
    chosen_id: int | None
    generator: str | None
    by_trainer: bool
    judgment_id: int | None


@dataclass(slots=True)
class SessionRecord:
    """One finished conversation session and the turns of its kept branch, first to last."""

    id: int
    queue_id: int
    queue: str
    mode: str
    trainer_user_id: int
    finished_at: datetime | None
    turns: list[TurnInfo] = field(default_factory=list)


def _clamp(value: int) -> int:
    return max(-3, min(3, value))


def pair_events(record: JudgmentRecord, *, ranking_ids: bool = True) -> Iterator[PairEvent]:
    """A pair judgment's one event, or a ranking's K-choose-2 events (label order, ties included)."""
    if record.ranking is None:
        assert record.preference is not None
        yield PairEvent(
            record.prompt,
            record.comparison_id,
            record.shown[0],
            record.shown[1],
            record.preference,
            record,
            None,
        )
        return
    group_of: dict[str, int] = {label: g for g, group in enumerate(record.ranking) for label in group}
    ranking_id = record.id if ranking_ids else None
    shown = record.shown
    for i in range(len(shown)):
        gi = group_of[LABELS[i]]
        for j in range(i + 1, len(shown)):
            yield PairEvent(
                record.prompt,
                record.comparison_id,
                shown[i],
                shown[j],
                _clamp(gi - group_of[LABELS[j]]),
                record,
                ranking_id,
            )


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _pair_signs(records: list[JudgmentRecord]) -> dict[tuple[int, int], list[int]]:
    """Per candidate position pair (i < j): each judgment's strength, negative = position i better."""
    size = len(records[0].candidates)
    out: dict[tuple[int, int], list[int]] = {(i, j): [] for i in range(size) for j in range(i + 1, size)}
    for record in records:
        if record.ranking is None:
            assert record.preference is not None
            first = record.shown[0].position
            out[(0, 1)].append(record.preference if first == 0 else -record.preference)
            continue
        ranks = record.position_ranks()
        for (i, j), values in out.items():
            values.append(_clamp(ranks[i] - ranks[j]))
    return out


def agreement(records: list[JudgmentRecord]) -> float:
    """Agreement among the judgments of one comparison (see the module docstring)."""
    if len(records) < 2:
        return 1.0
    shares = []
    for values in _pair_signs(records).values():
        counts = [0, 0, 0]
        for v in values:
            counts[_sign(v) + 1] += 1
        shares.append(max(counts) / len(values))
    return sum(shares) / len(shares)


def _votes(record: JudgmentRecord) -> Iterator[tuple[CandidateInfo, CandidateInfo, int]]:
    """A judgment's votes per candidate pair, in position order: ``(x, y, strength)``, negative = x better."""
    if record.ranking is None:
        assert record.preference is not None
        first, second = record.shown
        x, y = (first, second) if first.position < second.position else (second, first)
        yield x, y, record.preference if x is first else -record.preference
        return
    ranks = record.position_ranks()
    candidates = record.candidates
    for i in range(len(candidates)):
        for j in range(i + 1, len(candidates)):
            yield candidates[i], candidates[j], _clamp(ranks[i] - ranks[j])


def _reviewed_vote(event: PairEvent, reviews: Mapping[int, dict[str, Any]]) -> tuple[int, int] | None:
    """The latest review among the comparisons pooled into ``event``, as ``(review id, strength)``
    in the event's direction (negative = ``x`` better); None when none of them was reviewed."""
    found: tuple[int, int] | None = None
    for record in event.records:
        label = reviews.get(record.comparison_id)
        if label is None or (found is not None and label["review"] <= found[0]):
            continue
        position = {c.id: c.position for c in record.candidates}
        px, py = position[event.x.id], position[event.y.id]
        if "preference" in label:  # a pair: negative = position 0 better
            strength = label["preference"] if px == 0 else -label["preference"]
        else:
            rank = {p: g for g, group in enumerate(label["ranking"]) for p in group}
            strength = _clamp(rank[px] - rank[py])
        found = (label["review"], strength)
    return found


def pooled_events(
    records: list[JudgmentRecord], *, aggregation: str, reviews: Mapping[int, dict[str, Any]] | None = None
) -> Iterator[PairEvent]:
    """One event per candidate pair, pooling the votes of every comparison that holds both.

    ``records`` are the judgments of one prompt, ordered by comparison then judgment id. Events
    come in the order their pair is first met (a comparison's pairs in position order). Each
    vote is turned to the event's direction: ``x`` is the candidate with the lower position in
    the first comparison that holds both.

    ``majority``: the side more votes prefer wins (ties vote for neither side); the strength is
    the mean strength of the winning votes and ``agreement`` the winning votes' share of all votes;
    equal votes give a tie (strength 0), whose ``agreement`` is the share of tie votes. ``mean``:
    the strength is the mean signed strength of all votes (ties count 0), rounded to 4 decimals;
    ``agreement`` is the share of votes with its sign. ``agreement`` is rounded to 4 decimals.
    ``adjudicated``: where a reviewer gave the final label of a comparison holding the pair
    (``reviews``: ``labeling.selectors.reviews.adjudicated_labels``; the latest review wins), its
    direction and strength, ``agreement`` being the share of votes with its sign and
    ``adjudicated`` true; elsewhere as ``majority``.
    """
    pairs: dict[tuple[int, int], PairEvent] = {}
    votes: dict[tuple[int, int], list[int]] = {}
    for record in records:
        for x, y, vote in _votes(record):
            key = (x.id, y.id) if x.id < y.id else (y.id, x.id)
            event = pairs.get(key)
            if event is None:
                event = pairs[key] = PairEvent(record.prompt, record.comparison_id, x, y, 0.0, None, None)
                votes[key] = []
            votes[key].append(vote if event.x.id == x.id else -vote)
            if not event.records or event.records[-1] is not record:
                event.records.append(record)
    for key, event in pairs.items():
        values = votes[key]
        n = len(values)
        reviewed = _reviewed_vote(event, reviews or {}) if aggregation == "adjudicated" else None
        if reviewed is not None:
            strength = float(reviewed[1])
            agree = sum(1 for v in values if _sign(v) == _sign(strength)) / n
            event.adjudicated = True
        elif aggregation in ("majority", "adjudicated"):
            for_x = [v for v in values if v < 0]
            for_y = [v for v in values if v > 0]
            if len(for_x) == len(for_y):
                strength, agree = 0.0, sum(1 for v in values if v == 0) / n
            else:
                winners = for_x if len(for_x) > len(for_y) else for_y
                strength, agree = round(sum(winners) / len(winners), 4), len(winners) / n
        else:
            strength = round(sum(values) / n, 4)
            agree = sum(1 for v in values if _sign(v) == _sign(strength)) / n
        event.strength, event.n_judgments, event.agreement = strength, n, round(agree, 4)
        yield event


@dataclass(slots=True)
class AttackRecord:
    """One red-team attack with a verdict (``labeling.models.Attack``), as the red-team exports read it.

    ``side`` is its family's side (``labeling.selectors.redteam.attack_side``): ``train`` feeds the
    training pairs, ``test`` the held-out red-team test set. ``reply`` is the model's reply (None
    when the attack has none); ``ideal_reply`` the safe (or, for an over-refusal, helpful) reply a
    reviewer or red-teamer wrote, blank when none was. ``ranked_reply``: for a train-side attack
    with a harmful outcome and no ideal reply, the best-ranked refusal among the candidates raters
    ranked on its prompt (``export.selectors.redteam``), else None.
    """

    id: int
    source: str
    status: str
    family: str
    side: str
    prompt: PromptInfo
    reply: str | None
    reply_id: int | None
    reply_generator: str
    ideal_reply: str
    outcome: str
    category: str
    tactic: str
    severity: int | None
    description: str
    author_user_id: int | None
    author_role: str
    target: str
    ranked_reply: CandidateInfo | None = None
