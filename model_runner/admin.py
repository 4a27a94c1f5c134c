from django.contrib import admin

from model_runner.models import GenerationJob, Generator


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "model_path", "is_active", "created_at"]
    list_filter = ["backend", "is_active"]
    search_fields = ["name", "model_path", "model_name"]


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "done",
        "total",
        "samples_per_prompt",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status"]
    # Status, progress and errors are written by the runner's services only.
    readonly_fields = [
        "status",
        "total",
        "done",
        "completion_tokens",
        "generation_seconds",
        "errors",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
    filter_horizontal = ["generators"]
    raw_id_fields = ["prompts"]
