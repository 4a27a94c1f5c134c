from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from comparisons.forms import ColumnLimitsMixin
from labeling import services
from labeling.models import (
    ApiKey,
    Assignment,
    AuditEvent,
    Criterion,
    Judgment,
    Queue,
    QueueItem,
    Rubric,
    User,
)
from labeling.services.api_keys import api_key_revoke
from labeling.services.users import user_audit_saved, user_audit_values


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "role", "is_active", "disturbing_opt_in", "last_login")
    list_filter = ("role", "is_active", "disturbing_opt_in")
    fieldsets = (  # type: ignore[misc]
        *BaseUserAdmin.fieldsets,
        ("Preflab", {"fields": ("role", "content_opt_outs", "disturbing_opt_in")}),
    )
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, ("Preflab", {"fields": ("role",)}))

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        # Role changes, (de)activation and new users go to the audit log with before and after.
        before = user_audit_values(User.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        user_audit_saved(user=obj, before=before)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Every user's API keys, to revoke (delete) one: the key itself is stored nowhere, so keys
    are made by their users (``/account/keys/``), never here."""

    list_display = ("name", "user", "kind", "token_key", "created", "expiry", "last_used_at")
    list_filter = ("kind",)
    search_fields = ("name", "user__username", "token_key")
    readonly_fields = ("name", "user", "kind", "token_key", "created", "expiry", "last_used_at")
    exclude = ("digest",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        api_key_revoke(api_key=obj, reason=f"revoked by {request.user.get_username()} in the admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset.select_related("user"):
            self.delete_model(request, api_key)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only (and its table refuses updates and deletes)."""

    list_display = (
        "created_at",
        "actor_name",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "ip_address",
    )
    list_filter = ("action",)
    search_fields = ("actor_name", "action", "object_type", "object_id", "object_repr")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class CriterionInline(ColumnLimitsMixin, admin.TabularInline):
    model = Criterion
    extra = 0

    # A frozen rubric's criteria are as frozen as the rubric: judgments were made against them.
    def has_add_permission(self, request: HttpRequest, obj: Rubric | None = None) -> bool:
        return not (obj and obj.frozen) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Rubric | None = None) -> bool:
        return not (obj and obj.frozen) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Rubric | None = None) -> bool:
        return not (obj and obj.frozen) and super().has_delete_permission(request, obj)


@admin.register(Rubric)
class RubricAdmin(ColumnLimitsMixin, admin.ModelAdmin):
    list_display = ("name", "version", "frozen", "created_at")
    inlines = [CriterionInline]
    actions = ["new_version"]

    @admin.action(description="Make a new editable version (same criteria)")
    def new_version(self, request: HttpRequest, queryset: QuerySet[Rubric]) -> None:
        for rubric in queryset:
            copy = services.rubric_new_version(rubric=rubric)
            self.message_user(request, f"Copied {rubric} as {copy}: edit that one.", messages.SUCCESS)

    def get_readonly_fields(self, request, obj=None):
        # A rubric that judgments used is frozen: make a new version instead of editing it.
        return ("name", "version", "description", "copy_overall", "frozen") if obj and obj.frozen else ()

    def has_delete_permission(self, request, obj=None):
        return not (obj and obj.frozen)


@admin.register(Queue)
class QueueAdmin(ColumnLimitsMixin, admin.ModelAdmin):
    list_display = ("name", "kind", "status", "overlap", "priority", "rubric")
    list_filter = ("kind", "status")
    filter_horizontal = ("members",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A queue saved here would have no items: queues are created on /manage/queues/new/ or with
        # POST /api/v1/queues/, which build the items from the prompts' candidates.
        return False


@admin.register(QueueItem)
class QueueItemAdmin(ColumnLimitsMixin, admin.ModelAdmin):
    """``claimed`` and ``judged`` count the item's assignments and judgments: only the assignment
    services change them (``manage.py check_integrity --fix`` recounts them from the rows)."""

    list_display = ("id", "queue", "comparison", "claimed", "judged", "is_gold", "priority")
    list_filter = ("queue", "is_gold")
    readonly_fields = ("claimed", "judged")


class _LifecycleOnlyAdmin(admin.ModelAdmin):
    """Read-only in the Django admin: assignments and judgments are made, moved and removed only
    by the services (claim, submit, skip, undo), which keep each item's counters in step. A row
    added or deleted here would leave ``claimed``/``judged`` wrong; a judgment is never deleted
    (rater trust and exports decide what to leave out), and a rater with work is deactivated
    rather than deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Assignment)
class AssignmentAdmin(_LifecycleOnlyAdmin):
    list_display = ("id", "item", "rater", "status", "expires_at", "created_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in Assignment._meta.fields]


@admin.register(Judgment)
class JudgmentAdmin(_LifecycleOnlyAdmin):
    list_display = ("id", "assignment", "preference", "rubric", "created_at")
    readonly_fields = [f.name for f in Judgment._meta.fields]
