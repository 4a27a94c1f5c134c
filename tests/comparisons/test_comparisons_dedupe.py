"""comparisons_build shows one copy of each text: identical (or similar) candidates are left out,
counted, and recorded as tied with the copy shown (ComparisonDuplicate)."""

from __future__ import annotations

import itertools

import pytest

from comparisons.dedupe import same_text, text_groups, text_similarity
from comparisons.importing import InvalidField
from comparisons.models import Comparison, ComparisonDuplicate
from comparisons.selectors import comparison_candidates
from comparisons.services import LeftOut, comparisons_build
from tests.factories import CandidateFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

SAME = "The sky is blue because air scatters blue light more than red light."


def _prompt_with(texts, generators=None):
    """A prompt with one candidate per text (generator i % len(generators))."""
    prompt = PromptFactory.create()
    generators = generators or [GeneratorFactory.create()]
    candidates = [
        CandidateFactory.create(
            prompt=prompt, generator=generators[i % len(generators)], sample_index=i, text=t
        )
        for i, t in enumerate(texts)
    ]
    return prompt, candidates


def _duplicates(comparison):
    return sorted(
        ComparisonDuplicate.objects.filter(comparison=comparison).values_list("kept_id", "candidate_id")
    )


def _no_comparison_repeats_a_text(comparisons):
    for comparison in comparisons:
        texts = [c.text for c in comparison_candidates(comparison)]
        assert not any(same_text(a, b) for a, b in itertools.combinations(texts, 2)), texts


def test_the_demo_case_three_copies_of_one_sentence():
    """4 candidates, 3 of them the same sentence (up to whitespace): one pair, not six."""
    prompt, (a, b, c, d) = _prompt_with([SAME, "  " + SAME.replace(" ", "\n", 2), "It is green.", SAME + " "])

    built = comparisons_build(prompts=[prompt], pairing="all_pairs")

    assert [[m.pk for m in comparison_candidates(x)] for x in built] == [[a.pk, c.pk]]
    # 6 pairs without dedupe: 3 compare the sentence with itself, 2 repeat (sentence, green).
    assert built.left_out == LeftOut(pairs=5, duplicates=2, prompts=0)
    assert _duplicates(built[0]) == [(a.pk, b.pk), (a.pk, d.pk)]


@pytest.mark.parametrize(
    ("pairing", "size"),
    [("all_pairs", 2), ("random_pair", 2), ("cross_generator", 2), ("all_pairs", 3), ("cross_generator", 3)],
)
def test_no_comparison_holds_two_copies_of_a_text(pairing, size):
    g1, g2 = GeneratorFactory.create(), GeneratorFactory.create()
    prompts = []
    for n in range(6):
        prompt, _ = _prompt_with(["One.", "One.", "Two.", " Two. ", "Three.", f"Four {n}."], [g1, g2])
        prompts.append(prompt)

    built = comparisons_build(prompts=prompts, pairing=pairing, size=size, seed=3)

    assert built
    _no_comparison_repeats_a_text(built)
    # No two comparisons of a prompt show the same texts.
    shown_texts = [(x.prompt_id, frozenset(c.text.strip() for c in comparison_candidates(x))) for x in built]
    assert len(shown_texts) == len(set(shown_texts))
    assert built.left_out.duplicates == 6 * 2
    for comparison in built:
        shown = {c.pk for c in comparison_candidates(comparison)}
        for kept, copy in _duplicates(comparison):
            assert kept in shown and copy not in shown


def test_off_builds_every_pair_and_records_nothing():
    prompt, _ = _prompt_with([SAME, SAME, "It is green."])

    built = comparisons_build(prompts=[prompt], dedupe="off")

    assert len(built) == 3
    assert built.left_out == LeftOut()
    assert not ComparisonDuplicate.objects.exists()


@pytest.mark.parametrize("pairing", ["all_pairs", "random_pair", "cross_generator"])
@pytest.mark.parametrize("size", [2, 3])
def test_without_repeated_texts_the_sets_are_those_built_without_dedupe(pairing, size):
    g1, g2 = GeneratorFactory.create(), GeneratorFactory.create()
    prompts = [_prompt_with([f"Text {p}.{i}" for i in range(5)], [g1, g2])[0] for p in range(4)]

    for seed in range(3):
        keys = [
            x.candidate_key for x in comparisons_build(prompts=prompts, pairing=pairing, size=size, seed=seed)
        ]
        off = comparisons_build(prompts=prompts, pairing=pairing, size=size, seed=seed, dedupe="off")
        assert keys == [x.candidate_key for x in off]
        assert off.left_out == LeftOut()


def test_cross_generator_pairs_two_texts_through_copies_by_different_models():
    g1, g2 = GeneratorFactory.create(), GeneratorFactory.create()
    prompt, (a, a_copy, b) = _prompt_with([SAME, SAME, "It is green."], [g1, g2, g1])
    # g1 wrote a and b, g2 wrote a copy of a: (a_copy, b) is the one cross-generator pair of texts.
    built = comparisons_build(prompts=[prompt], pairing="cross_generator")

    assert [[m.pk for m in comparison_candidates(x)] for x in built] == [[a_copy.pk, b.pk]]
    assert _duplicates(built[0]) == [(a_copy.pk, a.pk)]
    assert built.left_out == LeftOut(
        pairs=1, duplicates=1, prompts=0
    )  # (a, a_copy) compared a text with itself


def test_k_way_keeps_one_copy_of_each_text_and_records_the_rest():
    prompt, cands = _prompt_with(["One.", "One.", "Two.", "Three.", "Four.", "Four. "])

    built = comparisons_build(prompts=[prompt], size=4)

    assert len(built) == 1 and built[0].size == 4
    shown = [c.pk for c in comparison_candidates(built[0])]
    assert shown == [cands[0].pk, cands[2].pk, cands[3].pk, cands[4].pk]
    assert _duplicates(built[0]) == [(cands[0].pk, cands[1].pk), (cands[4].pk, cands[5].pk)]
    assert built.left_out == LeftOut(pairs=0, duplicates=2, prompts=0)


def test_k_way_with_too_few_different_texts_leaves_the_prompt_out():
    prompt, _ = _prompt_with(["One.", "One.", "Two.", "Three."])
    short, _ = _prompt_with(["Only.", "Two."])  # too few candidates: skipped, not counted

    built = comparisons_build(prompts=[prompt, short], size=4)

    assert list(built) == []
    assert built.left_out == LeftOut(pairs=0, duplicates=1, prompts=1)
    assert not Comparison.objects.exists()


def test_a_random_pair_of_one_text_leaves_the_prompt_out():
    prompt, _ = _prompt_with([SAME, SAME])

    built = comparisons_build(prompts=[prompt], pairing="random_pair")

    assert list(built) == []
    assert built.left_out == LeftOut(pairs=1, duplicates=1, prompts=1)


def test_a_rebuild_reuses_the_comparison_and_records_copies_written_since():
    prompt, (a, b) = _prompt_with([SAME, "It is green."])
    first = comparisons_build(prompts=[prompt])
    late = CandidateFactory.create(prompt=prompt, generator=a.generator, sample_index=9, text=SAME)

    again = comparisons_build(prompts=[prompt])

    assert [x.pk for x in again] == [x.pk for x in first]
    assert _duplicates(again[0]) == [(a.pk, late.pk)]
    assert again.left_out == LeftOut(pairs=2, duplicates=1, prompts=0)
    comparisons_build(prompts=[prompt])  # once more: nothing twice
    assert ComparisonDuplicate.objects.count() == 1


def test_similar_groups_near_identical_texts_above_the_threshold():
    words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen".split()
    near = " ".join(words[:-1] + ["sixteen"])  # one word in fifteen changed: 14/15 alike
    prompt, (a, b, c) = _prompt_with([" ".join(words), near, "Something else entirely."])

    assert text_similarity(a.text, b.text) == pytest.approx(14 / 15)
    assert len(comparisons_build(prompts=[prompt], dedupe="similar", similarity=0.99)) == 3
    built = comparisons_build(prompts=[prompt], dedupe="similar")  # default threshold 0.9

    assert [[m.pk for m in comparison_candidates(x)] for x in built] == [[a.pk, c.pk]]
    assert _duplicates(built[0]) == [(a.pk, b.pk)]
    assert built.left_out == LeftOut(pairs=2, duplicates=1, prompts=0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dedupe": "fuzzy"}, "dedupe"),
        ({"dedupe": "similar", "similarity": 0}, "similarity"),
        ({"dedupe": "similar", "similarity": 1.5}, "similarity"),
        ({"dedupe": "similar", "similarity": True}, "similarity"),
        ({"dedupe": "exact", "similarity": 0.8}, "similarity"),
    ],
)
def test_bad_dedupe_settings_are_named_and_nothing_is_built(kwargs, field):
    prompt, _ = _prompt_with(["One.", "Two."])

    with pytest.raises(InvalidField) as caught:
        comparisons_build(prompts=[prompt], **kwargs)

    assert caught.value.field == field
    assert not Comparison.objects.exists()
    if field == "dedupe":
        assert caught.value.message == 'dedupe: must be one of exact, similar, off (got "fuzzy")'


def test_text_groups_and_similarity_rules():
    class Text:
        def __init__(self, text):
            self.text = text

    items = [Text("a  b"), Text("a b c"), Text(" a\nb "), Text("A b")]
    assert [[items.index(i) for i in g] for g in text_groups(items)] == [[0, 2], [1], [3]]  # case counts
    assert [[items.index(i) for i in g] for g in text_groups(items, dedupe="off")] == [[0], [1], [2], [3]]
    similar = text_groups(items, dedupe="similar", similarity=0.8)  # "a b" ~ "a b c": 2*2/5
    assert [[items.index(i) for i in g] for g in similar] == [[0, 1, 2], [3]]
    assert text_similarity("The answer is 4.", "The answer is 5.") == 0.75
    assert text_similarity("x", " x ") == 1.0
    assert same_text("a\tb", "a b") and not same_text("a b", "ab")
