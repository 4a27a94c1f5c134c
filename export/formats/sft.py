"""The ``sft`` view: one row per finished conversation session, its kept branch as ``messages``
(TRL SFTTrainer's conversational language-modeling format), the template's system prompt first.

Which turns a row holds: the session's branch (never a turn the trainer went back from), up to
its last *settled* reply, an assistant turn that kept a reply (the trainer's best-ranked
alternative, the only one, or the trainer's own); turns after it, a model turn still waiting or
never ranked, are left out and counted (``stats["unsettled_turns"]``). A session with no settled
reply has no row (``stats["sessions_without_reply"]``).

Who wrote what: ``messages`` holds ``role`` and ``content`` only, so any chat template reads it.
Trainer-written replies are marked outside it: ``trainer_replies`` lists their indices into
``messages``, and ``replies`` gives each assistant message its ``source`` (``model``, ``rewrite``,
``demonstration``, or ``seed`` for an opening the session started from) and the ids that join it
to the other views (its prompt, kept candidate, comparison and ranking judgment). SFTTrainer reads
only ``messages`` and ignores the other columns; none of them is named ``prompt``,
``completion``, ``text`` or ``tools``, which it would read.

The row's split is the split of its prompts (``export.splits``: every turn of one session shares
it). The messages are checked against the conversation the last reply was asked for (its prompt):
a kept branch that differs from it is stored data that does not fit, an ExportDataError naming
the session.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from export.formats.base import MESSAGES, Groups, Row, View
from export.records import ExportDataError, PromptInfo, SessionRecord, TurnInfo
from labeling.models import Turn

ASSISTANT = Turn.Role.ASSISTANT.value

_REPLY = pa.struct(
    [
        ("index", pa.int64()),
        ("source", pa.string()),
        ("turn_id", pa.int64()),
        ("prompt_id", pa.string()),
        ("candidate_id", pa.int64()),
        ("generator", pa.string()),
        ("comparison_id", pa.int64()),
        ("judgment_id", pa.int64()),
    ]
)


class SftView(View):
    name = "sft"
    title = "SFT conversations"
    description = (
        "Format: Conversational. Type: Language modeling (the `messages` column TRL's SFTTrainer "
        "reads). One row per finished conversation session: its kept branch, the template's system "
        "prompt first, then the trainer's messages and the replies the conversation kept (the "
        "trainer's best-ranked alternative, or the trainer's own reply). Turns the trainer went back "
        "from are never in it, and a session whose last model turn was not settled ends at its last "
        "settled reply. `messages` holds `role` and `content` only; trainer-written replies are marked "
        "beside it: `trainer_replies` lists their indices into `messages`, and `replies` gives every "
        "assistant message its `source` (`model`; `rewrite`: the trainer ranked the alternatives, then "
        "wrote a better reply; `demonstration`: the trainer wrote the turn instead of ranking; `seed`: "
        "part of the opening the session started from), its turn, prompt, kept candidate and generator, "
        "and the ranking it came from (`comparison_id`, `judgment_id`, the same ids as in the "
        "`rankings`, `trl` and `native` views of these sessions). SFTTrainer ignores every column but "
        "`messages`; with `assistant_only_loss` it trains on every assistant message, trainer-written "
        "ones included: filter on `trainer_replies` to train on one kind only."
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sessions_read = 0
        self.trainer_ids: set[int] = set()

    def fields(self) -> list[tuple[str, pa.DataType]]:
        return [
            ("messages", MESSAGES),
            ("trainer_replies", pa.list_(pa.int64())),
            ("replies", pa.list_(_REPLY)),
            ("session_id", pa.int64()),
            ("queue_id", pa.int64()),
            ("queue", pa.string()),
            ("mode", pa.string()),
            ("rater_id", pa.string()),
            ("finished_at", pa.string()),
        ]

    def rows(self, groups: Groups) -> Iterator[tuple[PromptInfo, Row]]:
        raise TypeError("the sft view reads sessions: use session_rows")

    def session_rows(self, sessions: Iterable[SessionRecord]) -> Iterator[tuple[PromptInfo, Row]]:
        """One ``(prompt, row)`` per session with a settled reply: the prompt is its last reply's
        (the row goes to that prompt's split, every turn's of the session). Counts the sessions
        read in ``sessions_read`` and the trainers of the rows in ``trainer_ids``."""
        for session in sessions:
            self.sessions_read += 1
            found = self.session_row(session)
            if found is not None:
                self.trainer_ids.add(session.trainer_user_id)
                yield found

    def session_row(self, session: SessionRecord) -> tuple[PromptInfo, Row] | None:
        turns = _chain(session)
        last = max(
            (i for i, t in enumerate(turns) if t.role == ASSISTANT and _settled_reply(t)), default=None
        )
        self.stats["unsettled_turns"] += len(turns) - (0 if last is None else last + 1)
        if last is None:
            self.stats["sessions_without_reply"] += 1
            return None
        kept, final = turns[: last + 1], turns[last]
        if final.prompt is None:
            raise ExportDataError(f"session {session.id}: turn {final.id} kept a reply but has no prompt")
        asked = final.prompt.messages
        system = asked[: next((i for i, m in enumerate(asked) if m["role"] != "system"), len(asked))]
        said = [{"role": t.role, "content": t.text} for t in kept[:-1]]
        if asked[len(system) :] != said:
            raise ExportDataError(
                f"session {session.id}: its kept branch differs from the conversation turn {final.id} "
                f"was asked to answer (prompt {final.prompt.public_id})"
            )
        messages = [*system, *said, {"role": ASSISTANT, "content": final.text}]
        replies = [_reply(len(system) + i, t) for i, t in enumerate(kept) if t.role == ASSISTANT]
        finished = session.finished_at
        return final.prompt, {
            "messages": messages,
            "trainer_replies": [r["index"] for r in replies if r["source"] in ("rewrite", "demonstration")],
            "replies": replies,
            "session_id": session.id,
            "queue_id": session.queue_id,
            "queue": session.queue,
            "mode": session.mode,
            "rater_id": self.pseudonym(session.trainer_user_id),
            "finished_at": finished.isoformat().replace("+00:00", "Z") if finished is not None else None,
        }


def _chain(session: SessionRecord) -> list[TurnInfo]:
    """The branch's turns, checked to be one chain from the first turn (each the parent's child)."""
    parent: int | None = None
    for turn in session.turns:
        if turn.parent_id != parent:
            raise ExportDataError(
                f"session {session.id}: its branch is not one chain of turns (turn {turn.id} follows "
                f"turn {turn.parent_id}, not {parent})"
            )
        parent = turn.id
    return session.turns


def _settled_reply(turn: TurnInfo) -> bool:
    """An assistant turn that kept a reply made or written in the session (not a seed's)."""
    return turn.status == Turn.Status.DONE and turn.chosen_id is not None


def _reply(index: int, turn: TurnInfo) -> dict[str, Any]:
    if turn.chosen_id is None:
        source = "seed"
    elif turn.by_trainer:
        source = "rewrite" if turn.judgment_id is not None else "demonstration"
    else:
        source = "model"
    return {
        "index": index,
        "source": source,
        "turn_id": turn.id,
        "prompt_id": turn.prompt.public_id if turn.prompt is not None else None,
        "candidate_id": turn.chosen_id,
        "generator": turn.generator,
        "comparison_id": turn.comparison_id,
        "judgment_id": turn.judgment_id,
    }
