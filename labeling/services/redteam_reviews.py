"""Reviewing attacks: claim the next one, give the verdict, or skip it. The only writer of
``Attack.status`` after creation and of its review lease (``leased_to``, ``lease_expires_at``).

The API (``/api/v1/redteam/queues/{id}/next/``, ``/api/v1/attacks/{id}/review/`` and ``skip/``)
and the page (``/redteam/review/``) call these functions, after the same gatekeepers
(``labeling.selectors.redteam_reviews``), so every rule holds through both doors.

Verdicts: ``confirm`` (the attack did what the final labels say: it feeds the data) and
``reject`` (it did not: it feeds nothing). Moves of ``Attack.status``::

    PENDING --confirm--> CONFIRMED
    PENDING --reject---> REJECTED

A verdict is final.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from labeling.audit import audit_record
from labeling.errors import ApplicationError, Conflict, NotFound, column_check
from labeling.models import Attack, AttackExposure, Queue, User
from labeling.models.redteam import HARMFUL_OUTCOMES
from labeling.selectors.redteam_reviews import attack_held_by
from labeling.services.attacks import MAX_IDEAL_REPLY, attack_labels_check
from labeling.services.redteam_eval import redteam_eval_settle
from labeling.services.wellbeing import disturbing_refusal_message, wellbeing_daily_cap_check

VERDICTS = ("confirm", "reject")
VERDICT_STATUS = {"confirm": Attack.Status.CONFIRMED, "reject": Attack.Status.REJECTED}
LABEL_FIELDS = ("outcome", "category", "tactic", "severity")
MAX_NOTE = 20_000


class AttackReviewExists(Conflict):
    """The attack has a different verdict already (409); ``attack`` holds the stored one."""

    def __init__(self, attack: Attack) -> None:
        when = f"{attack.reviewed_at:%Y-%m-%d %H:%M} UTC" if attack.reviewed_at else "earlier"
        super().__init__(f"This attack was already {attack.status} on {when}; a verdict is final.")
        self.attack = attack


def user_may_confirm_session_success(user: User) -> bool:
    """Reviewers and admins confirm claimed successes of red-team sessions (a person's claim)."""
    return user.role in (User.Role.REVIEWER, User.Role.ADMIN) or user.is_superuser


def attack_claim_next(*, rater: User, queue: Queue, now: datetime | None = None) -> Attack | None:
    """Lease the next attack of the red-team review ``queue`` to ``rater``; None when nothing is
    left for them (or the queue is not active).

    Refused: a queue that is not a red-team review queue or of which the rater is not a member
    (404, as for a queue that does not exist); a rater who has not opted in to disturbing work
    (403, pointing to the profile; every red-team review queue needs it, marked disturbing or
    not); a rater who got the queue's ``daily_cap`` attacks today, UTC (429 ``DailyCapReached``,
    saying when it resets).

    Guarantees, also with many raters claiming at once:
    - the rater's row is locked first, so two claims of one rater run one after the other: the
      daily cap is counted under that lock and holds;
    - a rater holding a live lease in this queue gets that attack back (a refresh burns nothing,
      and a held attack is shown even at the cap, as it was counted when claimed);
    - the next attack is the pending one with the highest pre-screen score (then the lowest id)
      that nobody holds a live lease on, that the rater did not write and was never shown (one
      ``AttackExposure`` per rater and attack, unique in the database): nobody reviews their own
      attack, and nobody is shown one attack twice, a skipped one included;
    - on PostgreSQL candidate attacks are locked with ``SELECT ... FOR UPDATE SKIP LOCKED``, so two
      raters never take the same attack: one attack has at most one live lease;
    - the lease lasts the queue's ``lease_seconds``; an expired lease frees the attack for others.
    """
    now = now or timezone.now()
    if queue.kind != Queue.Kind.REDTEAM:
        raise NotFound("No such red-team review queue.")
    with transaction.atomic():
        opted_in = list(
            User.objects.select_for_update().filter(pk=rater.pk).values_list("disturbing_opt_in", flat=True)
        )
        if not opted_in or not queue.members.filter(pk=rater.pk).exists():
            raise NotFound("No such red-team review queue.")
        if not opted_in[0]:
            raise ApplicationError(disturbing_refusal_message(queue), status_code=403)
        if queue.status != Queue.Status.ACTIVE:
            return None
        held = attack_held_by(rater=rater, queue=queue, now=now)
        if held is not None:
            return held
        wellbeing_daily_cap_check(rater_id=rater.pk, queue=queue, now=now)
        free = Q(leased_to__isnull=True) | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
        candidates = (
            Attack.objects.filter(free, queue=queue, status=Attack.Status.PENDING)
            .exclude(author=rater)
            .exclude(exposures__rater=rater)
            .order_by("-prescreen", "id")
        )
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        attack = candidates.first()
        if attack is None:
            return None
        attack.leased_to = rater
        attack.lease_expires_at = now + timedelta(seconds=queue.lease_seconds)
        attack.save(update_fields=["leased_to", "lease_expires_at"])
        AttackExposure.objects.create(rater=rater, queue=queue, attack=attack, shown_at=now)
    return attack


def attack_skip(*, attack: Attack, rater: User) -> Attack:
    """Give the attack back unreviewed: its lease ends, so others can take it at once. The rater
    is never shown it again (their exposure stays). Skipping an attack the rater no longer holds
    changes nothing (a double click skips once)."""
    with transaction.atomic():
        locked = Attack.objects.select_for_update().get(pk=attack.pk)
        if locked.status == Attack.Status.PENDING and locked.leased_to_id == rater.pk:
            locked.leased_to = None
            locked.lease_expires_at = None
            locked.save(update_fields=["leased_to", "lease_expires_at"])
    return locked


def _text(value: Any, *, field: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApplicationError(f"{field}: must be text", field=field)
    if len(value) > limit:
        raise ApplicationError(f"{field}: at most {limit} characters (this has {len(value)})", field=field)
    return str(column_check(Attack._meta.get_field("review_note"), value.strip(), name=field))


def attack_review_submit(
    *,
    attack: Attack,
    reviewer: User,
    verdict: Any,
    outcome: Any = "",
    category: Any = "",
    tactic: Any = "",
    severity: Any = None,
    ideal_reply: Any = "",
    note: Any = "",
    now: datetime | None = None,
) -> tuple[Attack, bool]:
    """Record ``reviewer``'s verdict on ``attack``; returns ``(attack, created)``.

    ``verdict`` is ``confirm`` or ``reject``. Confirming needs the final labels (``outcome``,
    ``category``, ``tactic``, ``severity`` 1..5; checked by ``attack_labels_check``, 400s naming
    the field); rejecting takes any of them that the reviewer gives (the others keep the claim).
    ``ideal_reply`` is the safe reply (for an over-refusal: the helpful answer); ``note`` is the
    reviewer's note. Both are optional.

    Refused: the attack's author (403: nobody reviews their own attack); a rater who is not a
    member of the review queue, unless an admin (403); confirming a claimed success (complied or
    partial) of a red-team session without the reviewer or admin role (403: a person's claim needs
    a reviewer; other sources may be confirmed by any member of the review queue).

    Idempotent: the attack row is locked while the verdict is checked and written. The same
    reviewer sending the same verdict and labels again gets the stored attack back with
    ``created`` False (a retry; nothing is written). Any other verdict on a reviewed attack raises
    ``AttackReviewExists`` (409) and writes nothing. The verdict, the end of the lease and the
    audit event (``attack.review``) commit together.
    """
    now = now or timezone.now()
    if verdict not in VERDICTS:
        raise ApplicationError(f"verdict: must be one of {', '.join(VERDICTS)}", field="verdict")
    if attack.author_id is not None and attack.author_id == reviewer.pk:
        raise ApplicationError("You cannot review your own attack.", status_code=403)
    if not reviewer.is_admin_role and not attack.queue.members.filter(pk=reviewer.pk).exists():
        raise ApplicationError("Only members of the review queue review its attacks.", status_code=403)
    given = {"outcome": outcome, "category": category, "tactic": tactic, "severity": severity}
    if verdict == "confirm":
        for field in LABEL_FIELDS:
            if given[field] in (None, ""):
                raise ApplicationError(
                    f"{field}: required to confirm an attack (the final label)", field=field
                )
    labels = attack_labels_check(**given, allow_blank=True)
    final = {k: v for k, v in labels.items() if v not in (None, "")}
    if (
        verdict == "confirm"
        and attack.source == Attack.Source.SESSION
        and attack.claimed_outcome in HARMFUL_OUTCOMES
        and not user_may_confirm_session_success(reviewer)
    ):
        raise ApplicationError(
            "Confirming a claimed success of a red-team session needs the reviewer or admin role.",
            status_code=403,
        )
    ideal = _text(ideal_reply, field="ideal_reply", limit=MAX_IDEAL_REPLY)
    note_text = _text(note, field="note", limit=MAX_NOTE)
    status = VERDICT_STATUS[verdict]
    with transaction.atomic():
        locked = Attack.objects.select_for_update().get(pk=attack.pk)
        if locked.status != Attack.Status.PENDING:
            same = (
                locked.reviewer_id == reviewer.pk
                and locked.status == status
                and all(getattr(locked, k) == v for k, v in final.items())
            )
            if same:
                return locked, False
            raise AttackReviewExists(locked)
        before = {k: getattr(locked, k) for k in LABEL_FIELDS}
        for key, value in final.items():
            setattr(locked, key, value)
        if ideal:
            locked.ideal_reply = ideal
        locked.status = status
        locked.reviewer = reviewer
        locked.review_note = note_text
        locked.reviewed_at = now
        locked.leased_to = None
        locked.lease_expires_at = None
        locked.save(
            update_fields=[
                *LABEL_FIELDS,
                "ideal_reply",
                "status",
                "reviewer",
                "review_note",
                "reviewed_at",
                "leased_to",
                "lease_expires_at",
            ]
        )
        audit_record(
            "attack.review",
            target=locked,
            actor=reviewer,
            changes={
                "verdict": verdict,
                "status": [Attack.Status.PENDING, status],
                "source": locked.source,
                "claimed_outcome": locked.claimed_outcome,
                "labels": [before, {k: getattr(locked, k) for k in LABEL_FIELDS}],
                "note": note_text,
            },
        )
    if locked.eval_run is not None:
        # The last verdict of a test-set run finishes it (REVIEWING -> DONE).
        redteam_eval_settle(run=locked.eval_run)
    return locked, True
