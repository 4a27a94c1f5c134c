"""The ``ratings`` view: one row per response a rater scored (UltraFeedback / HelpSteer2-ratings
style), with one integer column per Likert criterion of the exported rubrics.

A Likert key that clashes with a fixed column gets a ``_rating`` suffix. Judgments without Likert
answers give no rows (counted in ``stats["judgments_without_ratings"]``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from export.formats.base import MESSAGES, Groups, Row, View
from export.records import LABELS, PromptInfo


class RatingsView(View):
    name = "ratings"
    title = "Per-response ratings"

    @property
    def description(self) -> str:  # type: ignore[override]
        keys = ", ".join(f"`{k}`" for k in self.rating_columns) or "(none in these rubrics)"
        return (
            "UltraFeedback / HelpSteer2-ratings style: one row per response a rater scored, with one integer "
            f"column per Likert criterion (1..7, null when not answered): {keys}. Judgments without Likert "
            "answers give no rows."
        )

    @property
    def rating_columns(self) -> list[str]:
        fixed = {name for name, _ in self._fixed()}
        return [k if k not in fixed else f"{k}_rating" for k in self.likert_keys]

    def _fixed(self) -> list[tuple[str, pa.DataType]]:
        return [
            ("prompt_id", pa.string()),
            ("prompt", MESSAGES),
            ("response", pa.string()),
            ("candidate_id", pa.int64()),
            ("generator", pa.string()),
            ("label", pa.string()),
            ("comparison_id", pa.int64()),
            ("judgment_id", pa.int64()),
            ("rater_id", pa.string()),
            ("rubric_id", pa.int64()),
        ]

    def fields(self) -> list[tuple[str, pa.DataType]]:
        return self._fixed() + [(column, pa.int64()) for column in self.rating_columns]

    def rows(self, groups: Groups) -> Iterator[tuple[PromptInfo, Row]]:
        columns = dict(zip(self.likert_keys, self.rating_columns, strict=True))
        for group in groups:
            for record in group:
                answers = {
                    key: value
                    for key, value in (record.criteria or {}).items()
                    if key in columns and isinstance(value, dict)
                }
                if not answers:
                    self.stats["judgments_without_ratings"] += 1
                    continue
                for index, candidate in enumerate(record.shown):
                    label = LABELS[index]
                    scores = {columns[key]: value.get(label) for key, value in answers.items()}
                    if all(v is None for v in scores.values()):
                        continue
                    row: Row = {
                        "prompt_id": record.prompt.public_id,
                        "prompt": record.prompt.messages,
                        "response": candidate.text,
                        "candidate_id": candidate.id,
                        "generator": candidate.generator,
                        "label": label,
                        "comparison_id": record.comparison_id,
                        "judgment_id": record.id,
                        "rater_id": self.pseudonym(record.rater_user_id),
                        "rubric_id": record.rubric_id,
                    }
                    for column in self.rating_columns:
                        row[column] = scores.get(column)
                    yield record.prompt, row
