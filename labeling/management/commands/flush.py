"""``manage.py flush``, as Django's, able to empty the append-only audit log too.

On SQLite, flush empties tables with ``DELETE``, which the audit log's guard refuses row by row
(``labeling.sql.append_only``): the guard is lifted for the flush and put back after it, whatever
happens. Emptying the whole database is not editing the log. (On PostgreSQL flush truncates, which
no row trigger sees.) The test suite flushes after each transactional test through this command.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush
from django.db import connections

from labeling.sql.append_only import guard_install, guard_remove


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        connection = connections[options["database"]]
        if connection.vendor != "sqlite":
            return super().handle(**options)
        guard_remove(connection)
        try:
            return super().handle(**options)
        finally:
            guard_install(connection)
