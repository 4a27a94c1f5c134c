"""What is judged: prompts (conversations), candidate responses, comparisons."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q


def messages_hash(messages: list[dict[str, Any]], namespace: str = "") -> str:
    """A stable hash of a conversation, used to deduplicate prompts. A ``namespace`` keeps prompts of
    one kind apart from equal conversations of another (a conversation session's turns never merge
    with an imported prompt that happens to hold the same messages); without one, the hash is the
    one every existing prompt has."""
    turns = [{"role": m["role"], "content": m["content"]} for m in messages]
    canonical = json.dumps(
        {"namespace": namespace, "messages": turns} if namespace else turns,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Prompt(models.Model):
    class Source(models.TextChoices):
        IMPORT = "import", "Import"
        ADVERSARY = "adversary", "Adversary"
        REDTEAM = "redteam", "Red-team"
        DEMO = "demo", "Demo"
        CONVERSATION = "conversation", "Conversation"  # a session's turn: the conversation so far

    external_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    messages = models.JSONField(help_text="[{role, content}, ...]: system/user/assistant turns.")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.IMPORT)
    tags = models.JSONField(default=list, blank=True)
    collection = models.CharField(max_length=200, blank=True, db_index=True)
    content_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        last = self.messages[-1]["content"] if self.messages else ""
        return f"prompt {self.pk}: {last[:60]}"

    @property
    def public_id(self) -> str:
        return self.external_id or str(self.pk)


class Candidate(models.Model):
    """One response to a prompt. Unique (prompt, generator, sample_index): a re-run writes nothing twice."""

    class FinishReason(models.TextChoices):
        STOP = "stop", "Stop"
        LENGTH = "length", "Length"
        IMPORTED = "imported", "Imported"
        HUMAN = "human", "Human-written"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="candidates")
    generator = models.ForeignKey(
        "model_runner.Generator", on_delete=models.PROTECT, related_name="candidates"
    )
    job = models.ForeignKey(
        "model_runner.GenerationJob",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="candidates",
    )
    sample_index = models.PositiveIntegerField()
    text = models.TextField()
    sampling = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    model_revision = models.CharField(max_length=128, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=16, choices=FinishReason.choices, default=FinishReason.STOP)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "generator", "sample_index"],
                name="candidate_prompt_generator_sample_unique",
            ),
        ]
        ordering = ["prompt_id", "generator_id", "sample_index"]

    def __str__(self) -> str:
        return f"candidate {self.pk} (prompt {self.prompt_id}, #{self.sample_index})"


class Comparison(models.Model):
    """2..9 candidates of one prompt judged together (2 = a pair, K > 2 = a ranking task).

    ``candidate_key`` is the sorted candidate ids: the same set is never built twice. The
    candidates left out because their text repeats a shown one are its ``duplicates``.
    """

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    candidates = models.ManyToManyField(Candidate, through="ComparisonCandidate", related_name="comparisons")
    size = models.PositiveSmallIntegerField()
    candidate_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(size__gte=2) & Q(size__lte=9), name="comparison_size_2_to_9"),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"comparison {self.pk} ({self.size} candidates)"


class ComparisonCandidate(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="members")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "candidate"], name="compcand_unique"),
            models.UniqueConstraint(fields=["comparison", "position"], name="compcand_position_unique"),
        ]
        ordering = ["comparison_id", "position"]

    def __str__(self) -> str:
        return f"comparison {self.comparison_id} #{self.position}: candidate {self.candidate_id}"


class ComparisonDuplicate(models.Model):
    """A candidate left out of a comparison because its text repeats the shown candidate ``kept``.

    ``comparisons_build`` shows raters one copy of each text and records the other copies here:
    a duplicate counts as tied with its kept copy (the exports list it in the kept copy's place).
    ``kept`` is one of the comparison's candidates; a candidate is a duplicate at most once per
    comparison and never of itself.
    """

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="duplicates")
    kept = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "candidate"], name="compdup_unique"),
            models.CheckConstraint(condition=~Q(candidate=models.F("kept")), name="compdup_not_its_own_copy"),
        ]
        ordering = ["comparison_id", "kept_id", "candidate_id"]

    def __str__(self) -> str:
        return f"comparison {self.comparison_id}: candidate {self.candidate_id} repeats {self.kept_id}"


class PromptExternalId(models.Model):
    """An external id a prompt was imported under: the first is also ``Prompt.external_id`` (its
    public id in exports); a later import naming the same conversation by another id adds it here.

    ``value`` is unique: one id names one prompt. Every lookup by external id (imports, prompt
    selection) reads both ``Prompt.external_id`` and these rows.
    """

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="external_ids")
    value = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prompt_id", "id"]

    def __str__(self) -> str:
        return f"{self.value} -> prompt {self.prompt_id}"


class ImportedPreference(models.Model):
    """The label an imported preference dataset came with: which of two candidates it chose.

    Kept apart from the candidates, for researchers (agreement with the original labels); raters
    never see it, nor which dataset a response came from. ``metadata`` holds the line's other
    scalar columns (``score_chosen``...). One row per (chosen, rejected) pair; the two are the
    same candidate when a dataset chose between identical texts.
    """

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="imported_preferences")
    chosen = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    rejected = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    dataset = models.CharField(
        max_length=200, help_text="The dataset named at import (its generator's name)."
    )
    line = models.PositiveIntegerField(help_text="The line (or row) of the file it was first imported from.")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chosen", "rejected"], name="importedpref_pair_unique"),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.dataset}: candidate {self.chosen_id} over {self.rejected_id}"


class ImportJob(models.Model):
    """An import too big to run within its request, run by a worker on the ``default`` queue.

    The same reading, checks and single transaction as an import in a request: all or nothing.
    The uploaded file waits under the imports folder (``file_path``, relative to it) and is
    removed once the job is finished. ``status`` changes only in ``comparisons/services/import_jobs.py``.
    """

    class Kind(models.TextChoices):
        PROMPTS = "prompts", "Prompts"
        CANDIDATES = "candidates", "Responses"
        PREFERENCES = "preferences", "Preference dataset"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"  # created, file saved, task enqueued
        RUNNING = "running", "Running"  # a worker reads and checks every line, then writes them
        SUCCEEDED = "succeeded", "Succeeded"  # written; ``result`` holds the counts
        FAILED = "failed", "Failed"  # nothing written; ``error`` and ``errors`` say why

    kind = models.CharField(max_length=16, choices=Kind.choices)
    format = models.CharField(max_length=16)
    options = models.JSONField(default=dict, blank=True, help_text="The import's options (checked).")
    file_name = models.CharField(max_length=255, help_text="The uploaded file's name.")
    file_path = models.CharField(max_length=500, blank=True, help_text="Relative to the imports folder.")
    file_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    lines_total = models.PositiveIntegerField(null=True, blank=True, help_text="Lines (rows) in the file.")
    lines_done = models.PositiveIntegerField(default=0, help_text="Lines (rows) read and checked so far.")
    result = models.JSONField(default=dict, blank=True, help_text="{what: {created, existing}}.")
    error = models.TextField(blank=True)
    errors = models.JSONField(default=list, blank=True, help_text="[{line, field, message}], the first 20.")
    error_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"import {self.pk} ({self.kind}, {self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def writing(self) -> bool:
        """Every line is read: the job checks them against the stored rows and writes them."""
        return (
            self.status == self.Status.RUNNING
            and self.lines_total is not None
            and (self.lines_done >= self.lines_total)
        )

    @property
    def progress(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        return min(1.0, self.lines_done / self.lines_total) if self.lines_total else 0.0
