"""manage.py import_jailbreaks FILE --queue NAME: production exchanges as attacks waiting for triage."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from comparisons.importing import ImportFailed
from labeling.errors import ApplicationError
from labeling.models import User
from labeling.selectors.redteam_imports import redteam_queue_find
from labeling.services.redteam_imports import attack_import_jsonl

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Import jailbreaks from production logs (JSONL: messages ending with the assistant reply, "
        "optional feedback, model, id) into a red-team review queue, all or nothing; as the "
        "API POST /api/v1/redteam/imports/ does."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The JSONL file.")
        parser.add_argument("--queue", required=True, help="The red-team review queue (name or id).")
        parser.add_argument(
            "--user", help="The admin recorded as the importer (default: the first superuser or admin)."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **o: Any) -> None:
        user = self._user(o["user"])
        show = not o["no_progress"]

        def progress(done: int, total: int) -> None:
            if not show:
                return
            filled = BAR_WIDTH * done // max(total, 1)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stderr.write(f"\r[{bar}] {done}/{total}", ending="")
            if done == total:
                self.stderr.write("")
            sys.stderr.flush()

        try:
            queue = redteam_queue_find(o["queue"])
            result = attack_import_jsonl(queue=queue, file=o["file"], imported_by=user, on_progress=progress)
        except ImportFailed as exc:
            lines = [str(e) for e in exc.errors]
            more = exc.error_count - len(lines)
            raise CommandError(
                f"{o['file']}: nothing imported.\n"
                + "\n".join(lines)
                + (f"\n... and {more} more" if more else "")
            )
        except ApplicationError as exc:
            raise CommandError(f"--{exc.field}: {exc.message}" if exc.field == "queue" else exc.message)
        except OSError as exc:
            raise CommandError(f"{o['file']}: {exc.strerror or exc}")
        self.stdout.write(f"{result.created} attack(s) created, {result.existing} already imported.")

    def _user(self, username: str | None) -> User:
        if username:
            user = User.objects.filter(username=username).first()
            if user is None or not user.is_admin_role:
                raise CommandError(f"--user: {username!r} is not an admin.")
            return user
        user = (
            User.objects.filter(is_superuser=True).order_by("id").first()
            or User.objects.filter(role=User.Role.ADMIN).order_by("id").first()
        )
        if user is None:
            raise CommandError("No admin user: create one, or give --user.")
        return user
