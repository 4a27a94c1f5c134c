"""Export runs: immutable snapshots of judgments in a trainer-ready format."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExportRun(models.Model):
    class Format(models.TextChoices):
        TRL = "trl", "TRL preference (conversational, explicit prompt, margin)"
        NATIVE = "native", "Native (lossless, one row per judgment)"
        RANKINGS = "rankings", "Rankings (one row per K-way judgment, or its K-choose-2 pairs)"
        HH = "hh", "Anthropic HH-RLHF transcripts"
        HELPSTEER = "helpsteer", "HelpSteer2-Preference (response_1, response_2, strength -3..3)"
        RATINGS = "ratings", "Per-response Likert ratings (one row per response)"
        SFT = "sft", "SFT conversations (one row per finished session, its kept branch)"
        REDTEAM_EVAL = "redteam_eval", "Red-team test set (one row per confirmed test-side attack)"
        REDTEAM_ATTEMPTS = "redteam_attempts", "Red-team attempts (Anthropic red-team-attempts fields)"

    class Aggregation(models.TextChoices):
        RAW = "raw", "Every judgment"
        MAJORITY = "majority", "Majority per candidate pair"
        MEAN = "mean", "Mean strength per candidate pair"
        ADJUDICATED = (
            "adjudicated",
            "Adjudicated (a reviewer's final label where there is one, else the majority)",
        )

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"  # created, task enqueued
        RUNNING = "running", "Running"  # the task is writing files
        SUCCEEDED = "succeeded", "Succeeded"  # files written, sha256 recorded; immutable from here
        FAILED = "failed", "Failed"  # nothing usable written; error says why

    name = models.CharField(max_length=200, default="preferences")
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.TRL)
    aggregation = models.CharField(max_length=16, choices=Aggregation.choices, default=Aggregation.RAW)
    filters = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True, help_text="View and file options (normalized).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    row_count = models.PositiveIntegerField(default=0)
    judgments_total = models.PositiveIntegerField(default=0, help_text="Judgments to read (progress).")
    judgments_done = models.PositiveIntegerField(default=0, help_text="Judgments read so far (progress).")
    manifest = models.JSONField(default=dict, blank=True)
    files = models.JSONField(default=list, blank=True, help_text="[{path, split, kind, rows, bytes, sha256}]")
    file_path = models.CharField(
        max_length=500, blank=True, help_text="Snapshot folder, relative to the root."
    )
    sha256 = models.CharField(max_length=64, blank=True, help_text="Digest of the snapshot's file list.")
    code_version = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.format}, {self.status})"

    @property
    def progress(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        return min(1.0, self.judgments_done / self.judgments_total) if self.judgments_total else 0.0


class RewardCheck(models.Model):
    """A small reward model trained on one snapshot's train split and scored on its test split, on
    the gold items of the queues it drew from and on researcher-supplied known-direction pairs.

    ``status``, ``steps_done`` and the results change only in ``export.services.reward_checks``."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"  # created, task enqueued on the gpu queue
        RUNNING = "running", "Running"  # training; steps_done / steps_total is the progress
        DONE = "done", "Done"  # results recorded
        FAILED = "failed", "Failed"  # error says why

    class Verdict(models.TextChoices):
        PASS = "pass", "Pass"
        FAIL = "fail", "Fail"
        INCONCLUSIVE = "inconclusive", "Inconclusive"
        NONE = "", "No direction data"

    export_run = models.ForeignKey(ExportRun, on_delete=models.CASCADE, related_name="reward_checks")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    options = models.JSONField(default=dict, blank=True, help_text="Training settings (normalized).")
    known_pairs = models.JSONField(
        default=list,
        blank=True,
        help_text="Researcher-supplied [{prompt, chosen, rejected}] of known direction.",
    )
    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    train_pairs = models.PositiveIntegerField(default=0)
    test_pairs = models.PositiveIntegerField(default=0)
    accuracy = models.FloatField(null=True, blank=True, help_text="Pairwise accuracy on the test split.")
    accuracy_low = models.FloatField(null=True, blank=True)
    accuracy_high = models.FloatField(null=True, blank=True)
    baseline_accuracy = models.FloatField(null=True, blank=True, help_text="The untrained model, test split.")
    baseline_low = models.FloatField(null=True, blank=True)
    baseline_high = models.FloatField(null=True, blank=True)
    gold_n = models.PositiveIntegerField(default=0)
    gold_accuracy = models.FloatField(null=True, blank=True)
    gold_low = models.FloatField(null=True, blank=True)
    gold_high = models.FloatField(null=True, blank=True)
    known_n = models.PositiveIntegerField(default=0)
    known_accuracy = models.FloatField(null=True, blank=True)
    known_low = models.FloatField(null=True, blank=True)
    known_high = models.FloatField(null=True, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True, default=Verdict.NONE)
    timings = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"reward check {self.pk} of export {self.export_run_id} ({self.status})"

    @property
    def progress(self) -> float:
        if self.status == self.Status.DONE:
            return 1.0
        return min(1.0, self.steps_done / self.steps_total) if self.steps_total else 0.0
