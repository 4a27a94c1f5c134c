"""Template filters for untrusted text: markdown through a sanitizer, and word diffs.

Model output and imported text are untrusted (DESIGN.md, invariant 5). ``markdown`` renders them
with raw HTML switched off (a ``<script>`` in the text is shown as text), highlights fenced code
with Pygments, then passes the result through nh3 (ammonia) with a short allow-list: no scripts,
no event-handler or style attributes, no images or iframes, links only to http(s)/mailto.
Only this sanitized output is marked safe.
"""

from __future__ import annotations

import difflib
import re

import markdown as markdown_lib
import nh3
from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub",
    "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "code": {"class"},
    "div": {"class"},
    "span": {"class"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}
# Pygments token classes ("k", "s2", "nf", ...), the code block wrapper and fenced-code languages.
_CLASS_OK = re.compile(r"^(hl|[a-z]{1,3}[0-9]?|language-[a-z0-9+#-]{1,30})$")
_MAX_CHARS = 200_000


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "class":
        kept = [c for c in value.split() if _CLASS_OK.match(c)]
        return " ".join(kept) or None
    return value


def render_markdown(text: str | None) -> SafeString:
    """Untrusted markdown as safe HTML: raw HTML escaped, code highlighted, then sanitized."""
    md = markdown_lib.Markdown(
        extensions=["fenced_code", "tables", "sane_lists", "codehilite"],
        extension_configs={
            "codehilite": {"css_class": "hl", "guess_lang": False},
            "tables": {"use_align_attribute": True},
        },
        output_format="html",
    )
    # Raw HTML in the text is shown as text, never passed through as markup.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    html = md.convert((text or "")[:_MAX_CHARS])
    clean = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    return mark_safe(clean)  # noqa: S308 - nh3 output, see the module docstring


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    return render_markdown(text)


_TOKEN = re.compile(r"\s+|[^\s]+")


def word_diff(text: str, other: str) -> SafeString:
    """``text`` escaped, with the words ``other`` lacks wrapped in ``<mark>`` (a word-level diff)."""
    a = _TOKEN.findall((text or "")[:_MAX_CHARS])
    b = _TOKEN.findall((other or "")[:_MAX_CHARS])
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, _j1, _j2 in matcher.get_opcodes():
        chunk = escape("".join(a[i1:i2]))
        if op == "equal" or not chunk.strip():
            out.append(chunk)
        else:
            out.append(f'<mark class="diff">{chunk}</mark>')
    return mark_safe("".join(out))  # noqa: S308 - every piece went through escape()
