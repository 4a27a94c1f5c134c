"""Rubrics (versioned, frozen once used) and their criteria."""

from __future__ import annotations

from django.db import models


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
