"""``manage.py generate``: make K candidate responses per prompt with a generator."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from comparisons.selectors import prompts_select
from labeling.errors import ApplicationError, decimal_int
from model_runner import selectors, services
from model_runner.models import GenerationJob


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes:02d}:{secs:02d}"


def progress_line(job: GenerationJob, width: int = 30) -> str:
    """``[#####.....] 12/40 30% 41.2 tok/s ETA 00:35 running`` for one job."""
    stats = selectors.generation_job_stats(job=job)
    filled = int(width * stats["progress"])
    rate = stats["tokens_per_second"]
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {job.done}/{job.total} {stats['progress']:.0%} "
        f"{(f'{rate:.1f}' if rate is not None else '-')} tok/s ETA {_duration(stats['eta_seconds'])} {job.status}"
    )


class Command(BaseCommand):
    help = (
        "Generate candidate responses: prompts x generator x K samples. Runs the batches in this process "
        "by default (progress on stderr); --enqueue sends them to the gpu workers instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--prompts", nargs="+", metavar="ID", help="prompt ids (database ids or external ids)"
        )
        which.add_argument("--tags", nargs="+", metavar="TAG", help="prompts with any of these tags")
        which.add_argument("--collection", help="prompts of this collection")
        which.add_argument("--all", action="store_true", help="every prompt")
        parser.add_argument(
            "--generator",
            action="append",
            metavar="NAME",
            help="generator name or id (repeatable; default: the bundled SmolLM2-135M-Instruct)",
        )
        parser.add_argument("--samples", type=int, default=4, help="samples per prompt, 1..16 (default 4)")
        parser.add_argument("--max-new-tokens", type=int)
        parser.add_argument("--temperature", type=float)
        parser.add_argument("--top-p", type=float)
        parser.add_argument("--top-k", type=int)
        parser.add_argument("--repetition-penalty", type=float)
        parser.add_argument("--stop", action="append", metavar="TEXT", help="a stop string (repeatable)")
        parser.add_argument("--seed", type=int, help="makes sampling reproducible")
        parser.add_argument("--batch-size", type=int, default=16, help="prompts per batch (default 16)")
        parser.add_argument("--enqueue", action="store_true", help="send the batches to Celery workers")
        parser.add_argument(
            "--wait",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="with --enqueue: wait and show progress until the job ends (default: wait)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sampling: dict[str, Any] = {}
        for key in ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "stop", "seed"):
            if options[key] is not None:
                sampling[key] = options[key]
        try:
            prompts = prompts_select(
                # ASCII digits are a prompt's id ("²" passed isdigit() and made int() raise).
                ids=[
                    n if not p.startswith("-") and (n := decimal_int(p)) is not None else p
                    for p in options["prompts"]
                ]
                if options["prompts"]
                else None,
                tags=options["tags"],
                collection=options["collection"],
                all_prompts=options["all"],
            )
            generators = (
                selectors.generators_resolve(refs=options["generator"])
                if options["generator"]
                else [services.generator_get_bundled()]
            )
            job = services.generation_job_create(
                prompts=prompts,
                generators=generators,
                samples_per_prompt=options["samples"],
                sampling=sampling,
                batch_size=options["batch_size"],
                enqueue=options["enqueue"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message)
        self.stderr.write(f"generation job {job.pk}: {job.total} samples")

        if options["enqueue"]:
            if not options["wait"]:
                self.stdout.write(str(job.pk))
                return
            job = selectors.generation_job_wait(job=job, on_progress=self._show)
        else:
            self._show(job)
            job = services.generation_job_run_inline(job=job, on_batch=self._show)
        self.stderr.write("")
        for error in job.errors:
            where = f"prompt {error['prompt_id']}: " if error.get("prompt_id") else ""
            self.stderr.write(f"error: {where}{error.get('generator', '')}: {error['error']}")
        self.stdout.write(f"job {job.pk} {job.status}: {job.done}/{job.total} candidates")
        if job.status != GenerationJob.Status.SUCCEEDED:
            raise CommandError(f"generation job {job.pk} {job.status}")

    def _show(self, job: GenerationJob) -> None:
        # One redrawn line on a terminal; whole lines when stderr is a file or pipe.
        self.stderr.write(progress_line(job), ending="\r" if self.stderr.isatty() else "\n")
        self.stderr.flush()
