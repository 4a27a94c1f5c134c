from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from export.models import ExportRun, RewardCheck


@admin.register(ExportRun)
class ExportRunAdmin(admin.ModelAdmin):
    """Read-only: a run is an immutable snapshot, created through the API, the page or manage.py."""

    list_display = ("id", "name", "format", "status", "row_count", "created_by", "created_at", "finished_at")
    list_filter = ("status", "format")
    search_fields = ("name", "sha256")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RewardCheck)
class RewardCheckAdmin(admin.ModelAdmin):
    """Read-only: checks are queued from the export page or the API and written by their task."""

    list_display = ("id", "export_run", "status", "accuracy", "gold_accuracy", "verdict", "created_at")
    list_filter = ("status", "verdict")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
