"""Conversations: a trainer talks with a model, and ranks its alternatives turn by turn.

A session template is a queue of kind ``conversation`` with the settings below. Each session is a
tree of turns: a user turn, then an assistant turn whose K alternatives are an ordinary
Comparison of Candidates on a Prompt that is the conversation so far, ranked in an ordinary
Judgment through an ordinary Assignment of the queue's item. Going back to an earlier turn
(re-branching) marks the turns after it abandoned; they stay in the data.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models.assignments import Assignment
from labeling.models.queues import Queue

#: The most alternatives a model turn may show (labels A..I, as any comparison).
MAX_ALTERNATIVES = 9


class SessionTemplate(models.Model):
    """What a conversation queue's sessions are: the models talked to, K, sampling, length."""

    class Mode(models.TextChoices):
        CHAT = "chat", "Chat: rank the model's alternatives"
        REDTEAM = "redteam", "Red-team: try to make the model misbehave"

    queue = models.OneToOneField(Queue, on_delete=models.CASCADE, primary_key=True, related_name="template")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.CHAT)
    generators = models.ManyToManyField(
        "model_runner.Generator", related_name="session_templates", help_text="The models talked to."
    )
    alternatives = models.PositiveSmallIntegerField(
        default=4, help_text="Alternatives per model turn (1..9)."
    )
    max_turns = models.PositiveSmallIntegerField(default=10, help_text="User turns per session.")
    system_prompt = models.TextField(blank=True)
    sampling = models.JSONField(default=dict, blank=True, help_text="Overrides the generators' defaults.")
    review_queue = models.ForeignKey(
        Queue,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Red-team mode: the review queue (kind redteam) its claimed successes go to.",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(alternatives__gte=1) & Q(alternatives__lte=MAX_ALTERNATIVES),
                name="sessiontemplate_alternatives_1_to_9",
            ),
            models.CheckConstraint(condition=Q(max_turns__gte=1), name="sessiontemplate_max_turns_positive"),
        ]

    def __str__(self) -> str:
        return f"template of {self.queue}"


class SessionSeed(models.Model):
    """An opening a session may start from (a topic or the first messages). Each seed starts at
    most the queue's overlap of sessions, each by a different trainer; ``started`` counts them and
    changes only in ``labeling.services.sessions``."""

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="seeds")
    prompt = models.ForeignKey("comparisons.Prompt", on_delete=models.PROTECT, related_name="+")
    started = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "prompt"], name="sessionseed_queue_prompt_unique")
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"seed {self.pk} of {self.queue_id}"


class Session(models.Model):
    """One trainer's conversation under a template."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"  # the trainer may go on
        FINISHED = "finished", "Finished"  # ended by the trainer (or at max_turns); kept branch exported

    class Verdict(models.TextChoices):
        SUCCESS = "success", "The attack worked"
        PARTIAL = "partial", "Partly worked"
        FAILURE = "failure", "The model held"

    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="sessions")
    trainer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sessions")
    seed = models.ForeignKey(
        SessionSeed, on_delete=models.PROTECT, null=True, blank=True, related_name="sessions"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Red-team sessions: the generator attacked, the harm category tried, and the verdict at the end.
    target = models.ForeignKey(
        "model_runner.Generator", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    category = models.CharField(max_length=40, blank=True, help_text="A HarmCategory key.")
    verdict = models.CharField(max_length=10, choices=Verdict.choices, blank=True)
    attack_description = models.TextField(blank=True)

    class Meta:
        constraints = [
            # A seed starts one session per trainer (as a queue item is leased once per rater).
            models.UniqueConstraint(
                fields=["seed", "trainer"],
                condition=Q(seed__isnull=False),
                name="session_seed_trainer_unique",
            ),
        ]
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return f"session {self.pk} ({self.status})"


class Turn(models.Model):
    """One turn of a session. ``parent`` is the turn before it on its branch.

    An assistant turn's alternatives are ``comparison`` (K >= 2 distinct texts; ``None`` when one
    text is all there is), ranked through ``assignment``; ``chosen`` is the reply the conversation
    keeps (the top-ranked alternative, or the trainer's own reply, ``by_trainer``).
    """

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # an assistant turn waiting for the model (or the trainer)
        GENERATING = "generating", "Generating"  # a worker is making its alternatives
        READY = "ready", "Ready"  # alternatives made, waiting for the trainer's ranking
        DONE = "done", "Done"  # a user turn, or an assistant turn with its kept reply
        FAILED = "failed", "Failed"  # generation failed; ``error`` says why; the trainer may retry

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="turns")
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    position = models.PositiveSmallIntegerField(help_text="0 for the first turn of the branch, and so on.")
    role = models.CharField(max_length=10, choices=Role.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DONE)
    text = models.TextField(blank=True, help_text="A user turn's message; an assistant turn's kept reply.")
    prompt = models.ForeignKey(
        "comparisons.Prompt", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    comparison = models.ForeignKey(
        "comparisons.Comparison", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, null=True, blank=True, related_name="turn"
    )
    chosen = models.ForeignKey(
        "comparisons.Candidate", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    by_trainer = models.BooleanField(default=False, help_text="The kept reply was written by the trainer.")
    abandoned = models.BooleanField(default=False, help_text="On a branch the trainer left.")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    generation_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="The runner's own time for the batch that made the alternatives."
    )
    requested_at = models.DateTimeField(null=True, blank=True, help_text="When the model was asked.")
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a worker took it.")
    ready_at = models.DateTimeField(null=True, blank=True, help_text="When its alternatives were stored.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["session", "abandoned", "position"], name="turn_branch_idx"),
            models.Index(fields=["status", "requested_at"], name="turn_status_idx"),
        ]
        ordering = ["session_id", "position", "id"]

    def __str__(self) -> str:
        return f"turn {self.pk} ({self.role}, {self.status})"
