from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import HttpRequest

from labeling.models import Assignment, Criterion, Judgment, Queue, QueueItem, Rubric, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "role", "is_active", "last_login")
    list_filter = ("role", "is_active")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Preflab", {"fields": ("role", "content_opt_outs")}))  # type: ignore[misc]
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, ("Preflab", {"fields": ("role",)}))


class CriterionInline(admin.TabularInline):
    model = Criterion
    extra = 0


@admin.register(Rubric)
class RubricAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "frozen", "created_at")
    inlines = [CriterionInline]

    def get_readonly_fields(self, request, obj=None):
        # A rubric that judgments used is frozen: make a new version instead of editing it.
        return ("name", "version", "description", "frozen") if obj and obj.frozen else ()

    def has_delete_permission(self, request, obj=None):
        return not (obj and obj.frozen)


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "status", "overlap", "priority", "rubric")
    list_filter = ("kind", "status")
    filter_horizontal = ("members",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A queue saved here would have no items: queues are created on /manage/queues/new/ or with
        # POST /api/v1/queues/, which build the items from the prompts' candidates.
        return False


@admin.register(QueueItem)
class QueueItemAdmin(admin.ModelAdmin):
    list_display = ("id", "queue", "comparison", "claimed", "judged", "is_gold", "priority")
    list_filter = ("queue", "is_gold")
    readonly_fields = ("claimed", "judged")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "rater", "status", "expires_at", "created_at")
    list_filter = ("status",)
    readonly_fields = ("item", "rater", "shown_order", "status", "expires_at")


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ("id", "assignment", "preference", "rubric", "created_at")
    readonly_fields = [f.name for f in Judgment._meta.fields]
