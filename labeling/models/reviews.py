"""Trust in the labels: raters paused from a queue for their gold accuracy, and reviews (a
reviewer's final word on a contested item)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models.queues import Queue, QueueItem


class RaterQueuePause(models.Model):
    """A rater paused from one queue because their gold accuracy there fell under the queue's
    ``gold_min_accuracy`` (``labeling.services.pauses``). Open while ``lifted_at`` is empty: the
    claim refuses the rater this queue. At most one open pause per (queue, rater); lifted ones stay
    as the record, and the evidence for the next pause counts only gold answers after the last lift.
    """

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="rater_pauses")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="queue_pauses")
    reason = models.TextField(help_text="The evidence, in words.")
    gold_answered = models.PositiveIntegerField(help_text="Gold items answered since the last lift.")
    gold_correct = models.PositiveIntegerField()
    accuracy = models.FloatField()
    min_accuracy = models.FloatField(help_text="The queue's threshold when the pause was made.")
    created_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    lift_note = models.TextField(blank=True)

    class Meta:
        constraints = [
            # Also the index of the claim's "is this rater paused here?" probe.
            models.UniqueConstraint(
                fields=["queue", "rater"],
                condition=Q(lifted_at__isnull=True),
                name="raterqueuepause_one_open",
            ),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"pause of rater {self.rater_id} in queue {self.queue_id}"


class Review(models.Model):
    """A reviewer's final label for one queue item, in the comparison's stored candidate order
    (never the labels a rater was shown): ``preference`` -3..3 for a pair (negative = position 0
    better) or ``ranking`` as groups of positions, best first. One per item."""

    item = models.OneToOneField(QueueItem, on_delete=models.CASCADE, related_name="review")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    preference = models.SmallIntegerField(null=True, blank=True)
    ranking = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(preference__isnull=True) | (Q(preference__gte=-3) & Q(preference__lte=3)),
                name="review_preference_range",
            ),
            models.CheckConstraint(
                condition=Q(preference__isnull=False) | Q(ranking__isnull=False), name="review_has_label"
            ),
        ]

    def __str__(self) -> str:
        return f"review of item {self.item_id}"
