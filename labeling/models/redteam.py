"""Red-teaming: labels of attacked model turns, attacks under review, the adversary and test runs.

An **attack** is one attempt to make a model misbehave, with the reply it got: a red-teamer's
session (its worst labelled turn), an exchange the adversary model wrote, a conversation imported
from production logs, or a held-out test attack replayed against a generator. Every attack waits
in a review queue (a queue of kind ``redteam``) until a reviewer confirms or rejects it; only
confirmed ones feed the data (``export``), each on exactly one side (training pairs or the
held-out red-team test set) by a stable split of its ``family``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models.queues import Queue
from labeling.models.sessions import Session, Turn


class HarmCategory(models.Model):
    """One category of the harm taxonomy red-team labels use (configurable by admins; migration 0011
    seeds the default eight: violence, self-harm, hate or harassment, sexual content, illegal
    activity or malware, privacy, dangerous misinformation, political manipulation)."""

    key = models.SlugField(max_length=40, unique=True)
    label = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True, help_text="Offered for new labels (old labels keep it).")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "key"]
        verbose_name_plural = "harm categories"

    def __str__(self) -> str:
        return self.label


class Outcome(models.TextChoices):
    """What the model did with an attack (or with a harmless request it took for one)."""

    COMPLIED = "complied", "Complied with a harmful request"
    PARTIAL = "partial", "Partially complied"
    REFUSED = "refused", "Safe refusal"
    OVER_REFUSED = "over_refused", "Over-refusal of a harmless request"


#: Outcomes that make an attack a success (the model did harm).
HARMFUL_OUTCOMES = (Outcome.COMPLIED, Outcome.PARTIAL)


class Tactic(models.TextChoices):
    ROLE_PLAY = "role_play", "Role-play"
    HYPOTHETICAL = "hypothetical", "Hypothetical framing"
    OBFUSCATION = "obfuscation", "Obfuscation or encoding"
    PROMPT_INJECTION = "prompt_injection", "Prompt injection"
    ESCALATION = "escalation", "Multi-turn escalation"
    OTHER = "other", "Other"


class TurnLabel(models.Model):
    """A red-teamer's label of one model turn of a red-team session. With K > 1 alternatives,
    ``candidate`` is the one they labelled (the worst, which they push on)."""

    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="redteam_label")
    candidate = models.ForeignKey(
        "comparisons.Candidate", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    category = models.CharField(max_length=40, help_text="A HarmCategory key.")
    tactic = models.CharField(max_length=20, choices=Tactic.choices)
    severity = models.PositiveSmallIntegerField(help_text="1 (mild) .. 5 (severe).")
    ideal_reply = models.TextField(blank=True, help_text="The reply the model should have given.")
    labeled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__gte=1) & Q(severity__lte=5), name="turnlabel_severity_1_to_5"
            )
        ]

    def __str__(self) -> str:
        return f"label of turn {self.turn_id}: {self.outcome}"


class AdversaryJob(models.Model):
    """Chatbot against chatbot: an attacker generator writes ``attacks`` distinct attack prompts
    (single-turn, or multi-turn up to ``max_turns``), the target answers, and every exchange enters
    ``queue`` for review. Runs on the ``gpu`` queue; ``status`` changes only in
    ``labeling.services.adversary``."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"  # created, task enqueued
        RUNNING = "running", "Running"  # a worker is writing attacks
        SUCCEEDED = "succeeded", "Succeeded"  # every attack and reply exists
        FAILED = "failed", "Failed"  # stopped by an error; ``error`` says why; retry resumes
        CANCELLED = "cancelled", "Cancelled"  # stopped by a person; finished exchanges stay

    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="adversary_jobs")
    attacker = models.ForeignKey("model_runner.Generator", on_delete=models.PROTECT, related_name="+")
    target = models.ForeignKey("model_runner.Generator", on_delete=models.PROTECT, related_name="+")
    category = models.CharField(max_length=40, help_text="A HarmCategory key.")
    attacker_system_prompt = models.TextField(blank=True)
    seeds = models.JSONField(
        default=list,
        blank=True,
        help_text='Seed attacks [{"text", "family"}]; empty: the confirmed human attacks of the category.',
    )
    attacks = models.PositiveIntegerField(help_text="Distinct attacks wanted (N).")
    max_turns = models.PositiveSmallIntegerField(default=1, help_text="Attacker turns per exchange (M).")
    sampling = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    made = models.PositiveIntegerField(default=0, help_text="Exchanges stored so far.")
    duplicates = models.PositiveIntegerField(default=0, help_text="Attacker prompts left out as duplicates.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(attacks__gte=1), name="adversaryjob_attacks_positive"),
            models.CheckConstraint(condition=Q(max_turns__gte=1), name="adversaryjob_max_turns_positive"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"adversary job {self.pk} ({self.status})"


class RedteamEvalRun(models.Model):
    """The held-out red-team test set (or one category of it) replayed against one generator:
    each test attack's prompt is answered by ``generator`` and the exchange goes to ``queue`` for
    review; success and over-refusal rates come from the reviewed attempts. ``status`` changes
    only in ``labeling.services.redteam_eval``."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"  # created, task enqueued
        RUNNING = "running", "Running"  # the generator is answering
        REVIEWING = "reviewing", "In review"  # every reply exists; waiting for verdicts
        DONE = "done", "Done"  # every attempt has a verdict
        FAILED = "failed", "Failed"  # ``error`` says why; retry resumes
        CANCELLED = "cancelled", "Cancelled"  # stopped by a person

    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="redteam_eval_runs")
    generator = models.ForeignKey("model_runner.Generator", on_delete=models.PROTECT, related_name="+")
    category = models.CharField(max_length=40, blank=True, help_text="Blank: every category.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"red-team test run {self.pk} against {self.generator_id}"


class Attack(models.Model):
    """One attempt and the reply it got, waiting for (or holding) a reviewer's verdict.

    ``outcome``/``category``/``tactic``/``severity`` are the current labels: the red-teamer's claim
    (or the importer's / the adversary's pre-filled guess) until review, then the reviewer's final
    word; ``claimed_outcome`` keeps the claim. ``status`` changes only in
    ``labeling.services.redteam_reviews``; the review lease fields only in the claim there.
    """

    class Source(models.TextChoices):
        SESSION = "session", "Red-team session"
        ADVERSARY = "adversary", "Adversary model"
        WILD = "wild", "Imported from production (in the wild)"
        EVAL = "eval", "Test-set run against a generator"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for review"  # in the review queue
        CONFIRMED = "confirmed", "Confirmed"  # a reviewer confirmed the labels; feeds the data
        REJECTED = "rejected", "Rejected"  # a reviewer found no such outcome; feeds nothing

    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="attacks")
    source = models.CharField(max_length=10, choices=Source.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    prompt = models.ForeignKey(
        "comparisons.Prompt",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The conversation up to the attacked reply (its last message is the attack).",
    )
    reply = models.ForeignKey(
        "comparisons.Candidate",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The model's reply to the attack.",
    )
    target = models.ForeignKey(
        "model_runner.Generator", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    session = models.ForeignKey(
        Session, on_delete=models.PROTECT, null=True, blank=True, related_name="attacks"
    )
    turn = models.ForeignKey(Turn, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    adversary_job = models.ForeignKey(
        AdversaryJob, on_delete=models.PROTECT, null=True, blank=True, related_name="exchanges"
    )
    eval_run = models.ForeignKey(
        RedteamEvalRun, on_delete=models.PROTECT, null=True, blank=True, related_name="attempts"
    )
    test_attack = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replays",
        help_text="For a test-set run: the test attack this attempt replays.",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The red-teamer (or whoever imported it); never its reviewer.",
    )
    family = models.CharField(
        max_length=200,
        help_text="The split key grouping an attack with its variants (seed family, session, conversation).",
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    claimed_outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    category = models.CharField(max_length=40, blank=True, help_text="A HarmCategory key.")
    tactic = models.CharField(max_length=20, choices=Tactic.choices, blank=True)
    severity = models.PositiveSmallIntegerField(null=True, blank=True)
    description = models.TextField(blank=True, help_text="What the attack does, in a few words.")
    ideal_reply = models.TextField(blank=True, help_text="The safe (or, for an over-refusal, helpful) reply.")
    feedback = models.JSONField(
        default=dict, blank=True, help_text="Imported user feedback (thumbs, report)."
    )
    prescreen = models.FloatField(
        default=0.0,
        help_text="The automatic pre-screen's guess that the attack worked (0..1); orders review.",
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    review_note = models.TextField(blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    leased_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__isnull=True) | (Q(severity__gte=1) & Q(severity__lte=5)),
                name="attack_severity_1_to_5",
            ),
            models.UniqueConstraint(
                fields=["eval_run", "test_attack"],
                condition=Q(eval_run__isnull=False),
                name="attack_eval_run_test_attack_unique",
            ),
        ]
        indexes = [
            # The review claim: a queue's pending attacks, likely successes first.
            models.Index(fields=["queue", "status", "-prescreen", "id"], name="attack_review_idx"),
            models.Index(fields=["source", "status", "category"], name="attack_source_idx"),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"attack {self.pk} ({self.source}, {self.status})"


class AttackExposure(models.Model):
    """A rater was shown an attack for review (counted for their daily cap and the exposure
    view; one per rater and attack, so nobody is shown the same attack twice for review)."""

    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="+")
    attack = models.ForeignKey(Attack, on_delete=models.CASCADE, related_name="exposures")
    shown_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rater", "attack"], name="attackexposure_rater_attack_unique")
        ]
        indexes = [models.Index(fields=["rater", "queue", "shown_at"], name="attackexposure_day_idx")]

    def __str__(self) -> str:
        return f"attack {self.attack_id} shown to {self.rater_id}"
