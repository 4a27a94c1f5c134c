from __future__ import annotations

import pytest

from comparisons.importing import InvalidField
from comparisons.models import Comparison, ComparisonCandidate
from comparisons.selectors import comparison_candidates
from comparisons.services import comparisons_build
from tests.factories import CandidateFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def fixture_prompt():
    """One prompt with 3 candidates: two from generator g1 (a, b), one from g2 (c)."""
    prompt = PromptFactory.create()
    g1, g2 = GeneratorFactory.create(name="g1"), GeneratorFactory.create(name="g2")
    a = CandidateFactory.create(prompt=prompt, generator=g1, sample_index=0)
    b = CandidateFactory.create(prompt=prompt, generator=g1, sample_index=1)
    c = CandidateFactory.create(prompt=prompt, generator=g2, sample_index=0)
    return prompt, (a, b, c), (g1, g2)


def _ids(comparisons):
    return [tuple(c.pk for c in comparison_candidates(comp)) for comp in comparisons]


def test_all_pairs(fixture_prompt):
    prompt, (a, b, c), _ = fixture_prompt
    comparisons = comparisons_build(prompts=[prompt], pairing="all_pairs")

    assert _ids(comparisons) == [(a.pk, b.pk), (a.pk, c.pk), (b.pk, c.pk)]
    assert [comp.candidate_key for comp in comparisons] == [
        f"{a.pk},{b.pk}",
        f"{a.pk},{c.pk}",
        f"{b.pk},{c.pk}",
    ]
    assert {(comp.size, comp.prompt_id) for comp in comparisons} == {(2, prompt.pk)}


def test_cross_generator(fixture_prompt):
    prompt, (a, b, c), _ = fixture_prompt
    comparisons = comparisons_build(prompts=[prompt], pairing="cross_generator")

    assert _ids(comparisons) == [(a.pk, c.pk), (b.pk, c.pk)]


def test_random_pair_is_one_pair_and_deterministic(fixture_prompt):
    prompt, candidates, _ = fixture_prompt
    ids = {c.pk for c in candidates}
    first = comparisons_build(prompts=[prompt], pairing="random_pair", seed=7)

    assert len(first) == 1
    pair = _ids(first)[0]
    assert len(pair) == 2 and set(pair) <= ids and pair[0] < pair[1]
    # The same seed gives the same pair (the stored one, not a new one).
    assert comparisons_build(prompts=[prompt], pairing="random_pair", seed=7) == first
    assert Comparison.objects.count() == 1
    # Over several seeds the draw is not stuck on one pair.
    pairs = {_ids(comparisons_build(prompts=[prompt], pairing="random_pair", seed=s))[0] for s in range(20)}
    assert len(pairs) > 1


def test_size_three_is_one_three_way(fixture_prompt):
    prompt, (a, b, c), _ = fixture_prompt
    comparisons = comparisons_build(prompts=[prompt], size=3)

    assert len(comparisons) == 1
    assert comparisons[0].size == 3
    assert _ids(comparisons) == [(a.pk, b.pk, c.pk)]
    assert list(
        ComparisonCandidate.objects.filter(comparison=comparisons[0]).values_list("position", flat=True)
    ) == [
        0,
        1,
        2,
    ]


def test_rerunning_builds_nothing_new(fixture_prompt):
    prompt, _, _ = fixture_prompt
    first = comparisons_build(prompts=[prompt], pairing="all_pairs")
    again = comparisons_build(prompts=[prompt], pairing="all_pairs")
    cross = comparisons_build(prompts=[prompt], pairing="cross_generator")

    assert [c.pk for c in again] == [c.pk for c in first]
    assert {c.pk for c in cross} <= {c.pk for c in first}
    assert Comparison.objects.count() == 3
    assert ComparisonCandidate.objects.count() == 6


def test_prompts_with_too_few_candidates_are_skipped(fixture_prompt):
    prompt, _, _ = fixture_prompt
    lonely = PromptFactory.create()
    CandidateFactory.create(prompt=lonely)
    empty = PromptFactory.create()

    assert comparisons_build(prompts=[lonely, empty], pairing="all_pairs") == []
    assert comparisons_build(prompts=[prompt, lonely], size=4) == []
    assert len(comparisons_build(prompts=[prompt, lonely, empty], size=3)) == 1


def test_generators_filter(fixture_prompt):
    prompt, (a, b, _), (g1, _) = fixture_prompt

    assert _ids(comparisons_build(prompts=[prompt], generators=[g1])) == [(a.pk, b.pk)]
    assert comparisons_build(prompts=[prompt], generators=[g1], pairing="cross_generator") == []


def test_k_way_cross_generator_mixes_generators():
    prompt = PromptFactory.create()
    g1, g2 = GeneratorFactory.create(), GeneratorFactory.create()
    for i in range(4):
        CandidateFactory.create(prompt=prompt, generator=g1, sample_index=i)
    CandidateFactory.create(prompt=prompt, generator=g2, sample_index=0)

    for seed in range(5):
        (comparison,) = comparisons_build(prompts=[prompt], pairing="cross_generator", size=3, seed=seed)
        assert {c.generator_id for c in comparison_candidates(comparison)} == {g1.pk, g2.pk}


def test_many_prompts_in_prompt_order():
    prompts = [PromptFactory.create() for _ in range(3)]
    for prompt in reversed(prompts):
        CandidateFactory.create(prompt=prompt, sample_index=0)
        CandidateFactory.create(prompt=prompt, sample_index=1)

    comparisons = comparisons_build(prompts=reversed(prompts), pairing="random_pair")
    assert [c.prompt_id for c in comparisons] == [p.pk for p in prompts]


@pytest.mark.parametrize(("kwargs", "field"), [({"pairing": "best_of"}, "pairing"), ({"size": 10}, "size")])
def test_bad_options_name_the_field(fixture_prompt, kwargs, field):
    prompt, _, _ = fixture_prompt
    with pytest.raises(InvalidField) as caught:
        comparisons_build(prompts=[prompt], **kwargs)

    assert caught.value.field == field
    assert Comparison.objects.count() == 0
