"""Build comparisons: the pairs or K-way sets of each prompt's candidates (``comparisons_build``).

The sets are drawn by ``pairing`` with a random seeded per prompt, so the same call gives the same
sets; a set that is already stored is reused (by its ``candidate_key``), also when a concurrent
build stored it.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from django.db import transaction

from comparisons.importing import InvalidField
from comparisons.models import Candidate, Comparison, ComparisonCandidate, Prompt
from comparisons.services.common import BATCH_SIZE, _chunks

if TYPE_CHECKING:  # types only: comparisons sits below model_runner (see docs/architecture.md)
    from model_runner.models import Generator

PAIRINGS = ("all_pairs", "random_pair", "cross_generator")
MIN_SIZE, MAX_SIZE = 2, 9


def _candidate_sets(
    candidates: Sequence[Candidate], *, prompt: Prompt, pairing: str, size: int, seed: int
) -> list[tuple[Candidate, ...]]:
    """The candidate sets to compare for one prompt, each sorted by candidate id."""
    rng = random.Random(f"{seed}:{prompt.pk}")
    if size == 2:
        if pairing == "random_pair":
            return [tuple(sorted(rng.sample(list(candidates), 2), key=lambda c: c.pk))]
        pairs = itertools.combinations(candidates, 2)
        if pairing == "cross_generator":
            return [p for p in pairs if p[0].generator_id != p[1].generator_id]
        return list(pairs)
    if pairing == "cross_generator":
        # Deal from each generator in turn, so a K-way set mixes as many models as it can.
        by_generator: dict[int, list[Candidate]] = defaultdict(list)
        for candidate in candidates:
            by_generator[candidate.generator_id].append(candidate)
        if len(by_generator) < 2:
            return []
        hands = [rng.sample(group, len(group)) for _, group in sorted(by_generator.items())]
        rng.shuffle(hands)
        dealt = [c for round_ in itertools.zip_longest(*hands) for c in round_ if c is not None]
        chosen = dealt[:size]
    else:
        chosen = rng.sample(list(candidates), size)
    return [tuple(sorted(chosen, key=lambda c: c.pk))]


def comparisons_build(
    *,
    prompts: Iterable[Prompt],
    pairing: str = "all_pairs",
    size: int = 2,
    seed: int = 0,
    generators: Iterable[Generator] | None = None,
) -> list[Comparison]:
    """Comparisons of each prompt's candidates, reusing any that already exist.

    ``size == 2`` (pairs), by ``pairing``:
      * ``all_pairs``: every pair of the prompt's candidates;
      * ``random_pair``: one pair per prompt, drawn with ``random.Random(f"{seed}:{prompt.pk}")``;
      * ``cross_generator``: every pair whose two candidates come from different generators.
    ``size`` 3..9 (K-way): one set of ``size`` candidates per prompt, drawn with the same seeded
    random (``cross_generator`` takes from the generators in turn and needs two of them).

    Only candidates of ``generators`` count when given. Prompts with too few candidates are
    skipped. A comparison's candidates are stored in id order (``position``) and its
    ``candidate_key`` is their ids joined by ","; building the same set again returns the stored
    comparison, also when a concurrent build made it. Returns existing and new comparisons,
    by prompt id and then set. Raises InvalidField naming ``pairing`` or ``size``.
    """
    if pairing not in PAIRINGS:
        raise InvalidField("pairing", f"must be one of {', '.join(PAIRINGS)} (got {pairing!r})")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidField("size", f"must be an integer from {MIN_SIZE} to {MAX_SIZE}")
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
    for prompt in prompt_list:
        candidates = by_prompt.get(prompt.pk, [])
        if len(candidates) < size:
            continue
        for group in _candidate_sets(candidates, prompt=prompt, pairing=pairing, size=size, seed=seed):
            wanted.setdefault(",".join(str(c.pk) for c in group), (prompt, group))
    if not wanted:
        return []

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
    return [stored[key] for key in wanted]


def _comparisons_by_key(keys: Iterable[str]) -> dict[str, Comparison]:
    found: dict[str, Comparison] = {}
    for chunk in _chunks(keys):
        found.update((c.candidate_key, c) for c in Comparison.objects.filter(candidate_key__in=chunk))
    return found
