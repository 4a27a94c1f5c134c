"""The dataset's composition: who labeled what, per prompt tag (the card's "Composition" section
and the manifest's ``composition``).

Counted over the judgments of the comparisons the export kept (after ``min_judgments`` /
``min_agreement`` in raw exports; every comparison read in aggregated ones), as the card's rater
count and agreement are:

- ``judgments``, and ``largest_rater_share``: the largest share of them one rater gave;
- per prompt tag (a judgment counts for each tag of its prompt): ``judgments``, ``raters`` (how
  many gave them), ``largest_rater_share`` (of the tag's judgments), and ``agreement``: the
  *majority share* (``export.records.agreement``, what ``min_agreement`` tests), the share of a
  comparison's judgments agreeing with the most common answer averaged over its candidate pairs,
  averaged over the tag's comparisons with two or more judgments;
- ``untagged``: judgments whose prompt has no tag.

Raters are counted, never named. Sums run in comparison order on both export paths (the
record path and the columnar one), so the same export gives the same numbers to the last bit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The agreement measure's name, as the card and manifest give it.
AGREEMENT_MEASURE = "majority share"


@dataclass
class _TagCounts:
    by_rater: Counter[int] = field(default_factory=Counter)
    agreement_sum: float = 0.0
    agreement_comparisons: int = 0


@dataclass
class Composition:
    """Filled in as comparisons are kept (``add_judgments`` / ``add_agreement``)."""

    by_rater: Counter[int] = field(default_factory=Counter)
    untagged: int = 0
    tags: dict[str, _TagCounts] = field(default_factory=dict)

    def add_judgments(self, tags: Sequence[str], rater_id: int, n: int = 1) -> None:
        """``n`` judgments by one rater on a prompt with ``tags``."""
        self.by_rater[rater_id] += n
        if not tags:
            self.untagged += n
        for tag in dict.fromkeys(tags):  # a tag listed twice counts once
            self.tags.setdefault(tag, _TagCounts()).by_rater[rater_id] += n

    def add_agreement(self, tags: Sequence[str], share: float) -> None:
        """The majority share of one kept comparison with two or more judgments (call in comparison order)."""
        for tag in dict.fromkeys(tags):
            counts = self.tags.setdefault(tag, _TagCounts())
            counts.agreement_sum += share
            counts.agreement_comparisons += 1

    def add_comparison(self, tags: Sequence[str], rater_ids: Iterable[int], share: float | None) -> None:
        """One kept comparison: its judgments' raters, and its majority share (None: one judgment)."""
        for rater_id in rater_ids:
            self.add_judgments(tags, rater_id)
        if share is not None:
            self.add_agreement(tags, share)

    def as_dict(self) -> dict[str, Any]:
        """The manifest's ``composition`` (and the card's section): plain, sorted, rounded."""
        return {
            "judgments": sum(self.by_rater.values()),
            "raters": len(self.by_rater),
            "largest_rater_share": _largest_share(self.by_rater),
            "untagged": self.untagged,
            "agreement_measure": AGREEMENT_MEASURE,
            "tags": {
                tag: {
                    "judgments": sum(c.by_rater.values()),
                    "raters": len(c.by_rater),
                    "largest_rater_share": _largest_share(c.by_rater),
                    "agreement": {
                        "mean": round(c.agreement_sum / c.agreement_comparisons, 4)
                        if c.agreement_comparisons
                        else None,
                        "comparisons": c.agreement_comparisons,
                    },
                }
                for tag, c in sorted(self.tags.items())
            },
        }


def _largest_share(by_rater: Counter[int]) -> float | None:
    total = sum(by_rater.values())
    return round(max(by_rater.values()) / total, 4) if total else None


def composition_card_lines(composition: dict[str, Any] | None) -> list[str]:
    """The card's "Composition" section (nothing when the export counts no judgments)."""
    if not composition or not composition["judgments"]:
        return []
    p = [
        "## Composition",
        "",
        f"{composition['judgments']} judgments by {composition['raters']} raters; the most one rater "
        f"gave: {_percent(composition['largest_rater_share'])} of them. Per prompt tag (a judgment "
        "counts for each tag of its prompt; untagged: "
        f"{composition['untagged']}). Agreement is the {AGREEMENT_MEASURE} (what `min_agreement` "
        "tests: the share of a comparison's judgments agreeing with the most common answer, averaged "
        "over its candidate pairs), averaged over the tag's comparisons with two or more judgments.",
        "",
    ]
    if not composition["tags"]:
        return [*p, "No prompt carries a tag.", ""]
    p += [
        f"| tag | judgments | raters | largest share of one rater | agreement ({AGREEMENT_MEASURE}) |",
        "|---|---|---|---|---|",
    ]
    for tag, c in composition["tags"].items():
        agreement = c["agreement"]
        shown = (
            f"{agreement['mean']} over {agreement['comparisons']} comparisons"
            if agreement["comparisons"]
            else "none (no comparison with two judgments)"
        )
        # A tag is imported text: shown as code, its backticks and pipes kept out of the table's way.
        name = tag.replace("`", "'").replace("|", "/").replace("\n", " ")
        p.append(
            f"| `{name}` | {c['judgments']} | {c['raters']} | {_percent(c['largest_rater_share'])} | {shown} |"
        )
    p.append("")
    return p


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{round(100 * share, 2):g}%"
