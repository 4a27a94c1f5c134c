"""When two responses count as the same text, and grouping a prompt's candidates by text. Pure: no database.

Pair and K-way building (``comparisons.services.comparisons``) show raters one copy of each text:
comparing a text with itself wastes a judgment and confuses the rater. Three modes:

* ``exact`` (the default): the same words, once whitespace is normalized (runs of spaces, tabs
  and line breaks count as one space; leading and trailing whitespace is ignored); case and
  punctuation count.
* ``similar``: also near-identical texts, whose :func:`text_similarity` is at least a threshold.
* ``off``: every candidate counts as its own text.

Exports use :func:`same_text` (the ``exact`` rule) to leave out any pair of identical texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import Protocol, TypeVar

from comparisons.importing import InvalidField, shown_value

DEDUPE_MODES = ("exact", "similar", "off")
#: The ``similar`` mode's threshold when none is given.
DEFAULT_SIMILARITY = 0.9


class _HasText(Protocol):
    @property
    def text(self) -> str: ...


_T = TypeVar("_T", bound=_HasText)


def normalize_whitespace(text: str) -> str:
    """``text`` with each run of whitespace as one space and none at either end."""
    return " ".join(text.split())


def same_text(a: str, b: str) -> bool:
    """Whether two texts are identical once whitespace is normalized (the ``exact`` rule)."""
    return a == b or a.split() == b.split()


def text_similarity(a: str, b: str) -> float:
    """How alike two texts are, 0..1: difflib's ratio over their words (2 x matching words / all words).

    1.0 exactly when :func:`same_text`; word-level, so ``"The answer is 4."`` and
    ``"The answer is 5."`` score 0.75, and one changed word in forty scores 0.975.
    """
    words_a, words_b = a.split(), b.split()
    if words_a == words_b:
        return 1.0
    # autojunk would treat frequent words ("the") of a long text as noise and under-count matches.
    return SequenceMatcher(None, words_a, words_b, autojunk=False).ratio()


def dedupe_clean(dedupe: str, similarity: float | None) -> float | None:
    """Check a dedupe choice; return the threshold of ``similar`` (DEFAULT_SIMILARITY when not given).

    Raises InvalidField naming ``dedupe`` (an unknown mode) or ``similarity`` (not a number above
    0 and at most 1, or given with a mode other than ``similar``).
    """
    if dedupe not in DEDUPE_MODES:
        shown = ", ".join(DEDUPE_MODES)
        raise InvalidField("dedupe", f"must be one of {shown} (got {shown_value(dedupe)})")
    if dedupe != "similar":
        if similarity is not None:
            raise InvalidField("similarity", 'only applies with dedupe "similar"')
        return None
    if similarity is None:
        return DEFAULT_SIMILARITY
    if isinstance(similarity, bool) or not isinstance(similarity, int | float) or not 0 < similarity <= 1:
        raise InvalidField("similarity", "must be a number greater than 0 and at most 1")
    return float(similarity)


def text_groups(
    items: Sequence[_T], *, dedupe: str = "exact", similarity: float | None = None
) -> list[list[_T]]:
    """``items`` grouped by text, in the order of each group's first item; items keep their order.

    The first item of a group is its kept copy; the others repeat its text. ``exact`` groups texts
    that are :func:`same_text`; ``similar`` also puts an item in the first group whose kept copy is
    at least ``similarity`` similar (:func:`text_similarity`; compared with kept copies only, so
    the grouping does not chain); ``off`` makes one group per item.
    """
    if dedupe == "off":
        return [[item] for item in items]
    threshold = dedupe_clean(dedupe, similarity)
    groups: list[list[_T]] = []
    by_words: dict[tuple[str, ...], list[_T]] = {}
    kept_words: list[list[str]] = []
    for item in items:
        words = item.text.split()
        group = by_words.get(tuple(words))
        if group is None and threshold is not None:
            group = _similar_group(words, kept_words, groups, threshold)
        if group is None:
            group = []
            groups.append(group)
            kept_words.append(words)
        by_words.setdefault(tuple(words), group)
        group.append(item)
    return groups


def near_duplicate_index(
    text: str, others: Sequence[str], *, similarity: float = DEFAULT_SIMILARITY
) -> int | None:
    """The index of the first of ``others`` that ``text`` repeats (``same_text``) or nearly repeats
    (:func:`text_similarity` at least ``similarity``), else None. The ``similar`` rule, for one
    new text against texts kept before (the adversary's attack prompts)."""
    words = text.split()
    kept_words = [other.split() for other in others]
    for i, kept in enumerate(kept_words):
        if kept == words:
            return i
    matcher = SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(words)
    for i, kept in enumerate(kept_words):
        matcher.set_seq1(kept)
        # The quick ratios are upper bounds of ratio(): most unlike texts stop there.
        if (
            matcher.real_quick_ratio() >= similarity
            and matcher.quick_ratio() >= similarity
            and matcher.ratio() >= similarity
        ):
            return i
    return None


def _similar_group(
    words: list[str], kept_words: list[list[str]], groups: list[list[_T]], threshold: float
) -> list[_T] | None:
    """The first group whose kept copy is at least ``threshold`` similar to ``words``, if any."""
    matcher = SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(words)  # difflib caches what it learns about the second sequence
    for kept, group in zip(kept_words, groups, strict=True):
        matcher.set_seq1(kept)
        # The quick ratios are upper bounds of ratio(): most unlike texts stop there.
        if (
            matcher.real_quick_ratio() >= threshold
            and matcher.quick_ratio() >= threshold
            and matcher.ratio() >= threshold
        ):
            return group
    return None
