"""Assignments (a rater's lease of a queue item) and judgments."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models.queues import QueueItem
from labeling.models.rubrics import Rubric


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
