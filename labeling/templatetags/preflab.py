"""Template filters for untrusted text: markdown that hides nothing (``labeling.rendering``), the
text exactly as typed, and word diffs. Only their escaped or sanitized output is marked safe.
"""

from __future__ import annotations

import difflib
import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from labeling.rendering import render_markdown, render_plain

register = template.Library()

#: Longer texts are not diffed (the comparison grows with the square of the length).
_MAX_CHARS = 200_000


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    return render_markdown(text)


@register.filter(name="as_typed")
def as_typed_filter(text: str | None) -> SafeString:
    return render_plain(text)


_TOKEN = re.compile(r"\s+|[^\s]+")


def word_diff(text: str, other: str) -> SafeString:
    """``text`` escaped, with the words ``other`` lacks wrapped in ``<mark>`` (a word-level diff).
    Every character of ``text`` is kept; texts too long to compare quickly are shown unmarked."""
    if len(text or "") > _MAX_CHARS or len(other or "") > _MAX_CHARS:
        return escape(text or "")
    a = _TOKEN.findall(text or "")
    b = _TOKEN.findall(other or "")
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, _j1, _j2 in matcher.get_opcodes():
        chunk = escape("".join(a[i1:i2]))
        if op == "equal" or not chunk.strip():
            out.append(chunk)
        else:
            out.append(f'<mark class="diff">{chunk}</mark>')
    return mark_safe("".join(out))  # noqa: S308 - every piece went through escape()
