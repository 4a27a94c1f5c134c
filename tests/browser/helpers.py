"""Shared steps of the browser tests."""

from __future__ import annotations

from typing import Any

from tests.factories import PASSWORD

WIDE = {"width": 1400, "height": 1000}


def login(
    browser: Any, base: str, username: str, path: str, viewport: dict[str, int] = WIDE
) -> tuple[Any, Any]:
    """A fresh browser context logged in as ``username`` (password: the factories'), on ``path``."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20000)
    page.goto(f"{base}/accounts/login/?next={path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.press("#id_password", "Enter")
    page.wait_for_url(f"**{path}")
    return context, page
