"""Queues (labeling projects) and their items."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models.accounts import ContentCategory
from labeling.models.rubrics import Rubric


class Queue(models.Model):
    """A labeling project: what to judge, how many times, under which rubric, by whom."""

    class Kind(models.TextChoices):
        PAIRWISE = "pairwise", "Pairwise"
        RANKING = "ranking", "Ranking (K-way)"
        REDTEAM = "redteam", "Red-team"
        CONVERSATION = "conversation", "Conversation (sessions with a model)"

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
    # Trust (labeling.services.pauses, labeling.selectors.reviews).
    gold_min_accuracy = models.FloatField(
        null=True,
        blank=True,
        help_text="Pause a rater from this queue whose gold accuracy here falls under this (0..1); blank: off.",
    )
    gold_min_items = models.PositiveSmallIntegerField(
        default=10, help_text="Gold items a rater answers before their gold accuracy can pause them."
    )
    review_disagreement = models.FloatField(
        null=True,
        blank=True,
        help_text="An item goes to review when the share of judgments against its majority exceeds "
        "this (0..1); blank: only flagged items.",
    )
    # Rater wellbeing (labeling.services.claims, labeling.services.redteam_reviews).
    disturbing = models.BooleanField(
        default=False,
        help_text="Red-team work or review of disturbing material: only raters who opted in are sent here.",
    )
    daily_cap = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Items of this queue one rater may get per day (UTC); blank: no cap.",
    )
    break_after = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Offer a break after this many items of this queue in a row; blank: never.",
    )
    # Sensitive topics: {"politics": {"overlap": 5, "max_rater_share": 0.2}} per prompt tag.
    tag_policies = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per prompt tag: {"overlap": N (higher than the queue\'s), "max_rater_share": 0..1}.',
    )
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
            models.CheckConstraint(
                condition=Q(gold_min_accuracy__isnull=True)
                | (Q(gold_min_accuracy__gte=0) & Q(gold_min_accuracy__lte=1)),
                name="queue_gold_min_accuracy_fraction",
            ),
            models.CheckConstraint(
                condition=Q(daily_cap__gte=1) | Q(daily_cap__isnull=True), name="queue_daily_cap_positive"
            ),
            models.CheckConstraint(
                condition=Q(review_disagreement__isnull=True)
                | (Q(review_disagreement__gte=0) & Q(review_disagreement__lte=1)),
                name="queue_review_disagreement_fraction",
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
