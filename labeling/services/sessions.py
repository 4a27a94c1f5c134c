"""Conversation sessions: the one module that changes ``Session.status``, ``Turn.status`` and
``SessionSeed.started``.

A session is a branch of turns: user, assistant, user, assistant, ... Each assistant turn moves:

    PENDING --a worker takes it--> GENERATING --alternatives stored--> READY --ranked--> DONE
    PENDING / GENERATING / READY / FAILED --the trainer writes the reply--> DONE
    GENERATING --the model fails--> FAILED --retry--> PENDING

Its alternatives are an ordinary Comparison on a Prompt that is the conversation so far, and the
trainer ranks them through an ordinary Assignment of the conversation queue (so the ranking is an
ordinary Judgment, exported as any other). The reply the conversation keeps is the top-ranked
alternative, or the trainer's own. Going back to an earlier turn marks it and everything after it
on the branch abandoned (they stay in the data) and starts the branch again from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from comparisons.models import Candidate, Prompt
from comparisons.services import comparison_build_for_candidates, prompt_get_or_create
from labeling.errors import ApplicationError, Conflict
from labeling.models import (
    Assignment,
    Judgment,
    Queue,
    QueueItem,
    Session,
    SessionSeed,
    Turn,
    User,
)
from labeling.selectors.assignments import LABELS
from labeling.selectors.sessions import session_messages
from labeling.services.assignments import assignment_lease, assignment_skip
from labeling.services.redteam_access import session_finish_check, session_start_check
from model_runner.models import Generator

#: The generator a trainer's own replies are stored under (a demonstration, or a better reply).
TRAINER_GENERATOR_NAME = "human-trainer"
MAX_MESSAGE_CHARS = 20_000

Status = Turn.Status


def _enqueue(turn_ids: Iterable[int], delays: Mapping[int, float] | None = None) -> None:
    """Ask the ``interactive`` workers for these turns, each after its delay in seconds (if any)."""
    from labeling.tasks import session_turn_generate_task

    for turn_id in turn_ids:
        delay = (delays or {}).get(turn_id, 0.0)
        session_turn_generate_task.apply_async((turn_id,), countdown=max(delay, 0.0))  # 0: now


# ---------------------------------------------------------------------------------- sessions


def session_start(
    *, trainer: User, queue: Queue, target: Generator | None = None, category: str = ""
) -> Session:
    """Open a session of this template for the trainer (a member). A template with seeds starts
    each session from one the trainer has not used and that has room (fewer sessions than the
    queue's overlap), locked so two trainers never take its last place; none left is a Conflict.
    A red-team session needs the opt-in, a ``target`` and a ``category`` (``session_start_check``)."""
    if queue.kind != Queue.Kind.CONVERSATION:
        raise ApplicationError("queue: not a conversation queue", field="queue")
    if queue.status != Queue.Status.ACTIVE:
        raise Conflict(f"The queue '{queue.name}' is {queue.status}: it starts no sessions.")
    if not queue.members.filter(pk=trainer.pk).exists():
        raise ApplicationError("No such queue.", status_code=404)
    redteam = session_start_check(trainer=trainer, queue=queue, target=target, category=category)
    with transaction.atomic():
        seed = None
        if SessionSeed.objects.filter(queue=queue).exists():
            seed = (
                SessionSeed.objects.select_for_update(skip_locked=True)
                .filter(queue=queue, started__lt=queue.overlap)
                .exclude(sessions__trainer=trainer)
                .order_by("started", "id")
                .first()
            )
            if seed is None:
                raise Conflict(
                    "Every opening of this queue has its sessions: there is nothing left to start."
                )
            SessionSeed.objects.filter(pk=seed.pk).update(started=F("started") + 1)
        session = Session.objects.create(queue=queue, trainer=trainer, seed=seed, **redteam)
        if seed is not None:
            _seed_turns(session, seed.prompt)
    return session


def _seed_turns(session: Session, prompt: Prompt) -> None:
    """The seed's messages as the session's first turns; the model answers a final user turn."""
    parent: Turn | None = None
    for message in prompt.messages:
        if message.get("role") not in (Turn.Role.USER, Turn.Role.ASSISTANT):
            continue  # a system message belongs to the template
        parent = _turn_add(session, parent, message["role"], text=str(message.get("content", "")))
    if parent is not None and parent.role == Turn.Role.USER:
        _assistant_turn_request(session, parent)
    _title(session)


def _title(session: Session) -> None:
    first = session.turns.filter(role=Turn.Role.USER, abandoned=False).order_by("position", "id").first()
    if first is not None and not session.title:
        Session.objects.filter(pk=session.pk).update(title=first.text[:200])
        session.title = first.text[:200]


def _branch(session: Session) -> list[Turn]:
    return list(session.turns.filter(abandoned=False).order_by("position", "id"))


def _turn_add(
    session: Session, parent: Turn | None, role: str, *, text: str = "", status: str = Status.DONE
) -> Turn:
    return Turn.objects.create(
        session=session,
        parent=parent,
        position=0 if parent is None else parent.position + 1,
        role=role,
        text=text,
        status=status,
    )


def _active(session: Session) -> None:
    if session.status != Session.Status.ACTIVE:
        raise Conflict("This session is finished.")


def session_say(*, session: Session, text: str, generate: bool = True) -> Turn:
    """The trainer's next message; unless ``generate`` is false (the trainer will write the reply
    too), the model's alternatives are requested at once (on the ``interactive`` queue, after
    commit). Returns the new assistant turn. The message is stored before anything is enqueued,
    so a failed generation loses nothing the trainer wrote."""
    text = (text or "").strip()
    if not text:
        raise ApplicationError("text: write a message", field="text")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ApplicationError(f"text: at most {MAX_MESSAGE_CHARS} characters", field="text")
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        _active(locked)
        branch = _branch(locked)
        last = branch[-1] if branch else None
        if last is not None and not (last.role == Turn.Role.ASSISTANT and last.status == Status.DONE):
            raise Conflict("The model's turn is not settled yet: rank its replies or write one first.")
        template = locked.queue.template
        said = sum(t.role == Turn.Role.USER for t in branch)
        if said >= template.max_turns:
            raise Conflict(f"This session has its {template.max_turns} turns: finish it.")
        user_turn = _turn_add(locked, last, Turn.Role.USER, text=text)
        assistant = _assistant_turn_request(locked, user_turn, generate=generate)
        _title(locked)
        Session.objects.filter(pk=locked.pk).update(updated_at=timezone.now())
    return assistant


def _assistant_turn_request(session: Session, user_turn: Turn, *, generate: bool = True) -> Turn:
    prompt, _ = prompt_get_or_create(
        messages=session_messages(session, user_turn),
        source=Prompt.Source.CONVERSATION,
        collection=f"conversation-{session.queue_id}",
    )
    turn = _turn_add(session, user_turn, Turn.Role.ASSISTANT, status=Status.PENDING)
    Turn.objects.filter(pk=turn.pk).update(prompt=prompt, requested_at=timezone.now() if generate else None)
    turn.prompt = prompt
    if generate:
        transaction.on_commit(lambda: _enqueue([turn.pk]))
    return turn


def session_finish(*, session: Session) -> Session:
    """End the session; its kept branch is what the ``sft`` export writes. Idempotent."""
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        if locked.status == Session.Status.FINISHED:
            return locked
        session_finish_check(locked)
        locked.status = Session.Status.FINISHED
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "finished_at", "updated_at"])
        # A turn left unranked gives its lease back: nobody else ranks a conversation's turns.
        open_turns = Turn.objects.filter(session=locked, status=Status.READY, assignment__isnull=False)
        for turn in open_turns.select_related("assignment"):
            if turn.assignment is not None and turn.assignment.status == Assignment.Status.LEASED:
                assignment_skip(assignment=turn.assignment, reason="the trainer finished the session")
    return locked


def session_branch(*, session: Session, turn: Turn) -> Turn | None:
    """Go back to ``turn``: it and every later turn of the branch are abandoned (kept in the data);
    their open rankings are given back. An assistant turn is asked again (new alternatives, to
    rank again) and returned; at a user turn the trainer writes a new message (None)."""
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        _active(locked)
        if turn.session_id != locked.pk or turn.abandoned:
            raise ApplicationError("turn: not a turn of this session's branch", field="turn")
        later = list(Turn.objects.filter(session=locked, abandoned=False, position__gte=turn.position))
        Turn.objects.filter(pk__in=[t.pk for t in later]).update(abandoned=True)
        for old in later:
            if old.assignment is not None and old.status == Status.READY:
                assignment_skip(assignment=old.assignment, reason="the trainer went back to an earlier turn")
        if not locked.turns.filter(role=Turn.Role.USER, abandoned=False).exists():
            # The opening message is gone: the next first message names the session.
            Session.objects.filter(pk=locked.pk).update(title="")
            locked.title = ""
        again = None
        if turn.role == Turn.Role.ASSISTANT and turn.parent is not None:
            again = _assistant_turn_request(locked, turn.parent)
        Session.objects.filter(pk=locked.pk).update(updated_at=timezone.now())
    return again


# -------------------------------------------------------------------------- assistant turns


def _trainer_generator() -> Generator:
    generator, _ = Generator.objects.get_or_create(
        name=TRAINER_GENERATOR_NAME, defaults={"backend": Generator.Backend.HUMAN}
    )
    return generator


def turn_write_reply(*, turn: Turn, text: str) -> Turn:
    """The trainer writes the model's turn (a demonstration): stored as a human-written candidate
    of the turn's prompt, and kept. Alternatives made for it stay in the data, unranked."""
    text = (text or "").strip()
    if not text:
        raise ApplicationError("text: write the reply", field="text")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ApplicationError(f"text: at most {MAX_MESSAGE_CHARS} characters", field="text")
    with transaction.atomic():
        locked = Turn.objects.select_for_update().select_related("session__queue").get(pk=turn.pk)
        _active(locked.session)
        if locked.role != Turn.Role.ASSISTANT or locked.abandoned or locked.status == Status.DONE:
            raise Conflict("This turn is settled: go back to it to answer it again.")
        assert locked.prompt_id is not None  # an assistant turn always has its conversation
        candidate, _ = Candidate.objects.get_or_create(
            prompt_id=locked.prompt_id,
            generator=_trainer_generator(),
            sample_index=locked.pk,
            defaults={
                "text": text,
                "author_id": locked.session.trainer_id,
                "finish_reason": Candidate.FinishReason.HUMAN,
            },
        )
        if locked.assignment is not None and locked.status == Status.READY:
            assignment_skip(assignment=locked.assignment, reason="the trainer wrote the reply")
        turn_keep(locked, candidate, by_trainer=True)
    return locked


def turn_keep(turn: Turn, candidate: Candidate, *, by_trainer: bool) -> None:
    """-> DONE with this reply, on a turn the caller locked (a red-teamer's labelled one, too)."""
    turn.chosen = candidate
    turn.text = candidate.text
    turn.by_trainer = by_trainer
    turn.status = Status.DONE  # the conversation goes on with this reply
    turn.save(update_fields=["chosen", "text", "by_trainer", "status"])


def turn_keep_ranked(*, assignment: Assignment, judgment: Judgment, rewrite: Candidate | None) -> None:
    """After the trainer ranked a turn's alternatives (``judgment_submit`` calls this in its
    transaction): keep the trainer's better reply if they wrote one, else the top-ranked
    alternative (the first label of the best group)."""
    turn = Turn.objects.select_for_update().select_related("session").filter(assignment=assignment).first()
    if turn is None or turn.status != Status.READY or turn.abandoned:
        return
    _active(turn.session)
    if rewrite is not None:
        turn_keep(turn, rewrite, by_trainer=True)
        return
    best = (judgment.ranking or [[LABELS[0]]])[0][0]
    candidate = Candidate.objects.get(pk=assignment.shown_order[LABELS.index(best)])
    turn_keep(turn, candidate, by_trainer=False)


def turn_retry(*, turn: Turn, now: datetime | None = None) -> Turn:
    """Ask again for a turn that failed, or that no worker answered in time (a worker that died
    mid-turn): back to PENDING and enqueued; what was already made is reused."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.PREFLAB_TURN_STALE_SECONDS)
    with transaction.atomic():
        locked = Turn.objects.select_for_update().select_related("session").get(pk=turn.pk)
        _active(locked.session)
        if locked.status == Status.PENDING and locked.requested_at is None:
            raise Conflict("The model was not asked for this turn: write the reply yourself.")
        since = locked.claimed_at if locked.status == Status.GENERATING else locked.requested_at
        waiting = locked.status in (Status.PENDING, Status.GENERATING) and (since is None or since <= stale)
        if locked.abandoned or not (locked.status == Status.FAILED or waiting):
            raise Conflict("This turn is not stuck: wait for it, or rank its replies.")
        locked.status = Status.PENDING  # asked again
        locked.error = ""
        locked.requested_at = now
        locked.save(update_fields=["status", "error", "requested_at"])
        transaction.on_commit(lambda: _enqueue([locked.pk]))
    locked.refresh_from_db()  # a worker may have answered it already (eager tasks, a fast worker)
    return locked


# ----------------------------------------------------------------- the worker's side of a turn


def turns_claim(*, turn_id: int, limit: int) -> list[Turn]:
    """PENDING -> GENERATING for this turn and up to ``limit - 1`` other pending turns of the same
    template (they share a batch), locked so two workers never take one turn. Stale GENERATING
    turns (their worker died) are taken again too. Empty when this turn is settled or taken."""
    stale = timezone.now() - timedelta(seconds=settings.PREFLAB_TURN_STALE_SECONDS)
    with transaction.atomic():
        first = (
            Turn.objects.select_for_update(skip_locked=True)
            .select_related("session")
            .filter(pk=turn_id)
            .first()
        )
        if first is None or first.abandoned or not _claimable(first, stale):
            return []
        if first.session.status != Session.Status.ACTIVE:
            return []  # the trainer finished the session: nobody will rank this turn
        others = (
            Turn.objects.select_for_update(skip_locked=True)
            .filter(
                session__queue_id=first.session.queue_id,
                session__status=Session.Status.ACTIVE,
                abandoned=False,
                role=Turn.Role.ASSISTANT,
            )
            .exclude(pk=first.pk)
            .filter(status=Status.PENDING, requested_at__isnull=False)
            .order_by("requested_at", "id")[: max(0, limit - 1)]
        )
        claimed = [first, *others]
        Turn.objects.filter(pk__in=[t.pk for t in claimed]).update(
            status=Status.GENERATING, attempts=F("attempts") + 1, claimed_at=timezone.now()
        )
    for turn in claimed:
        turn.status = Status.GENERATING
    return claimed


def _claimable(turn: Turn, stale: datetime) -> bool:
    if turn.status == Status.PENDING:
        return turn.requested_at is not None
    return turn.status == Status.GENERATING and (turn.claimed_at is None or turn.claimed_at <= stale)


def turn_alternatives_store(*, turn: Turn, candidates: Sequence[Candidate], generation_ms: int) -> Turn:
    """GENERATING -> READY: the alternatives become a comparison, its queue item is leased to the
    trainer to rank. One distinct text (K = 1, or all alike) is kept at once (DONE). A turn the
    trainer settled or left meanwhile keeps the candidates and gets no ranking."""
    now = timezone.now()
    with transaction.atomic():
        locked = (
            Turn.objects.select_for_update()
            .select_related("session__queue", "session__trainer")
            .get(pk=turn.pk)
        )
        locked.generation_ms = generation_ms
        locked.ready_at = now
        finished = locked.session.status != Session.Status.ACTIVE
        if locked.status != Status.GENERATING or locked.abandoned or finished:
            locked.save(update_fields=["generation_ms", "ready_at"])
            return locked
        assert locked.prompt is not None  # an assistant turn always has its conversation
        comparison = comparison_build_for_candidates(prompt=locked.prompt, candidates=list(candidates))
        if comparison is None:
            locked.save(update_fields=["generation_ms", "ready_at"])
            turn_keep(locked, candidates[0], by_trainer=False)
            return locked
        queue = locked.session.queue
        item, _ = QueueItem.objects.get_or_create(queue=queue, comparison=comparison)
        lease = Assignment.objects.filter(item=item, rater=locked.session.trainer).first()
        if lease is None:
            lease = assignment_lease(item=item, rater=locked.session.trainer, queue=queue, now=now)
        locked.comparison = comparison
        locked.assignment = lease
        locked.status = Status.READY  # the trainer ranks the alternatives
        locked.save(update_fields=["generation_ms", "ready_at", "comparison", "assignment", "status"])
    return locked


def turn_fail(*, turn: Turn, reason: str) -> None:
    """GENERATING -> FAILED with a reason the trainer sees (and may retry)."""
    Turn.objects.filter(pk=turn.pk, status=Status.GENERATING).update(
        status=Status.FAILED, error=reason[:2000]
    )
