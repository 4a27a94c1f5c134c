"""The end-of-test check the concurrency and crash tests share: ``manage.py check_integrity``
must find every counter and invariant intact."""

from __future__ import annotations

from io import StringIO

from django.core.management import CommandError, call_command


def assert_no_drift() -> None:
    out = StringIO()
    try:
        call_command("check_integrity", stdout=out)
    except CommandError as exc:  # pragma: no cover - only on a failure
        raise AssertionError(f"check_integrity found drift:\n{out.getvalue()}") from exc
