"""Admin for prompts, candidates and comparisons.

Prompt and response text is untrusted: it is shown through plain strings, which the admin
escapes; nothing here marks it safe.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from .models import (
    Candidate,
    Comparison,
    ComparisonCandidate,
    ComparisonDuplicate,
    ImportedPreference,
    ImportJob,
    Prompt,
    PromptExternalId,
)


def _excerpt(text: str, length: int = 80) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


class PromptExternalIdInline(admin.TabularInline):
    """Every id the prompt was imported under; the first is also its ``external_id``."""

    model = PromptExternalId
    extra = 0
    readonly_fields = ["created_at"]


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "external_id", "last_message", "source", "collection", "tag_list", "created_at"]
    list_filter = ["source", "collection"]
    search_fields = ["external_id", "external_ids__value", "collection", "content_hash", "messages"]
    readonly_fields = ["content_hash", "created_at"]
    inlines = [PromptExternalIdInline]

    @admin.display(description="last message")
    def last_message(self, prompt: Prompt) -> str:
        return _excerpt(prompt.messages[-1]["content"]) if prompt.messages else ""

    @admin.display(description="tags")
    def tag_list(self, prompt: Prompt) -> str:
        return ", ".join(prompt.tags or [])


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "prompt",
        "generator",
        "sample_index",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "excerpt",
    ]
    list_filter = ["finish_reason", "generator"]
    list_select_related = ["prompt", "generator"]
    search_fields = ["text", "prompt__external_id"]
    raw_id_fields = ["prompt", "job", "author"]
    readonly_fields = ["created_at"]

    @admin.display(description="text")
    def excerpt(self, candidate: Candidate) -> str:
        return _excerpt(candidate.text)


class ComparisonCandidateInline(admin.TabularInline):
    model = ComparisonCandidate
    raw_id_fields = ["candidate"]
    extra = 0


class ComparisonDuplicateInline(admin.TabularInline):
    """Candidates left out of the comparison because their text repeats a shown one (``kept``)."""

    model = ComparisonDuplicate
    fk_name = "comparison"
    raw_id_fields = ["kept", "candidate"]
    extra = 0


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt", "size", "candidate_key", "created_at"]
    list_filter = ["size"]
    list_select_related = ["prompt"]
    search_fields = ["candidate_key", "prompt__external_id"]
    raw_id_fields = ["prompt"]
    readonly_fields = ["created_at"]
    inlines = [ComparisonCandidateInline, ComparisonDuplicateInline]


@admin.register(ImportedPreference)
class ImportedPreferenceAdmin(admin.ModelAdmin):
    """The labels imported preference datasets came with (read-only: they are the dataset's)."""

    list_display = ["id", "dataset", "prompt", "chosen", "rejected", "line", "created_at"]
    list_filter = ["dataset"]
    list_select_related = ["prompt", "chosen", "rejected"]
    search_fields = ["dataset", "prompt__external_id"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Imports run by a worker. Read-only: the status changes only in their service."""

    list_display = [
        "id",
        "kind",
        "file_name",
        "status",
        "lines_done",
        "lines_total",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "kind"]
    list_select_related = ["created_by"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
