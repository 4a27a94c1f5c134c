"""Stored statistics facts: one narrow row per judgment, kept in step with the judgments, so a
queue's statistics read one table instead of joining judgments, assignments, items and
comparisons (``labeling.selectors.stats_facts``; folded in by ``labeling.services.stats_facts``)."""

from __future__ import annotations

from django.db import models

from labeling.models.assignments import Judgment
from labeling.models.queues import Queue


class JudgmentFact(models.Model):
    """What the queue statistics need of one judgment, as numbers worked out once when it is
    folded in: the rater, the item, the active seconds, the preference in the labels shown,
    whether the pair was shown swapped (NULL: the comparison has no stored members), when it was
    made (seconds since 1970), the ``both_bad`` flag, and the answers to the queue's measured
    criteria as space-separated numbers (``nan``: no answer) in the order
    ``JudgmentFactsState.answer_keys`` names. Deleting the judgment (an undo) deletes its fact.
    Whether the item is gold is not stored: an item may become gold later; it is read from the
    items when the facts are."""

    judgment = models.OneToOneField(Judgment, primary_key=True, on_delete=models.CASCADE, related_name="fact")
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="+")
    item_id = models.BigIntegerField()
    rater_id = models.BigIntegerField()
    active = models.FloatField(null=True)
    preference = models.SmallIntegerField(null=True)
    swapped = models.SmallIntegerField(null=True)
    created = models.FloatField()
    both_bad = models.BooleanField(default=False)
    answers = models.TextField(blank=True, default="")
    #: The fold that added it: its ``JudgmentFactChunk`` holds the same numbers packed.
    chunk = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"fact of judgment {self.judgment_id}"


class JudgmentFactChunk(models.Model):
    """The facts one fold added to a queue, packed: ``rows`` rows of float64 numbers (little
    endian, row after row, NaN for NULL), the columns of ``selectors.stats_facts.STORED`` then one
    per answer key. Read as one value, a million facts are a few rows instead of a million. The
    fact rows stay the record of what exists: a chunk whose queue has fewer facts than its chunks'
    rows (an undo deleted one) is read filtered by the facts' ids."""

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="+")
    number = models.IntegerField()
    rows = models.IntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "number"], name="judgmentfactchunk_queue_number_unique"),
        ]

    def __str__(self) -> str:
        return f"facts chunk {self.number} of queue {self.queue_id}"


class JudgmentFactsState(models.Model):
    """How far a queue's facts are folded in: every judgment of the queue with an id up to
    ``folded_through`` that was committed when it was folded has its fact (later ones are found
    by the next fold), and ``answer_keys`` are the criteria answers the facts carry."""

    queue = models.OneToOneField(Queue, primary_key=True, on_delete=models.CASCADE, related_name="+")
    folded_through = models.BigIntegerField(default=0)
    #: The number of the last ``JudgmentFactChunk`` made.
    chunks = models.IntegerField(default=0)
    answer_keys = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"facts of queue {self.queue_id} through judgment {self.folded_through}"
