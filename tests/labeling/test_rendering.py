"""What a rater sees is what is stored: every word of a response, prompt or guideline reaches the
page (labeling.rendering), formatted where markdown can show it faithfully, as typed where not.

Property tests (hypothesis) run in the normal test run, over generated mixes of prose, markdown
constructs, broken markup and random Unicode; fixed examples pin the cases found by hand.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeling.rendering import MAX_FORMATTED_CHARS, missing_words, render_markdown, visible_text
from labeling.templatetags.preflab import word_diff
from tests.labeling.test_workbench import active_content

# --------------------------------------------------------------------------- fixed examples


def _formatted(html: str) -> bool:
    return "md-plain" not in html


def test_an_image_is_shown_as_its_markdown_source_and_never_loaded():
    html = render_markdown('Look: ![a diagram of the cell](https://example.com/cell.png "Cell") here.')
    assert _formatted(html) and "<img" not in html
    assert '![a diagram of the cell](https://example.com/cell.png "Cell")' in visible_text(html)
    assert missing_words("Look: ![a diagram of the cell](https://example.com/cell.png) here.", html) == []


def test_a_malformed_image_does_not_swallow_the_text_after_it():
    source = '![img](x" onerror="alert(1)) after the image\nand the next line, and the end.'
    html = render_markdown(source)
    assert missing_words(source, html) == []
    assert "after the image" in visible_text(html) and "the end" in visible_text(html)
    assert active_content(html) == [] and "<img" not in html


def test_single_line_breaks_are_kept():
    poem = "Roses are red\nViolets are blue\nThis is a poem\nAnd so are you"
    html = render_markdown(poem)
    assert _formatted(html) and html.count("<br") == 3
    address = "221B Baker Street\nLondon NW1 6XE\nUnited Kingdom"
    assert render_markdown(address).count("<br") == 2


def test_links_show_their_address_and_entities_are_shown_as_typed():
    html = render_markdown("See [the docs](https://docs.example.com/a?b=1&c=2) &amp; &copy; AT&T")
    shown = visible_text(html)
    assert "the docs (https://docs.example.com/a?b=1&c=2)" in shown
    assert "&amp; &copy; AT&T" in shown
    assert 'href="https://docs.example.com/a?b=1&amp;c=2"' in html


def test_a_fenced_code_block_shows_its_language_and_keeps_highlighting():
    html = render_markdown("```python\nprint('hi')\n```")
    assert _formatted(html)
    assert '<div class="md-code-lang">python</div>' in html and '<span class="nb">print</span>' in html


def test_raw_html_is_shown_as_text():
    html = render_markdown("Click <a href='x' onclick='steal()'>here</a> <b>now</b>")
    assert active_content(html) == [] and "<b>" not in html
    assert "&lt;b&gt;now&lt;/b&gt;" in html


@pytest.mark.parametrize(
    "source",
    [
        "Unbalanced `backtick and [bracket ( and ![img",
        "[ref link][nowhere] and a definition below\n\n[nowhere]: https://example.com/far",
        "[orphan]: https://example.com/unused\nText after a link definition",
        "Sneaky \x02klzzwxh:0000\x03 placeholder text and more",
    ],
)
def test_what_the_renderer_would_hide_is_shown_as_typed(source):
    html = render_markdown(source)
    assert missing_words(source, html) == []


def test_a_text_too_long_to_format_is_shown_whole_as_typed():
    source = ("word " * (MAX_FORMATTED_CHARS // 5)) + "**the very end**"
    html = render_markdown(source)
    assert not _formatted(html) and "**the very end**" in html


def test_common_markdown_stays_formatted():
    source = (
        "# Title\n\nSome *emphasis*, **strong** and `code`.\n\n- one\n- two\n\n1. first\n2. second\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n> quoted\n\n---\n\n```\nplain code\n```"
    )
    html = render_markdown(source)
    assert _formatted(html)
    for tag in ("<h1>", "<em>", "<strong>", "<code>", "<ul>", "<ol>", "<table>", "<blockquote>", "<hr"):
        assert tag in html, tag


def test_visible_text_counts_ordered_list_numbers():
    assert visible_text('<ol start="3"><li>a</li><li>b</li></ol><ul><li>c</li></ul>').split() == [
        "3.",
        "a",
        "4.",
        "b",
        "c",
    ]


def test_missing_words_checks_order():
    assert missing_words("alpha beta", "<p>beta alpha</p>") == ["beta"]
    assert missing_words("alpha beta", "<p>alpha <em>beta</em></p>") == []


# ---------------------------------------------------------------------------------- properties

_WORDS = st.text(alphabet=st.characters(categories=("Lu", "Ll", "Nd", "Lo")), min_size=1, max_size=12)
_UNICODE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
_URL = st.builds(lambda a, b: f"https://{a}.example/{b}", _WORDS, _WORDS)


def _piece() -> st.SearchStrategy[str]:
    w = _WORDS
    return st.one_of(
        w,
        w.map(lambda x: f"*{x}*"),
        w.map(lambda x: f"**{x}**"),
        w.map(lambda x: f"_{x}_"),
        w.map(lambda x: f"`{x}`"),
        st.builds(lambda t, u: f"[{t}]({u})", w, _URL),
        st.builds(lambda t, u: f"![{t}]({u})", w, _URL),
        st.builds(lambda t, u: f'![{t}]({u}" onerror="x)', w, _URL),
        st.builds(lambda lang, code: f"\n```{lang}\n{code}\n```\n", st.sampled_from(["", "python", "js"]), w),
        st.builds(lambda a, b: f"\n| {a} | {b} |\n|---|---|\n| {b} | {a} |\n", w, w),
        st.builds(lambda t, x: f"<{t}>{x}</{t}>", st.sampled_from(["b", "script", "img src=x", "div"]), w),
        st.sampled_from(
            [
                "[",
                "]",
                "(",
                ")",
                "`",
                "``",
                "```",
                "![",
                "](",
                "*",
                "_",
                "#",
                ">",
                "-",
                "1.",
                "&",
                "&amp;",
                "\\",
            ]
        ),
        st.sampled_from(["\n", "\n\n", "  \n", "\t"]),
        _UNICODE,
    )


_MIXED = st.lists(_piece(), max_size=25).map(" ".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_MIXED)
def test_every_word_of_any_text_reaches_the_page_in_order(source):
    html = render_markdown(source)
    assert missing_words(source, html) == []
    assert active_content(html) == []


def _block() -> st.SearchStrategy[str]:
    """Well-formed markdown blocks of plain words: each must render formatted, not fall back."""
    w = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
    sentence = st.lists(
        st.one_of(
            w,
            w.map(lambda x: f"**{x}**"),
            w.map(lambda x: f"*{x}*"),
            w.map(lambda x: f"`{x}`"),
            st.builds(lambda t, u: f"[{t}](https://{u}.example/{t})", w, w),
            st.builds(lambda t, u: f"![{t}](https://{u}.example/{t}.png)", w, w),
        ),
        min_size=1,
        max_size=8,
    ).map(" ".join)
    return st.one_of(
        sentence,
        st.lists(sentence, min_size=2, max_size=4).map("\n".join),  # lines of one paragraph
        sentence.map(lambda s: f"## {s}"),
        st.lists(sentence, min_size=1, max_size=4).map(lambda xs: "\n".join(f"- {x}" for x in xs)),
        st.lists(sentence, min_size=1, max_size=4).map(
            lambda xs: "\n".join(f"{i}. {x}" for i, x in enumerate(xs, 1))
        ),
        st.builds(lambda lang, code: f"```{lang}\n{code}\n```", st.sampled_from(["", "python", "text"]), w),
        st.builds(lambda a, b: f"| {a} | {b} |\n|---|---|\n| {b} | {a} |", w, w),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(_block(), min_size=1, max_size=6).map("\n\n".join))
def test_well_formed_markdown_is_formatted_not_given_up_on(source):
    html = render_markdown(source)
    assert _formatted(html), html
    assert missing_words(source, html) == []


@settings(max_examples=200, deadline=None)
@given(_MIXED, _MIXED)
def test_the_differences_view_keeps_every_word(text, other):
    html = word_diff(text, other)
    assert missing_words(text, f"<pre>{html}</pre>") == []
    assert re.sub(r"</?mark[^>]*>", "", str(html)) == str(word_diff(text, text))
