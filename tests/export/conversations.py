"""Conversation sessions driven through the HTTP API, recorded as the trainer saw them, and what
the ``rankings``, ``trl`` and ``sft`` exports must then contain, derived from that record alone
(the labels the trainer saw, their texts, the groups they ranked), never from the stored rows.

Texts are compared, not ids: within one turn's alternatives every shown text is distinct, and an
unseen duplicate has its copy's text, so a ranking as groups of texts is the same with or
without duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rest_framework.test import APIClient

from export.services import export_snapshot_write
from export.spec import export_spec_clean
from labeling.models import Turn


@dataclass
class Ranked:
    """One model turn's ranking as the trainer made it: texts by label, groups of labels."""

    turn_id: int
    texts: dict[str, str]
    groups: list[list[str]]
    rewrite: str = ""

    def text_groups(self) -> list[frozenset[str]]:
        return [frozenset(self.texts[label] for label in group) for group in self.groups]

    def pairs(self) -> set[tuple[str, str, float]]:
        """(chosen, rejected, margin) for every two labels in different groups."""
        out = set()
        for gi, better in enumerate(self.groups):
            for gj in range(gi + 1, len(self.groups)):
                for a in better:
                    for b in self.groups[gj]:
                        out.add((self.texts[a], self.texts[b], float(min(3, gj - gi))))
        return out


@dataclass
class Conversation:
    """A session as its trainer saw it: what was said, what was kept, what was ranked."""

    api: APIClient
    id: int
    system: str = ""
    branch: list[dict[str, Any]] = field(default_factory=list)  # {"role", "text", "source", "turn"}
    rankings: list[Ranked] = field(default_factory=list)
    abandoned: set[int] = field(default_factory=set)  # turn ids the trainer went back from
    finished: bool = False

    opening: dict[str, Any] | None = None  # the model's turn after a seeded opening

    @classmethod
    def start(cls, api: APIClient, queue_id: int, *, system: str = "", **extra: Any) -> Conversation:
        """Start a session (``extra``: a red-team session's target and category); a seeded one
        records its opening's turns (its assistant turns as ``seed``) and keeps the model's first
        turn in ``opening``."""
        response = api.post("/api/v1/sessions/", {"queue": queue_id, **extra}, format="json")
        assert response.status_code == 201, response.content
        body = response.json()
        talk = cls(api=api, id=body["id"], system=system)
        turns = body["turns"]
        if turns and turns[-1]["role"] == "assistant" and turns[-1]["status"] != "done":
            talk.opening = turns.pop()
        for turn in turns:
            source = "seed" if turn["role"] == "assistant" else None
            talk.branch.append(
                {"role": turn["role"], "text": turn["text"], "source": source, "turn": turn["id"]}
            )
        return talk

    def say(self, text: str, *, generate: bool = True) -> dict[str, Any]:
        """The trainer's message; returns the model turn (ready, done at once, or pending)."""
        response = self.api.post(
            f"/api/v1/sessions/{self.id}/messages/", {"text": text, "generate": generate}, format="json"
        )
        assert response.status_code == 202, response.content
        user, turn = response.json()["turns"][-2:]
        assert user["role"] == "user" and turn["role"] == "assistant"
        self.branch.append({"role": "user", "text": text, "turn": user["id"]})
        if turn["status"] == "done":  # one distinct text: kept at once, nothing to rank
            self.branch.append(
                {"role": "assistant", "text": turn["text"], "source": "model", "turn": turn["id"]}
            )
        return turn

    def rank(self, turn: dict[str, Any], groups: list[list[str]], *, rewrite: str = "") -> None:
        """Rank a ready turn by labels; the conversation keeps the first label of the best group
        (or the rewrite)."""
        assert turn["status"] == "ready", turn
        texts = {a["label"]: a["text"] for a in turn["alternatives"]}
        body: dict[str, Any] = {"ranking": groups}
        if rewrite:
            body["rewrite"] = rewrite
        response = self.api.post(f"/api/v1/assignments/{turn['assignment']}/judgment/", body, format="json")
        assert response.status_code == 201, response.content
        self.rankings.append(Ranked(turn["id"], texts, groups, rewrite))
        kept, source = (rewrite, "rewrite") if rewrite else (texts[groups[0][0]], "model")
        self.branch.append({"role": "assistant", "text": kept, "source": source, "turn": turn["id"]})

    def rank_by_text(self, turn: dict[str, Any], text_groups: list[list[str]], **kwargs: Any) -> None:
        """Rank by the alternatives' texts (for deterministic data whatever the shown order)."""
        label_of = {a["text"]: a["label"] for a in turn["alternatives"]}
        self.rank(turn, [sorted(label_of[t] for t in group) for group in text_groups], **kwargs)

    def reply(self, turn: dict[str, Any], text: str) -> None:
        """The trainer writes the model's turn (a demonstration)."""
        response = self.api.post(
            f"/api/v1/sessions/{self.id}/turns/{turn['id']}/reply/", {"text": text}, format="json"
        )
        assert response.status_code == 200, response.content
        self.branch.append({"role": "assistant", "text": text, "source": "demonstration", "turn": turn["id"]})

    def back_to(self, turn_id: int) -> dict[str, Any]:
        """Go back to a turn of the branch: it and the later turns are abandoned."""
        response = self.api.post(f"/api/v1/sessions/{self.id}/branch/", {"turn": turn_id}, format="json")
        assert response.status_code == 200, response.content
        at = next(i for i, t in enumerate(self.branch) if t["turn"] == turn_id)
        self.abandoned |= {t["turn"] for t in self.branch[at:]}
        self.branch = self.branch[:at]
        return response.json()

    def finish(self, **verdict: Any) -> None:
        """Finish (a red-team session with its ``verdict`` and ``description``)."""
        response = self.api.post(f"/api/v1/sessions/{self.id}/finish/", verdict, format="json")
        assert response.status_code == 200 and response.json()["status"] == "finished", response.content
        self.finished = True

    # ------------------------------------------------------------------- what the exports hold

    def sft_messages(self) -> list[dict[str, str]]:
        """The kept branch up to the last settled reply, the system prompt first."""
        last = max(i for i, t in enumerate(self.branch) if t["role"] == "assistant")
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [{"role": t["role"], "content": t["text"]} for t in self.branch[: last + 1]]

    def trainer_replies(self) -> list[int]:
        offset = 1 if self.system else 0
        return [
            offset + i for i, t in enumerate(self.branch) if t.get("source") in ("rewrite", "demonstration")
        ]


def judgment_of(turn_id: int) -> int:
    turn = Turn.objects.select_related("assignment__judgment").get(pk=turn_id)
    assert turn.assignment is not None
    return turn.assignment.judgment.pk


def export_rows(tmp: Path, name: str, request: dict[str, Any]) -> tuple[list[tuple[str, dict]], dict]:
    """Write a snapshot; its rows as (split, row) in file order, and the manifest."""
    spec = export_spec_clean(name=name, **request)
    folder = tmp / f"{name}-{request['format']}-{len(list(tmp.iterdir())) if tmp.exists() else 0}"
    manifest = export_snapshot_write(spec=spec, folder=folder)
    rows = []
    for split in sorted(manifest["splits"]):
        path = folder / "data" / f"{split}.jsonl"
        rows += [(split, json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows, manifest


def check_exports(tmp: Path, conversations: list[Conversation], *, queue_id: int) -> dict[str, list]:
    """The rankings, native, trl and sft exports of the queue hold exactly these conversations'
    rankings (abandoned turns' included), pairs and kept branches, in order and direction (every
    row in ``train``, so that file order is the export's order). Returns the rows."""
    every = {"filters": {"queues": [queue_id]}, "options": {"test_fraction": 0.0}}
    ranked = sorted((r for c in conversations for r in c.rankings), key=lambda r: judgment_of(r.turn_id))
    rankings, _ = export_rows(tmp, "talks", {"format": "rankings", **every})
    assert [row["ranking_id"] for _, row in rankings] == [judgment_of(r.turn_id) for r in ranked]
    for (_, row), r in zip(rankings, ranked, strict=True):
        texts = [resp["text"] for resp in row["responses"]]
        assert [frozenset(texts[i] for i in group) for group in row["ranking"]] == r.text_groups()

    native, _ = export_rows(tmp, "talks", {"format": "native", **every})
    assert [row["judgment_id"] for _, row in native] == [judgment_of(r.turn_id) for r in ranked]
    for (_, row), r in zip(native, ranked, strict=True):
        text_of = {c["candidate_id"]: c["text"] for c in row["candidates"]}
        assert {"ABCDEFGHI"[i]: text_of[c] for i, c in enumerate(row["shown_order"])} == r.texts
        assert row["ranking"] == r.groups and row["task"] == "ranking" and row["queue_id"] == queue_id
        assert row["rewrite"] == (r.rewrite or None)

    trl, _ = export_rows(tmp, "talks", {"format": "trl", **every})
    by_ranking: dict[int, set[tuple[str, str, float]]] = {}
    order: list[int] = []
    for _, row in trl:
        assert row["judgment_id"] == row["ranking_id"]
        if not order or order[-1] != row["ranking_id"]:
            order.append(row["ranking_id"])  # a ranking's pairs are contiguous
        pair = (row["chosen"][0]["content"], row["rejected"][0]["content"], row["margin"])
        by_ranking.setdefault(row["ranking_id"], set()).add(pair)
    assert len(order) == len(set(order))
    expected = {judgment_of(r.turn_id): r.pairs() for r in ranked}
    assert by_ranking == {k: v for k, v in expected.items() if v}
    assert len(trl) == sum(len(v) for v in expected.values())

    sft, _ = export_rows(tmp, "talks", {"format": "sft", **every})
    done = sorted((c for c in conversations if c.finished), key=lambda c: c.id)
    assert [row["session_id"] for _, row in sft] == [c.id for c in done]
    for (_, row), c in zip(sft, done, strict=True):
        assert row["messages"] == c.sft_messages()
        assert row["trainer_replies"] == c.trainer_replies()
        turns = {reply["turn_id"] for reply in row["replies"]}
        assert not turns & c.abandoned
    return {"rankings": rankings, "native": native, "trl": trl, "sft": sft}
