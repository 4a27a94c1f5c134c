"""The ``rankings`` view: one row per K-way ranking judgment, or (option ``pairs``) its K-choose-2
pairs in the TRL conversational format, all sharing the ranking's ``ranking_id``.

Pair judgments are left out (counted in ``stats["pair_judgments"]``); so are tied ranking pairs
(``stats["ties"]``), with the margin mapping of ``export.formats.base``, and pairs of identical
texts (``stats["identical_pairs"]``).

A ranking row lists the comparison's duplicates (unseen copies of a shown text) after the shown
responses, each in the ranking group of its copy: tied with it. The ``pairs`` option writes no
pair for them (each would repeat its copy's row byte for byte).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from comparisons.dedupe import same_text
from export.formats.base import MESSAGES, Groups, Row, View, _chosen_rejected, _provenance_fields
from export.records import JudgmentRecord, PromptInfo, pair_events


class RankingsView(View):
    name = "rankings"
    title = "K-way rankings"

    @property
    def pairs(self) -> bool:
        return bool(self.options.get("pairs"))

    @property
    def reads_duplicates(self) -> bool:  # type: ignore[override]
        return not self.pairs

    @property
    def description(self) -> str:  # type: ignore[override]
        if self.pairs:
            return (
                "K-way rankings expanded to their K-choose-2 pairs, in the TRL conversational preference "
                "format (`prompt`, `chosen`, `rejected`, `margin`). All pairs of one ranking share a "
                "`ranking_id`: keep them in one batch element (the InstructGPT recipe) rather than "
                "shuffling them apart. Tied pairs are left out."
            )
        text = (
            "One row per K-way ranking judgment. `responses` lists the candidates in stored order; "
            "`ranking` is groups of indices into `responses`, best first, ties grouped; `shown_order` "
            "is the indices in the order the rater saw them (label A first). Pair judgments are left out."
        )
        if self.listed_duplicates:
            text += (
                " Some rankings also list, after the responses shown, responses the rater did not see "
                "because their text repeats a shown one: each sits in its copy's `ranking` group (a tie), "
                "is absent from `shown_order`, and counts in `k`. Expanded to pairs, it only repeats its "
                "copy's pairs."
            )
        return text

    def fields(self) -> list[tuple[str, pa.DataType]]:
        if self.pairs:
            return [
                ("prompt", MESSAGES),
                ("chosen", MESSAGES),
                ("rejected", MESSAGES),
                ("margin", pa.float64()),
            ] + _provenance_fields("raw")
        return [
            ("prompt_id", pa.string()),
            ("prompt", MESSAGES),
            (
                "responses",
                pa.list_(
                    pa.struct(
                        [("candidate_id", pa.int64()), ("text", pa.string()), ("generator", pa.string())]
                    )
                ),
            ),
            ("ranking", pa.list_(pa.list_(pa.int64()))),
            ("shown_order", pa.list_(pa.int64())),
            ("k", pa.int64()),
            ("comparison_id", pa.int64()),
            ("ranking_id", pa.int64()),
            ("rater_id", pa.string()),
        ]

    def rows(self, groups: Groups) -> Iterator[tuple[PromptInfo, Row]]:
        for group in groups:
            for record in group:
                if record.ranking is None:
                    self.stats["pair_judgments"] += 1
                    continue
                if self.pairs:
                    for event in pair_events(record):
                        if same_text(event.x.text, event.y.text):
                            self.stats["identical_pairs"] += 1
                            continue
                        if event.strength == 0:
                            self.stats["ties"] += 1
                            continue
                        chosen, rejected = _chosen_rejected(event)
                        yield (
                            record.prompt,
                            {
                                "prompt": record.prompt.messages,
                                "chosen": [{"role": "assistant", "content": chosen.text}],
                                "rejected": [{"role": "assistant", "content": rejected.text}],
                                "margin": float(abs(event.strength)),
                                "prompt_id": record.prompt.public_id,
                                "comparison_id": record.comparison_id,
                                "ranking_id": record.id,
                                "rater_id": self.pseudonym(record.rater_user_id),
                                "judgment_id": record.id,
                            },
                        )
                    continue
                yield record.prompt, self.ranking_row(record)

    def ranking_row(self, record: JudgmentRecord) -> Row:
        """One ranking: the shown responses by position, then the duplicates, each in its copy's group."""
        responses = record.candidates + record.duplicates
        self.listed_duplicates += len(record.duplicates)
        ranking = []
        for group in record.groups():
            positions = {c.position for c in group}
            ranking.append(
                sorted(c.position for c in group)
                + [
                    len(record.candidates) + i
                    for i, copy in enumerate(record.duplicates)
                    if copy.position in positions
                ]
            )
        return {
            "prompt_id": record.prompt.public_id,
            "prompt": record.prompt.messages,
            "responses": [
                {"candidate_id": c.id, "text": c.text, "generator": c.generator} for c in responses
            ],
            "ranking": ranking,
            "shown_order": [c.position for c in record.shown],
            "k": len(responses),
            "comparison_id": record.comparison_id,
            "ranking_id": record.id,
            "rater_id": self.pseudonym(record.rater_user_id),
        }
