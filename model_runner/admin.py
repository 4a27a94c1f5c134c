from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from comparisons.forms import ColumnLimitsMixin
from labeling.errors import ApplicationError
from model_runner import services
from model_runner.models import GenerationJob, Generator


class GeneratorAdminForm(forms.ModelForm):
    """The same checks as the API (``generator_config_check``, and ``generator_update_check`` for a
    change), every error on the field it names; saving goes through the same services too."""

    class Meta:
        model = Generator
        fields = Generator.CONFIG_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["queue"].required = False  # left empty: gpu, as through the API

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        cleaned["queue"] = cleaned.get("queue") or Generator._meta.get_field("queue").get_default()
        values = {f: cleaned.get(f) for f in Generator.CONFIG_FIELDS if f in cleaned}
        checked, problems = services.generator_config_check(values)
        if not problems and self.instance.pk:
            try:
                checked = services.generator_update_check(
                    generator=Generator.objects.get(pk=self.instance.pk), changes=values
                )
            except ApplicationError as exc:
                problems = [exc]
        for problem in problems:
            field = problem.field if problem.field in self.fields else None
            self.add_error(field, problem.message)
        cleaned.update(checked)
        return cleaned


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin):
    form = GeneratorAdminForm
    list_display = ["name", "backend", "model_path", "queue", "is_active", "created_at"]
    list_filter = ["backend", "is_active"]
    search_fields = ["name", "model_path", "model_name"]
    # api_key_env names an environment variable of the workers; the key itself is never stored.

    def save_model(self, request: HttpRequest, obj: Generator, form: Any, change: bool) -> None:
        """Through the services, as the API saves (the form already ran their checks)."""
        values = {f: form.cleaned_data[f] for f in Generator.CONFIG_FIELDS if f in form.cleaned_data}
        if change:
            services.generator_update(generator=Generator.objects.get(pk=obj.pk), changes=values)
            obj.refresh_from_db()
        else:
            created = services.generator_create(**values)
            obj.pk = created.pk
            obj.refresh_from_db()


@admin.register(GenerationJob)
class GenerationJobAdmin(ColumnLimitsMixin, admin.ModelAdmin):
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
    actions = ["cancel_jobs", "retry_jobs"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A job saved here would have no batches and never run: jobs start on /manage/generation/,
        # through the API or with manage.py generate, which all enqueue its batches.
        return False

    def _each(self, request: HttpRequest, queryset: QuerySet[GenerationJob], service: Any, done: str) -> None:
        for job in queryset:
            try:
                service(job=job)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.WARNING)
            else:
                self.message_user(request, f"generation job {job.pk}: {done}")

    @admin.action(description="Cancel (the candidates already made stay)")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[GenerationJob]) -> None:
        self._each(request, queryset, services.generation_job_cancel, "cancelled")

    @admin.action(description="Retry (only the batches that lack candidates)")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[GenerationJob]) -> None:
        self._each(request, queryset, services.generation_job_retry, "unfinished batches enqueued again")
