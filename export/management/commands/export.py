"""manage.py export: write a snapshot folder (any view, splits, JSONL/Parquet, dataset card)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from export.models import ExportRun
from export.records import ExportDataError
from export.services.runs import export_run_execute
from export.services.snapshot import export_snapshot_write
from export.spec import FILE_KINDS, export_spec_clean
from labeling.errors import ApplicationError
from labeling.models import User

# Request key -> command-line option, for error messages that name what the user typed.
_OPTION_NAMES = {
    "filters.queues": "--queue",
    "filters.modes": "--mode",
    "filters.rubric_versions": "--rubric",
    "filters.generators": "--generator",
    "filters.tags": "--tag",
    "filters.sources": "--source",
    "filters.harm_categories": "--harm-category",
    "options.files": "--files",
}


class Command(BaseCommand):
    help = (
        "Export judgments as a dataset snapshot: data/<split>.jsonl[.gz] and/or .parquet plus a README.md "
        "dataset card that `datasets.load_dataset(folder)` reads. With --out, writes the folder there; "
        "without, records an ExportRun (as --user) under PREFLAB_EXPORT_ROOT. Prints the manifest as JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--name", default="preferences", help="Dataset name (salts splits and rater ids)."
        )
        parser.add_argument("--format", default="trl", choices=ExportRun.Format.values)
        parser.add_argument("--aggregation", default="raw", choices=ExportRun.Aggregation.values)
        parser.add_argument("--out", help="Folder to write (replaced if it exists).")
        parser.add_argument("--user", help="Username recorded as the run's creator (without --out).")
        parser.add_argument("--queue", dest="queues", type=int, action="append", metavar="ID")
        parser.add_argument(
            "--mode",
            dest="modes",
            action="append",
            metavar="MODE",
            help="Conversation template mode (chat, redteam): their judgments, or for sft their sessions.",
        )
        parser.add_argument("--rubric", dest="rubric_versions", type=int, action="append", metavar="ID")
        parser.add_argument("--generator", dest="generators", action="append", metavar="NAME")
        parser.add_argument("--tag", dest="tags", action="append", metavar="TAG")
        parser.add_argument("--since", help="ISO 8601 date/datetime, inclusive (sft: when finished).")
        parser.add_argument("--until", help="ISO 8601 date/datetime, exclusive.")
        parser.add_argument(
            "--min-judgments",
            type=int,
            help="majority/mean: votes per pooled candidate pair (row); raw: judgments per comparison",
        )
        parser.add_argument(
            "--min-agreement",
            type=float,
            help="the majority share, 0..1: majority/mean per row (its agreement column); raw per comparison",
        )
        parser.add_argument("--exclude-flagged", action="store_true")
        parser.add_argument("--exclude-gold", action="store_true")
        parser.add_argument(
            "--exclude-paused-raters", action="store_true", help="Leave out deactivated users."
        )
        parser.add_argument("--standard", action="store_true", help="trl: plain strings.")
        parser.add_argument(
            "--implicit-prompt", action="store_true", help="trl: prompt inside chosen/rejected."
        )
        parser.add_argument("--pairs", action="store_true", help="rankings: K-choose-2 pairs.")
        parser.add_argument(
            "--files", default="jsonl,parquet", help=f"Comma-separated: {', '.join(FILE_KINDS)}."
        )
        parser.add_argument("--gzip", action="store_true", help="Gzip the JSONL files.")
        parser.add_argument("--test-fraction", type=float)
        parser.add_argument("--validation-fraction", type=float)
        parser.add_argument("--redteam-split", action="store_true", help="Hold out red-team prompts.")
        parser.add_argument(
            "--source",
            dest="sources",
            action="append",
            choices=["judgments", "redteam"],
            help="trl/hh/helpsteer: where pairs come from (repeat for both; default judgments).",
        )
        parser.add_argument(
            "--harm-category",
            dest="harm_categories",
            action="append",
            metavar="KEY",
            help="Red-team rows of this harm category only (repeatable).",
        )

    def handle(self, *args: Any, **o: Any) -> None:
        filter_keys = (
            "queues",
            "modes",
            "rubric_versions",
            "generators",
            "tags",
            "since",
            "until",
            "sources",
            "harm_categories",
        )
        filters: dict[str, Any] = {k: o[k] for k in filter_keys if o[k] is not None}
        for key in ("min_judgments", "min_agreement"):
            if o[key] is not None:
                filters[key] = o[key]
        for key in ("exclude_flagged", "exclude_gold", "exclude_paused_raters"):
            if o[key]:
                filters[key] = True
        options: dict[str, Any] = {"files": [f.strip() for f in o["files"].split(",") if f.strip()]}
        for key in ("standard", "implicit_prompt", "pairs", "gzip", "redteam_split"):
            if o[key]:
                options[key] = True
        for key in ("test_fraction", "validation_fraction"):
            if o[key] is not None:
                options[key] = o[key]
        request = {
            "name": o["name"],
            "format": o["format"],
            "aggregation": o["aggregation"],
            "filters": filters,
            "options": options,
        }
        try:
            manifest = self._run(request, out=o["out"], username=o["user"])
        except ApplicationError as exc:
            field = exc.field or ""
            option = _OPTION_NAMES.get(field) or "--" + field.split(".")[-1].replace("_", "-")
            raise CommandError(f"{option}: {exc.message}" if field else exc.message)
        except ExportDataError as exc:
            raise CommandError(f"cannot export: {exc}")
        except OSError as exc:
            raise CommandError(f"--out {o['out']}: {exc.strerror or exc}")
        self.stdout.write(json.dumps(manifest, indent=2, ensure_ascii=False))

    def _run(self, request: dict[str, Any], *, out: str | None, username: str | None) -> dict[str, Any]:
        if out:
            spec = export_spec_clean(**request)
            return export_snapshot_write(spec=spec, folder=Path(out))
        if not username:
            raise CommandError("Give --out FOLDER, or --user USERNAME to record an export run.")
        user = User.objects.filter(username=username).first()
        if user is None or not user.can_export:
            raise CommandError(f"--user: {username!r} is not a researcher or admin.")
        from export.services.runs import export_run_create

        run = export_run_create(created_by=user, enqueue=False, **request)
        run = export_run_execute(export_run=run)
        if run.status != ExportRun.Status.SUCCEEDED:
            raise CommandError(f"export {run.pk} failed: {run.error}")
        return {"export_run": run.pk, "folder": run.file_path, **run.manifest}
