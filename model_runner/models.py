"""Generators (model configurations) and generation jobs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Generator(models.Model):
    class Backend(models.TextChoices):
        BUNDLED = "bundled", "Bundled default (SmolLM2-135M-Instruct)"
        TRANSFORMERS = "transformers", "Transformers (local folder or GGUF file)"
        OPENAI = "openai", "OpenAI-compatible endpoint"
        IMPORTED = "imported", "Imported responses (made elsewhere)"
        HUMAN = "human", "Human-written"

    name = models.CharField(max_length=200, unique=True)
    backend = models.CharField(max_length=16, choices=Backend.choices)
    model_path = models.CharField(
        max_length=500, blank=True, help_text="Local folder, GGUF file or endpoint URL."
    )
    gguf_file = models.CharField(max_length=300, blank=True)
    model_name = models.CharField(max_length=200, blank=True, help_text="Model name sent to an endpoint.")
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable holding the API key."
    )
    chat_template = models.TextField(blank=True, help_text="Overrides the model's chat template.")
    system_prompt = models.TextField(blank=True)
    sampling = models.JSONField(
        default=dict,
        blank=True,
        help_text="Defaults: temperature, top_p, top_k, max_new_tokens, repetition_penalty, stop, seed.",
    )
    options = models.JSONField(
        default=dict, blank=True, help_text="Backend options: device, dtype, batch size."
    )
    queue = models.CharField(
        max_length=100,
        default="gpu",
        help_text="The Celery queue its generation batches go to; a worker started with -Q <queue> serves it.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    #: What an admin configures (the API shows these; the Django admin edits them).
    CONFIG_FIELDS = (
        "name",
        "backend",
        "model_path",
        "gguf_file",
        "model_name",
        "api_key_env",
        "chat_template",
        "system_prompt",
        "sampling",
        "options",
        "queue",
        "is_active",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class GenerationJob(models.Model):
    """Prompts x generators x K samples, run in batches on the ``gpu`` queue."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"  # created, batches enqueued, none started
        RUNNING = "running", "Running"  # at least one batch started
        SUCCEEDED = "succeeded", "Succeeded"  # every candidate exists
        FAILED = "failed", "Failed"  # a batch failed; errors say why
        CANCELLED = "cancelled", "Cancelled"  # stopped by a person; finished candidates stay

    generators = models.ManyToManyField(Generator, related_name="jobs")
    prompts = models.ManyToManyField("comparisons.Prompt", related_name="generation_jobs")
    samples_per_prompt = models.PositiveSmallIntegerField(default=4)
    sampling = models.JSONField(default=dict, blank=True, help_text="Overrides the generators' defaults.")
    batch_size = models.PositiveSmallIntegerField(default=16, help_text="Prompts per task.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    generation_seconds = models.FloatField(default=0.0)
    errors = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(samples_per_prompt__gte=1) & Q(samples_per_prompt__lte=16),
                name="job_samples_1_to_16",
            ),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"generation job {self.pk} ({self.status})"

    @property
    def progress(self) -> float:
        return (self.done / self.total) if self.total else 0.0


class GenerationBatch(models.Model):
    """A batch a worker has taken and not finished: one row per (job, batch) while it runs.

    Written only by ``model_runner/services/batch_claims.py``: taken when a worker starts the batch,
    ``progress_at`` moved on each model batch it saves, deleted when the run ends. A row whose
    ``progress_at`` is older than ``PREFLAB_BATCH_STALL_SECONDS`` belongs to a worker that died (or
    hangs): the stall check sends the batch again.
    """

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="batches_taken")
    generator = models.ForeignKey(Generator, on_delete=models.CASCADE, related_name="+")
    #: The batch's prompts, in the order the job cut them (``generation_job_batches``).
    prompt_ids = models.JSONField()
    #: sha256 of the generator id and the prompt ids: the batch's identity within its job.
    key = models.CharField(max_length=64)
    worker = models.CharField(max_length=255, blank=True, help_text="The Celery worker that took it.")
    taken_at = models.DateTimeField()
    progress_at = models.DateTimeField(db_index=True)
    #: How often the stall check has sent it again.
    resent = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "key"], name="generation_batch_once_per_job")]

    def __str__(self) -> str:
        return f"batch {self.key[:8]} of job {self.job_id}"
