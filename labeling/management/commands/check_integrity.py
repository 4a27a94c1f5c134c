"""``manage.py check_integrity``: recompute every counter and invariant from the rows; report drift.

Exits 0 when everything holds and 1 when anything drifted, printing one line per problem (or a
JSON report with ``--json``). ``--fix`` recounts the drifted queue item counters from their rows
(each item locked while it is recounted), then checks again; every other kind of drift is only
reported, since which row is wrong needs a person to decide.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.selectors.integrity import CHECKS, integrity_drift
from labeling.services import queue_items_recount

_COUNTERS = {"item_claimed", "item_judged"}


class Command(BaseCommand):
    help = "Recompute every counter and invariant from the rows and report drift (exit 1 on any)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", type=int, help="Check only this queue's items and assignments.")
        parser.add_argument("--json", action="store_true", help="Print a JSON report.")
        parser.add_argument("--fix", action="store_true", help="Recount drifted queue item counters.")

    def handle(self, *args: Any, **opts: Any) -> None:
        drift = list(integrity_drift(queue_id=opts["queue"]))
        fixed = 0
        if opts["fix"]:
            fixed = queue_items_recount(item_ids=sorted({d.pk for d in drift if d.check in _COUNTERS}))
            drift = list(integrity_drift(queue_id=opts["queue"]))
        counts = Counter(d.check for d in drift)
        if opts["json"]:
            report = {
                "ok": not drift,
                "checks": {name: {"rule": rule, "drift": counts[name]} for name, rule in CHECKS.items()},
                "drift": [d.__dict__ for d in drift],
                "fixed": fixed,
            }
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            for name, rule in CHECKS.items():
                mark = "ok" if not counts[name] else f"{counts[name]} DRIFT"
                self.stdout.write(f"{mark:>10}  {name}: {rule}")
            for d in drift:
                self.stdout.write(str(d))
            if fixed:
                self.stdout.write(f"recounted {fixed} queue item(s)")
        if drift:
            raise CommandError(f"{len(drift)} problem(s) found", returncode=1)
