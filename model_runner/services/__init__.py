"""Writes of the model runner: generators, generation jobs and the batch worker.

``GenerationJob.status`` changes only in ``job_status`` (the job lifecycle), which
``generation_job_cancel``, ``generation_job_retry`` and the batch worker call.
"""

from model_runner.services.batch_claims import generation_batches_resend_stalled
from model_runner.services.batches import generation_batch_run
from model_runner.services.generators import (
    BUNDLED_GENERATOR_NAME,
    generator_config_check,
    generator_config_clean,
    generator_create,
    generator_delete,
    generator_get_bundled,
    generator_update,
    generator_update_check,
)
from model_runner.services.job_status import FINISHED
from model_runner.services.jobs import (
    MAX_BATCH_SIZE,
    MAX_SAMPLES_PER_PROMPT,
    generation_job_batches,
    generation_job_cancel,
    generation_job_create,
    generation_job_resume_all,
    generation_job_retry,
    generation_job_run_inline,
)

__all__ = [
    "BUNDLED_GENERATOR_NAME",
    "FINISHED",
    "MAX_BATCH_SIZE",
    "MAX_SAMPLES_PER_PROMPT",
    "generation_batch_run",
    "generation_batches_resend_stalled",
    "generation_job_batches",
    "generation_job_cancel",
    "generation_job_create",
    "generation_job_resume_all",
    "generation_job_retry",
    "generation_job_run_inline",
    "generator_config_check",
    "generator_config_clean",
    "generator_create",
    "generator_delete",
    "generator_get_bundled",
    "generator_update",
    "generator_update_check",
]
