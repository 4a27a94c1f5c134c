"""Users, rubrics, queues, assignments and judgments: the core of labeling."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from knox.models import AbstractAuthToken


class ContentCategory(models.TextChoices):
    """Kinds of disturbing content a warning can name and a rater can opt out of."""

    VIOLENCE = "violence", "Violence or gore"
    SELF_HARM = "self_harm", "Self-harm or suicide"
    SEXUAL = "sexual", "Sexual content"
    HATE = "hate", "Hate speech or harassment"
    CRIME = "crime", "Crime, weapons or drugs"
    OTHER = "other", "Other disturbing content"


# django-stubs cannot type the reverse manager of ApiKey (``user.api_keys``): its base, knox's
# AbstractAuthToken, ships no type information.
class User(AbstractUser):  # type: ignore[django-manager-missing]
    class Role(models.TextChoices):
        RATER = "rater", "Rater"
        REVIEWER = "reviewer", "Reviewer"
        RESEARCHER = "researcher", "Researcher"
        ADMIN = "admin", "Admin"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.RATER)
    content_opt_outs = models.JSONField(
        default=list,
        blank=True,
        help_text="Content categories this rater does not want to see (items carrying them are passed on).",
    )

    @property
    def is_admin_role(self) -> bool:
        return self.role == self.Role.ADMIN or self.is_superuser

    @property
    def can_export(self) -> bool:
        return self.is_admin_role or self.role == self.Role.RESEARCHER


class Rubric(models.Model):
    """A versioned set of criteria. Frozen once a judgment used it: edits make a new version."""

    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    copy_overall = models.BooleanField(
        default=False,
        help_text=(
            "Raters may press C to copy their overall preference into the preference criteria they "
            "left empty and submit: one key for a rater who agrees across the board."
        ),
    )
    frozen = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="rubric_name_version_unique")]
        ordering = ["name", "version"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class Criterion(models.Model):
    class Kind(models.TextChoices):
        PREFERENCE = "preference", "Preference (-3..3, A much better .. B much better)"
        LIKERT = "likert", "Likert 1..7 per response"
        FLAG = "flag", "Flag (checkbox)"
        TEXT = "text", "Free text"

    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="criteria")
    key = models.SlugField(max_length=64)
    question = models.CharField(max_length=500)
    help_text = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    required = models.BooleanField(default=False)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rubric", "key"], name="criterion_rubric_key_unique")]
        ordering = ["rubric", "position", "id"]

    def __str__(self) -> str:
        return f"{self.rubric}: {self.key}"


class Queue(models.Model):
    """A labeling project: what to judge, how many times, under which rubric, by whom."""

    class Kind(models.TextChoices):
        PAIRWISE = "pairwise", "Pairwise"
        RANKING = "ranking", "Ranking (K-way)"
        REDTEAM = "redteam", "Red-team"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"  # hands out work
        PAUSED = "paused", "Paused"  # keeps its items, hands out nothing
        CLOSED = "closed", "Closed"  # finished; hands out nothing

    class SkipPolicy(models.TextChoices):
        OTHERS = "others", "Requeue for others (never show to this rater again)"
        LATER = "later", "Requeue for others, and for this rater after everything else"
        RETIRE = "retire", "Never show again (retire the item for everyone)"

    class Dedupe(models.TextChoices):
        EXACT = "exact", "Leave out identical texts (after whitespace)"
        SIMILAR = "similar", "Leave out near-identical texts too"
        OFF = "off", "Keep every text"

    class Pairing(models.TextChoices):
        ALL_PAIRS = "all_pairs", "All pairs among a prompt's candidates"
        RANDOM_PAIR = "random_pair", "One random pair per prompt"
        CROSS_GENERATOR = "cross_generator", "Pairs across generators"
        ADAPTIVE = "adaptive", "Adaptive: most uncertain Bradley-Terry pairs first"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PAIRWISE)
    rubric = models.ForeignKey(Rubric, on_delete=models.PROTECT, related_name="queues")
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Judgments wanted per item.")
    lease_seconds = models.PositiveIntegerField(default=settings.PREFLAB_DEFAULT_LEASE_SECONDS)
    gold_rate = models.FloatField(default=0.0)
    priority = models.IntegerField(default=0)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to raters.")
    content_warning = models.CharField(max_length=200, blank=True)
    content_warning_category = models.CharField(
        max_length=16,
        choices=ContentCategory.choices,
        blank=True,
        help_text="Every item of this queue carries this warning (raters who opted out are not sent here).",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    skip_policy = models.CharField(max_length=16, choices=SkipPolicy.choices, default=SkipPolicy.OTHERS)
    pairing = models.CharField(max_length=20, choices=Pairing.choices, default=Pairing.ALL_PAIRS)
    max_open_leases = models.PositiveSmallIntegerField(
        default=1, help_text="Live leases one rater may hold in this queue at once."
    )
    # How items are built, now and when prompts are added later (labeling.services.queues).
    dedupe = models.CharField(max_length=8, choices=Dedupe.choices, default=Dedupe.EXACT)
    similarity = models.FloatField(
        null=True,
        blank=True,
        help_text="With dedupe 'similar': texts at least this similar (0..1) count as one.",
    )
    interleave = models.BooleanField(
        default=True, help_text="Hand items out so that one conversation does not come back to back."
    )
    qualification = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="qualifies_for",
        help_text="A gold queue raters must pass before working here.",
    )
    qualification_min_items = models.PositiveSmallIntegerField(default=5)
    qualification_min_accuracy = models.FloatField(default=0.8)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="queues", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="queue_overlap_positive"),
            models.CheckConstraint(
                condition=Q(max_open_leases__gte=1), name="queue_max_open_leases_positive"
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="queue_gold_rate_fraction"
            ),
        ]
        ordering = ["-priority", "id"]

    def __str__(self) -> str:
        return self.name


class QueueItem(models.Model):
    """One comparison inside one queue.

    ``claimed`` counts live leases plus submitted judgments; it only changes while the row is
    locked (see ``labeling.services``) and never exceeds the queue's overlap.
    """

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="items")
    comparison = models.ForeignKey(
        "comparisons.Comparison", on_delete=models.CASCADE, related_name="queue_items"
    )
    is_gold = models.BooleanField(default=False)
    gold_answer = models.JSONField(
        null=True,
        blank=True,
        help_text='Known answer in candidate positions: {"preference": -3..3} or {"ranking": [[0], [2, 1]]}.',
    )
    retired = models.BooleanField(default=False, help_text="Withdrawn: handed out to no one.")
    priority = models.IntegerField(default=0)
    claimed = models.PositiveSmallIntegerField(default=0)
    judged = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "comparison"], name="queueitem_queue_comparison_unique"),
            models.CheckConstraint(
                condition=Q(judged__lte=models.F("claimed")), name="queueitem_judged_le_claimed"
            ),
        ]
        indexes = [
            # The claim walks a queue's open items in (priority desc, id) order and stops at the
            # first one with room: ``claimed`` is the last key column, so full items are passed over
            # inside the index, without a visit to the table.
            models.Index(
                fields=["queue", "is_gold", "retired", "-priority", "id", "claimed"],
                name="queueitem_pick_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.queue_id}:{self.comparison_id}"


class Assignment(models.Model):
    """A lease of one queue item to one rater. One per (item, rater): never the same item twice."""

    class Status(models.TextChoices):
        LEASED = "leased", "Leased"  # the rater holds it until expires_at
        SUBMITTED = "submitted", "Submitted"  # a judgment exists
        SKIPPED = "skipped", "Skipped"  # released by the rater, never shown to them again
        EXPIRED = "expired", "Expired"  # the lease ran out and was released

    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="assignments")
    # PROTECT: deleting a rater would take their assignments and judgments with it and leave the
    # items' counters wrong; a rater who worked is deactivated instead.
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LEASED)
    shown_order = models.JSONField(help_text="Candidate ids in the order shown: index 0 is label A.")
    expires_at = models.DateTimeField()
    skip_reason = models.CharField(max_length=500, blank=True)
    requeue = models.BooleanField(default=False, help_text="Skipped, but may come back to this rater later.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "rater"], name="assignment_item_rater_unique"),
        ]
        indexes = [
            models.Index(fields=["rater", "status"], name="assignment_rater_status_idx"),
            models.Index(fields=["status", "expires_at"], name="assignment_status_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.status})"


class Judgment(models.Model):
    """One rater's answer to one assignment.

    ``preference`` is in the labels the rater saw (negative = A better); the assignment's
    ``shown_order`` maps labels back to candidates. ``ranking`` lists groups of labels, best
    first, ties grouped.
    """

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="judgment")
    rubric = models.ForeignKey(Rubric, on_delete=models.PROTECT, related_name="judgments")
    preference = models.SmallIntegerField(null=True, blank=True)
    ranking = models.JSONField(null=True, blank=True)
    criteria = models.JSONField(default=dict, blank=True)
    flags = models.JSONField(default=list, blank=True)
    rationale = models.TextField(blank=True)
    rewrite = models.TextField(blank=True)
    active_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(preference__isnull=True) | (Q(preference__gte=-3) & Q(preference__lte=3)),
                name="judgment_preference_range",
            ),
            models.CheckConstraint(
                condition=Q(preference__isnull=False) | Q(ranking__isnull=False),
                name="judgment_has_answer",
            ),
        ]

    def __str__(self) -> str:
        return f"judgment {self.pk}"


class ApiKey(AbstractAuthToken):
    """A user's API key, sent as ``Authorization: Token <key>``: knox's token (``digest``, the key's
    SHA-512; ``token_key``, its first characters, to recognize it by; ``expiry``), named, with its
    last use. The key itself is shown once, when it is made, and stored nowhere. Revoking deletes
    the row; the audit log keeps the record (``labeling.services.api_keys``)."""

    class Kind(models.TextChoices):
        NAMED = "named", "Named"  # made by its user (/account/keys/, POST /api/v1/auth/keys/)
        LOGIN = "login", "Login"  # made by POST /api/v1/auth/token/; the oldest replaced past the cap

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=128, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.NAMED)
    # Written at most once a minute (PREFLAB_API_KEY_TOUCH_SECONDS), not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.token_key}…)"


class AuditEvent(models.Model):
    """Who did what to which object, when, from where (recorded through ``labeling.audit``).

    Append-only: the admin shows events read-only, and a database trigger refuses any UPDATE or
    DELETE (migration 0008). ``actor`` keeps no foreign-key constraint, so deleting a user leaves
    their events (and ``actor_name``, the name at the time) as they were."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, help_text="The user's name then, or the process.")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="auditevent_object_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"
