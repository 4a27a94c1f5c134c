"""The pair views, one row per pairwise preference: ``trl`` (TRL / OpenRLHF preference format),
``hh`` (Anthropic HH-RLHF transcripts) and ``helpsteer`` (HelpSteer2-Preference).

Raw ``trl`` and ``hh`` rows are also written a column at a time by ``export.columnar``, from the
same ``prompt_columns`` and ``completion`` methods that :meth:`row` uses, so both paths give the
same bytes. ``trl`` and ``hh`` leave ties out (counted in ``stats``); ``helpsteer`` keeps them.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from export.formats.base import (
    MESSAGES,
    PairView,
    Row,
    _chosen_rejected,
    _provenance_fields,
    _role_name,
    flat_prompt,
)
from export.records import CandidateInfo, PairEvent, PromptInfo


class TrlView(PairView):
    name = "trl"
    title = "TRL preference"

    @property
    def standard(self) -> bool:
        return bool(self.options.get("standard"))

    @property
    def implicit(self) -> bool:
        return bool(self.options.get("implicit_prompt"))

    @property
    def description(self) -> str:  # type: ignore[override]
        fmt = "Standard (plain strings)" if self.standard else "Conversational (message lists)"
        prompt = "implicit prompt" if self.implicit else "explicit prompt"
        return (
            f"Format: {fmt}. Type: Preference, {prompt}. Read by TRL's RewardTrainer (which uses "
            "`margin`) and DPOTrainer, and by OpenRLHF (`--prompt_key prompt --chosen_key chosen "
            "--rejected_key rejected --apply_chat_template` for the conversational format). The "
            "columns after `margin` are provenance that trainers ignore; pairs from one K-way "
            "ranking share a `ranking_id`."
        )

    def fields(self) -> list[tuple[str, pa.DataType]]:
        text = pa.string() if self.standard else MESSAGES
        head = [] if self.implicit else [("prompt", text)]
        return (
            head
            + [("chosen", text), ("rejected", text), ("margin", pa.float64())]
            + _provenance_fields(self.aggregation)
        )

    @property
    def columnar(self) -> bool:
        return not self.aggregated

    def prompt_columns(self, prompt: PromptInfo) -> Row:
        if self.implicit:
            return {}
        return {"prompt": standard_prompt(prompt.messages) if self.standard else prompt.messages}

    def completion(self, prompt: PromptInfo, candidate: CandidateInfo) -> Any:
        """``chosen`` / ``rejected`` for one candidate (with the prompt in front when it is implicit)."""
        if self.standard:
            text = standard_completion(candidate.text)
            return standard_prompt(prompt.messages) + text if self.implicit else text
        turn = [{"role": "assistant", "content": candidate.text}]
        return prompt.messages + turn if self.implicit else turn

    def row(self, event: PairEvent) -> Row:
        chosen, rejected = _chosen_rejected(event)
        row = self.prompt_columns(event.prompt)
        row["chosen"] = self.completion(event.prompt, chosen)
        row["rejected"] = self.completion(event.prompt, rejected)
        row["margin"] = float(abs(event.strength))
        row.update(self.provenance(event))
        return row


def standard_prompt(messages: list[dict[str, str]]) -> str:
    """The standard-format prompt: ``Role: text`` turns joined by blank lines, then ``Assistant:``."""
    return "\n\n".join(f"{_role_name(m['role'])}: {m['content']}" for m in messages) + "\n\nAssistant:"


def standard_completion(text: str) -> str:
    """TRL concatenates prompt + completion verbatim: the completion carries its leading space."""
    return text if text[:1].isspace() else " " + text


class HhView(PairView):
    name = "hh"
    title = "Anthropic HH-RLHF"
    description = (
        "Format: Standard, implicit prompt (Anthropic HH-RLHF transcripts). `chosen` and `rejected` are "
        "whole dialogues with `\\n\\nHuman: ` and `\\n\\nAssistant: ` turns that differ in the last "
        "assistant turn. A system message has no HH marker; it is kept in the `system` column instead."
    )

    def fields(self) -> list[tuple[str, pa.DataType]]:
        return [
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("system", pa.string()),
        ] + _provenance_fields(self.aggregation)

    @property
    def columnar(self) -> bool:
        return not self.aggregated

    def prompt_columns(self, prompt: PromptInfo) -> Row:
        return {"system": "\n\n".join(m["content"] for m in prompt.messages if m["role"] == "system")}

    def completion(self, prompt: PromptInfo, candidate: CandidateInfo) -> Any:
        """The whole transcript ending in this candidate's assistant turn."""
        turns = "".join(
            f"\n\n{'Assistant' if m['role'] == 'assistant' else 'Human'}: {m['content']}"
            for m in prompt.messages
            if m["role"] != "system"
        )
        return f"{turns}\n\nAssistant: {candidate.text}"

    def row(self, event: PairEvent) -> Row:
        chosen, rejected = _chosen_rejected(event)
        row: Row = {
            "chosen": self.completion(event.prompt, chosen),
            "rejected": self.completion(event.prompt, rejected),
            **self.prompt_columns(event.prompt),
        }
        row.update(self.provenance(event))
        return row


def helpsteer_strength(strength: float) -> int:
    """An aggregated strength on HelpSteer2's integer scale: rounded half away from zero (1.5 -> 2,
    2.5 -> 3, -0.5 -> -1), never 0 unless the strength is 0 (0.25 -> 1: a preference never becomes
    a tie), at most 3 either way."""
    if strength == 0:
        return 0
    magnitude = min(3, max(1, math.floor(abs(strength) + 0.5)))
    return magnitude if strength > 0 else -magnitude


class HelpSteerView(PairView):
    name = "helpsteer"
    title = "HelpSteer2-Preference"
    keep_ties = True

    @property
    def description(self) -> str:  # type: ignore[override]
        text = (
            "HelpSteer2-Preference style pairs: `preference_strength` -3..3, where -3 means response_1 is "
            "much better, 0 about the same, 3 response_2 much better. In raw exports response_1 is the "
            "response the rater saw first (label A). `preference_statement` is the rater's rationale. "
            "`prompt` is the conversation as one string (a lone user turn as it is, else `User: ...` "
            "turns); `prompt_messages` keeps the turns."
        )
        if self.aggregated:
            text += (
                " Aggregated rows: response_1 is the response placed first in the row's comparison; "
                "`aggregated_strength` is the exact aggregated strength (the same number as `trl`'s "
                "`margin` for the pair, with its sign), and `preference_strength` is it rounded half "
                "away from zero (1.5 -> 2, 2.5 -> 3, -0.5 -> -1), at least 1 either way when it is not "
                "0, so a preference never becomes a tie."
            )
        return text

    def fields(self) -> list[tuple[str, pa.DataType]]:
        exact = [("aggregated_strength", pa.float64())] if self.aggregated else []
        return (
            [
                ("prompt", pa.string()),
                ("prompt_messages", MESSAGES),
                ("response_1", pa.string()),
                ("response_2", pa.string()),
                ("preference_strength", pa.int64()),
            ]
            + exact
            + [("preference_statement", pa.string())]
            + _provenance_fields(self.aggregation)
        )

    def row(self, event: PairEvent) -> Row:
        record = event.record
        row: Row = {
            "prompt": flat_prompt(event.prompt.messages),
            "prompt_messages": event.prompt.messages,
            "response_1": event.x.text,
            "response_2": event.y.text,
            "preference_strength": helpsteer_strength(event.strength),
        }
        if self.aggregated:
            row["aggregated_strength"] = float(event.strength)
        row["preference_statement"] = (record.rationale or "") if record is not None else ""
        row.update(self.provenance(event))
        return row
