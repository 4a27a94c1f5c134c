"""Untrusted text (model output, imported prompts, guidelines) as HTML that hides none of it.

Two guarantees, whatever the text:

- **Safe.** Raw HTML in the text is shown as text, never passed through as markup; the rendered
  markdown then goes through nh3 (ammonia) with a short allow-list: no scripts, no event-handler
  or style attributes, no images or iframes, links only to http(s)/mailto. Only that output is
  marked safe.
- **Faithful.** Every word of the source reaches the reader, in order: images are shown as their
  markdown source (never fetched), a link shows its address beside its text, a fenced code
  block shows its language, entities are shown as typed (``&amp;`` stays ``&amp;``), single line
  breaks are kept. Then the rendered text is checked against the source: if any word went
  missing (markdown the renderer could not parse the way a reader would, a link definition, a
  text too long to format), the whole text is shown as typed instead, with its line breaks.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from xml.etree import ElementTree as etree

import markdown as markdown_lib
import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown.extensions.fenced_code import FencedBlockPreprocessor
from markdown.inlinepatterns import (
    ImageInlineProcessor,
    ImageReferenceInlineProcessor,
    LinkInlineProcessor,
    ReferenceInlineProcessor,
    ShortImageReferenceInlineProcessor,
    ShortReferenceInlineProcessor,
)
from markdown.preprocessors import Preprocessor
from markdown.util import AtomicString

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub",
    "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "code": {"class"},
    "div": {"class", "title"},
    "span": {"class", "title"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}
# Pygments token classes ("k", "s2", "nf", ...), the code block wrapper, fenced-code languages,
# and this module's own classes (md-*).
_CLASS_OK = re.compile(r"^(hl|[a-z]{1,3}[0-9]?|language-[a-z0-9+#-]{1,30}|md-[a-z-]{1,20})$")
#: Longer texts are shown as typed, unformatted (formatting them would take too long).
MAX_FORMATTED_CHARS = 200_000
#: A word: a run of letters and digits (markup characters such as * _ ` # are not part of words).
_WORD = re.compile(r"[^\W_]+")


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "class":
        kept = [c for c in value.split() if _CLASS_OK.match(c)]
        return " ".join(kept) or None
    return value


# ---------------------------------------------------------------------- markdown, made faithful


def _image_as_text(base: type) -> type:
    """An image pattern that shows the image's markdown source as text instead of an image."""

    class ImageAsText(base):
        def handleMatch(self, m: re.Match[str], data: str) -> tuple[Any, Any, Any]:  # noqa: N802
            el, start, end = super().handleMatch(m, data)
            if el is None:
                return el, start, end
            shown = etree.Element(
                "span", {"class": "md-image", "title": "An image, shown as text (not loaded)"}
            )
            shown.text = AtomicString(data[start:end])
            return shown, start, end

    return ImageAsText


def _link_with_address(base: type) -> type:
    """A link pattern whose link is followed by its address, so the reader sees where it points."""

    class LinkWithAddress(base):
        def handleMatch(self, m: re.Match[str], data: str) -> tuple[Any, Any, Any]:  # noqa: N802
            el, start, end = super().handleMatch(m, data)
            if el is None:
                return el, start, end
            href = el.get("href", "")
            text = "".join(el.itertext())
            if not href or href == text:
                return el, start, end
            wrapper = etree.Element("span", {"class": "md-link"})
            wrapper.append(el)
            address = etree.SubElement(wrapper, "span", {"class": "md-url"})
            address.text = AtomicString(f" ({href})")
            return wrapper, start, end

    return LinkWithAddress


class _FenceLanguage(Preprocessor):
    """Show a fenced code block's info string (``python``) above it: it is text the writer typed."""

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)

        def label(m: re.Match[str]) -> str:
            info = (m.group("lang") or m.group("attrs") or m.group("hl_lines") or "").strip()
            if not info:
                return m.group(0)
            placeholder = self.md.htmlStash.store(f'<div class="md-code-lang">{escape(info)}</div>')
            return f"{placeholder}\n\n{m.group(0)}"

        return FencedBlockPreprocessor.FENCED_BLOCK_RE.sub(label, text).split("\n")


def _priority(registry: Any, name: str) -> float:
    return next(item.priority for item in registry._priority if item.name == name)


def _markdown() -> markdown_lib.Markdown:
    md = markdown_lib.Markdown(
        extensions=["fenced_code", "tables", "sane_lists", "codehilite", "nl2br"],
        extension_configs={
            "codehilite": {"css_class": "hl", "guess_lang": False},
            "tables": {"use_align_attribute": True},
        },
        output_format="html",
    )
    # Raw HTML and entities in the text are shown as typed, never passed through as markup.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    md.preprocessors.register(
        _FenceLanguage(md), "fence_language", _priority(md.preprocessors, "fenced_code_block") + 1
    )
    patterns = md.inlinePatterns
    for name, kind, wrap in (
        ("image_link", ImageInlineProcessor, _image_as_text),
        ("image_reference", ImageReferenceInlineProcessor, _image_as_text),
        ("short_image_ref", ShortImageReferenceInlineProcessor, _image_as_text),
        ("link", LinkInlineProcessor, _link_with_address),
        ("reference", ReferenceInlineProcessor, _link_with_address),
        ("short_reference", ShortReferenceInlineProcessor, _link_with_address),
    ):
        current = patterns[name]
        patterns.register(wrap(kind)(current.pattern, md), name, _priority(patterns, name))
    return md


def _sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


# ------------------------------------------------------------------------- what a reader sees


class _VisibleText(HTMLParser):
    """The text a browser shows for an HTML fragment, list numbers included."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._lists: list[list[int] | None] = []  # per open list: [next number] for <ol>, None for <ul>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "ol":
            start = dict(attrs).get("start") or "1"
            self._lists.append([int(start) if start.lstrip("-").isdigit() else 1])
        elif tag == "ul":
            self._lists.append(None)
        elif tag == "li" and self._lists and self._lists[-1] is not None:
            counter = self._lists[-1]
            self.parts.append(f"\n{counter[0]}. ")
            counter[0] += 1
        elif tag in {"br", "p", "div", "li", "tr", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}:
            self.parts.append("\n")
        elif tag in {"td", "th"}:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"ol", "ul"} and self._lists:
            self._lists.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(html: str) -> str:
    """What a reader sees of an HTML fragment, as plain text."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


#: An ordered-list marker at the start of a line: markup, numbered by the list itself (markdown and
#: browsers number items from the first one's number, whatever the others say).
_LIST_MARKER = re.compile(r"(?m)^[ \t>]*\d{1,9}\.(?=[ \t])")


def missing_words(source: str, html: str) -> list[str]:
    """The words of ``source`` (runs of letters and digits) that ``html`` does not show, in order:
    each word must appear after the one before it. Empty when every word is shown. Ordered-list
    markers are not words: the page numbers list items itself."""
    shown = visible_text(html)
    at, missing = 0, []
    for match in _WORD.finditer(_LIST_MARKER.sub("", source)):
        found = shown.find(match.group(0), at)
        if found < 0:
            missing.append(match.group(0))
        else:
            at = found + len(match.group(0))
    return missing


# ------------------------------------------------------------------------------------ renderers


def render_plain(text: str | None) -> SafeString:
    """The text exactly as typed, escaped, line breaks and spaces kept."""
    return mark_safe(f'<div class="md-plain">{escape(text or "")}</div>')  # noqa: S308 - escaped


def _convert(source: str) -> str:
    """Markdown to HTML with every ``&`` shown as typed: markdown would pass ``&amp;`` or
    ``&copy;`` through as entities (shown as ``&`` and ``©``), so each ``&`` travels through the
    conversion as a character the text does not contain and comes back as ``&amp;``."""
    stand_in = next(chr(c) for c in range(0xE000, 0xF900) if chr(c) not in source)
    html = _markdown().convert(source.replace("&", stand_in))
    return html.replace(stand_in, "&amp;")


def render_markdown(text: str | None) -> SafeString:
    """Untrusted markdown as safe HTML that shows every word of it (see the module docstring)."""
    source = text or ""
    if len(source) <= MAX_FORMATTED_CHARS:
        html = _sanitize(_convert(source))
        if not missing_words(source, html):
            return mark_safe(html)  # noqa: S308 - nh3 output, see the module docstring
    note = '<p class="md-note">Shown as typed: formatting it would have hidden part of the text.</p>'
    return mark_safe(note + render_plain(source))  # noqa: S308 - a constant and escaped text
