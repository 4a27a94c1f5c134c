"""Export runs: immutable snapshots of judgments in a trainer-ready format."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExportRun(models.Model):
    class Format(models.TextChoices):
        TRL = "trl", "TRL preference (conversational, explicit prompt, margin)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"  # created, task enqueued
        RUNNING = "running", "Running"  # the task is writing files
        SUCCEEDED = "succeeded", "Succeeded"  # files written, sha256 recorded; immutable from here
        FAILED = "failed", "Failed"  # nothing usable written; error says why

    name = models.CharField(max_length=200, default="preferences")
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.TRL)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    row_count = models.PositiveIntegerField(default=0)
    manifest = models.JSONField(default=dict, blank=True)
    file_path = models.CharField(max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
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
