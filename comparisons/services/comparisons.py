"""Build comparisons: the pairs or K-way sets of each prompt's candidates (``comparisons_build``).

The sets are drawn by ``pairing`` with a random seeded per prompt, so the same call gives the same
sets; a set that is already stored is reused (by its ``candidate_key``), also when a concurrent
build stored it.

Raters see one copy of each text (``dedupe``, see ``comparisons.dedupe``): a prompt's candidates
are first grouped by text, the sets are built from one candidate per group, and the group's
other candidates are recorded as that comparison's duplicates (``ComparisonDuplicate``), tied
with the copy shown. With no repeated text, the sets are exactly those built without dedupe.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from math import comb
from typing import TYPE_CHECKING

from django.db import transaction

from comparisons.dedupe import dedupe_clean, text_groups
from comparisons.importing import InvalidField, shown_value
from comparisons.models import Candidate, Comparison, ComparisonCandidate, ComparisonDuplicate, Prompt
from comparisons.services.common import BATCH_SIZE, _chunks

if TYPE_CHECKING:  # types only: comparisons sits below model_runner (see docs/architecture.md)
    from model_runner.models import Generator

PAIRINGS = ("all_pairs", "random_pair", "cross_generator")
MIN_SIZE, MAX_SIZE = 2, 9

Group = list[Candidate]


@dataclass(frozen=True)
class LeftOut:
    """What ``comparisons_build`` left out because texts repeat (all zero with ``dedupe="off"``).

    ``pairs``: pairs (size 2) not built: two copies of one text, or a pair repeating the two texts
    of a pair that is built; the pairing without dedupe would have built them.
    ``duplicates``: candidates not shown because their text repeats another candidate's; each is
    recorded as tied with the copy shown in the comparisons that show it.
    ``prompts``: prompts with enough candidates but too few different texts for one comparison.
    """

    pairs: int = 0
    duplicates: int = 0
    prompts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ComparisonsBuilt(list[Comparison]):
    """The comparisons ``comparisons_build`` returns (a list, by prompt id then set), with ``left_out``."""

    def __init__(self, comparisons: Iterable[Comparison] = (), *, left_out: LeftOut | None = None) -> None:
        super().__init__(comparisons)
        self.left_out = left_out or LeftOut()


def _kept_sets(
    groups: Sequence[Group], *, prompt: Prompt, pairing: str, size: int, seed: int
) -> list[tuple[Candidate, ...]]:
    """The sets to compare for one prompt, one candidate per text group, each sorted by candidate id.

    ``groups`` are the prompt's candidates by text, in id order (a group of one per candidate
    when no text repeats, which gives exactly the sets built before dedupe existed).
    """
    rng = random.Random(f"{seed}:{prompt.pk}")
    firsts = [group[0] for group in groups]
    if size == 2:
        if pairing == "random_pair":
            return [tuple(sorted(rng.sample(firsts, 2), key=lambda c: c.pk))]
        if pairing == "cross_generator":
            # Per two texts, the first two copies written by different generators, if any.
            pairs = []
            for first, second in itertools.combinations(groups, 2):
                mixed = next(
                    ((a, b) for a, b in itertools.product(first, second) if a.generator_id != b.generator_id),
                    None,
                )
                if mixed is not None:
                    pairs.append(tuple(sorted(mixed, key=lambda c: c.pk)))
            return pairs
        return list(itertools.combinations(firsts, 2))
    if pairing == "cross_generator":
        # Deal from each generator in turn, so a K-way set mixes as many models as it can.
        by_generator: dict[int, list[Candidate]] = defaultdict(list)
        for candidate in sorted((c for group in groups for c in group), key=lambda c: c.pk):
            by_generator[candidate.generator_id].append(candidate)
        if len(by_generator) < 2:
            return []
        hands = [rng.sample(hand, len(hand)) for _, hand in sorted(by_generator.items())]
        rng.shuffle(hands)
        dealt = [c for round_ in itertools.zip_longest(*hands) for c in round_ if c is not None]
        group_of = {c.pk: g for g, group in enumerate(groups) for c in group}
        chosen: list[Candidate] = []
        taken: set[int] = set()
        for candidate in dealt:  # one copy of each text: the first one dealt
            if group_of[candidate.pk] not in taken:
                taken.add(group_of[candidate.pk])
                chosen.append(candidate)
        chosen = chosen[:size]
    else:
        chosen = rng.sample(firsts, size)
    return [tuple(sorted(chosen, key=lambda c: c.pk))]


def _pairs_without_dedupe(candidates: Sequence[Candidate], pairing: str) -> int:
    """How many pairs ``pairing`` builds from these candidates when every text counts as different."""
    if pairing == "random_pair":
        return 1
    if pairing == "cross_generator":
        per_generator: dict[int, int] = defaultdict(int)
        for candidate in candidates:
            per_generator[candidate.generator_id] += 1
        return comb(len(candidates), 2) - sum(comb(n, 2) for n in per_generator.values())
    return comb(len(candidates), 2)


def comparisons_build(
    *,
    prompts: Iterable[Prompt],
    pairing: str = "all_pairs",
    size: int = 2,
    seed: int = 0,
    generators: Iterable[Generator] | None = None,
    dedupe: str = "exact",
    similarity: float | None = None,
) -> ComparisonsBuilt:
    """Comparisons of each prompt's candidates, reusing any that already exist, one copy of each text.

    ``size == 2`` (pairs), by ``pairing``:
      * ``all_pairs``: every pair of the prompt's texts;
      * ``random_pair``: one pair per prompt, drawn with ``random.Random(f"{seed}:{prompt.pk}")``;
      * ``cross_generator``: every pair of texts that two different generators wrote.
    ``size`` 3..9 (K-way): one set of ``size`` texts per prompt, drawn with the same seeded
    random (``cross_generator`` takes from the generators in turn and needs two of them).

    ``dedupe`` says when two candidates are the same text (``comparisons.dedupe``): ``exact``
    (identical once whitespace is normalized), ``similar`` (also when at least ``similarity``
    alike, default 0.9) or ``off``. A comparison shows one copy of each text; the prompt's other
    copies of a shown text are stored as its duplicates, tied with that copy. So no comparison
    holds two copies of one text, and no two pairs compare the same two texts. What this left
    out is counted in the result's ``left_out`` (:class:`LeftOut`).

    Only candidates of ``generators`` count when given. Prompts with fewer candidates (or, after
    dedupe, texts) than ``size`` are skipped. A comparison's candidates are stored in id order
    (``position``) and its ``candidate_key`` is their ids joined by ","; building the same set
    again returns the stored comparison (adding any duplicates it lacks), also when a
    concurrent build made it. Returns existing and new comparisons, by prompt id and then set.
    Raises InvalidField naming ``pairing``, ``size``, ``dedupe`` or ``similarity``.
    """
    if pairing not in PAIRINGS:
        raise InvalidField("pairing", f"must be one of {', '.join(PAIRINGS)} (got {shown_value(pairing)})")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidField("size", f"must be an integer from {MIN_SIZE} to {MAX_SIZE}")
    threshold = dedupe_clean(dedupe, similarity)
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
    copies: dict[int, Group] = {}  # candidate id -> its text group
    left_pairs = left_duplicates = left_prompts = 0
    for prompt in prompt_list:
        candidates = by_prompt.get(prompt.pk, [])
        if len(candidates) < size:
            continue
        groups = text_groups(candidates, dedupe=dedupe, similarity=threshold)
        left_duplicates += len(candidates) - len(groups)
        sets = (
            _kept_sets(groups, prompt=prompt, pairing=pairing, size=size, seed=seed)
            if len(groups) >= size
            else []
        )
        left_prompts += len(groups) < size
        if size == 2 and len(groups) < len(candidates):
            left_pairs += _pairs_without_dedupe(candidates, pairing) - len(sets)
        for group in groups:
            copies.update((c.pk, group) for c in group)
        for chosen in sets:
            wanted.setdefault(",".join(str(c.pk) for c in chosen), (prompt, chosen))
    left_out = LeftOut(pairs=left_pairs, duplicates=left_duplicates, prompts=left_prompts)
    if not wanted:
        return ComparisonsBuilt(left_out=left_out)

    stored = _comparisons_store(wanted, copies)
    return ComparisonsBuilt((stored[key] for key in wanted), left_out=left_out)


def _comparisons_store(
    wanted: dict[str, tuple[Prompt, tuple[Candidate, ...]]], copies: dict[int, Group]
) -> dict[str, Comparison]:
    """Store the wanted comparisons (by candidate key) that do not exist yet, and every copy of a
    shown text as a duplicate tied with it; all comparisons by key. Safe against a concurrent
    build of the same keys (both read the rows that won)."""
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
        # Every copy of a shown text, on new and reused comparisons alike (a stored one may lack
        # copies written since it was built); one row per (comparison, candidate).
        ComparisonDuplicate.objects.bulk_create(
            [
                ComparisonDuplicate(comparison=stored[key], kept=kept, candidate=copy)
                for key, (_, chosen) in wanted.items()
                for kept in chosen
                for copy in copies[kept.pk]
                if copy.pk != kept.pk
            ],
            batch_size=BATCH_SIZE,
            ignore_conflicts=True,
        )
    return stored


def comparison_build_for_candidates(
    *, prompt: Prompt, candidates: Sequence[Candidate], dedupe: str = "exact"
) -> Comparison | None:
    """The comparison of exactly these candidates of ``prompt``, one copy of each text (the first),
    the others stored as its duplicates; ``None`` when fewer than two different texts remain.

    For a conversation turn, whose alternatives are the candidates one request made (not every
    candidate of the prompt, as ``comparisons_build`` takes). Reuses a stored comparison of the
    same set. Raises InvalidField naming ``size`` past nine texts.
    """
    groups = text_groups(list(candidates), dedupe=dedupe, similarity=dedupe_clean(dedupe, None))
    if len(groups) < MIN_SIZE:
        return None
    if len(groups) > MAX_SIZE:
        raise InvalidField(
            "size", f"at most {MAX_SIZE} different texts make one comparison (got {len(groups)})"
        )
    chosen = tuple(sorted((group[0] for group in groups), key=lambda c: c.pk))
    key = ",".join(str(c.pk) for c in chosen)
    copies = {c.pk: group for group in groups for c in group}
    return _comparisons_store({key: (prompt, chosen)}, copies)[key]


def _comparisons_by_key(keys: Iterable[str]) -> dict[str, Comparison]:
    found: dict[str, Comparison] = {}
    for chunk in _chunks(keys):
        found.update((c.candidate_key, c) for c in Comparison.objects.filter(candidate_key__in=chunk))
    return found
