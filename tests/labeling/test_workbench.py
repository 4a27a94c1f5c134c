"""The rater workbench over HTTP (Django test client, htmx requests) and its services."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone

from comparisons.models import Candidate
from labeling.errors import Conflict
from labeling.models import Assignment, Criterion, Judgment, Queue, QueueItem
from labeling.selectors import content_warnings_for_assignment
from labeling.services import assignment_reopen_last
from labeling.templatetags.preflab import render_markdown, word_diff
from labeling.views.judging_form import flag_hotkeys, parse_ranking_text
from model_runner.models import Generator
from tests.factories import (
    CandidateFactory,
    CriterionFactory,
    JudgmentFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    make_comparison,
    make_pair,
)

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}

XSS = (
    "Sure! <script>window.__xss=1;alert(1)</script>\n"
    '<img src=x onerror="alert(2)"> [click me](javascript:alert(3)) '
    '<a href="javascript:alert(4)">x</a>\n\n'
    "<style>body{display:none}</style>\n"
    '<div style="position:fixed;inset:0" onclick="alert(5)">cover</div>\n\n'
    '<iframe src="https://evil.example"></iframe>\n\n'
    "```python\nprint('<b>hi</b>')\n```\n"
)


class _ActiveContent(HTMLParser):
    """Collects every element or attribute in a page that could run code or restyle it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in {"img", "iframe", "style", "object", "embed"}:
            self.found.append(tag)
        if tag == "script" and not dict(attrs).get("src", "").startswith("/static/"):
            self.found.append("inline script")
        for name, value in attrs:
            if (
                name.startswith("on")
                or name == "style"
                or (value or "").strip().lower().startswith("javascript:")
            ):
                self.found.append(f"{tag} {name}={value}")


def active_content(html: str) -> list[str]:
    parser = _ActiveContent()
    parser.feed(html)
    return parser.found


def test_markdown_renders_formatting_and_code_but_no_active_content():
    html = render_markdown(XSS + "\n**bold** and [a link](https://example.com)\n")
    assert active_content(html) == []
    assert "&lt;script&gt;" in html  # shown as text, not dropped: the rater sees what the model wrote
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert '<div class="hl"><pre>' in html and '<span class="nb">print</span>' in html


def test_word_diff_marks_changed_words_and_escapes():
    out = word_diff("The <cat> sat.", "The dog sat.")
    assert out == 'The <mark class="diff">&lt;cat&gt;</mark> sat.'


def test_parse_ranking_text():
    labels = ["A", "B", "C", "D"]
    assert parse_ranking_text("a > c = b > d", labels) == [["A"], ["B", "C"], ["D"]]
    assert parse_ranking_text("  ", labels) is None
    with pytest.raises(Exception, match="E is not a response"):
        parse_ranking_text("A > E", labels)


def test_flag_hotkeys_are_unique_and_avoid_page_keys():
    rubric = QueueFactory().rubric
    for key in ("harmful", "hallucination", "refusal", "pii", "sexual"):
        CriterionFactory(rubric=rubric, key=key, kind=Criterion.Kind.FLAG, question=key)
    keys = flag_hotkeys(list(rubric.criteria.all()))
    assert keys == {"harmful": "H", "hallucination": "A", "refusal": "E", "pii": "I", "sexual": "X"}


@pytest.fixture
def pair_queue(rater):
    queue = QueueFactory(members=[rater], guidelines="# Rules\n\nBe **fair**. <script>x()</script>")
    CriterionFactory(rubric=queue.rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful?")
    CriterionFactory(rubric=queue.rubric, key="quality", kind=Criterion.Kind.LIKERT, question="Quality")
    QueueItemFactory(queue=queue, comparison=make_pair(texts=(XSS, "Plain *answer*.")))
    QueueItemFactory(queue=queue, comparison=make_pair(texts=("Second A.", "Second B.")))
    QueueItemFactory(queue=queue, comparison=make_pair(texts=("Third A.", "Third B.")))
    return queue


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _open(client: Client, queue: Queue, rater) -> Assignment:
    response = client.get(f"/rate/{queue.pk}/")
    assert response.status_code == 302
    return Assignment.objects.get(rater=rater, status=Assignment.Status.LEASED)


def test_page_renders_markdown_safely_with_keys_and_progress(rater, pair_queue):
    client = _client(rater)
    assignment = _open(client, pair_queue, rater)
    body = client.get(f"/rate/assignment/{assignment.pk}/").content.decode()
    assert active_content(body) == []
    assert "<h1>Rules</h1>" in body  # guidelines are markdown too
    assert 'data-hotkey="H"' in body and "<kbd>?</kbd>" in body and 'value="bad"' in body
    assert "Done today <strong" in body and 'data-testid="left">3<' in body
    assert "htmx.min.js" in body and "workbench.js" in body
    assert "model-" not in body  # blind: no generator names


def test_htmx_submit_swaps_in_next_item_and_stores_both_bad(rater, pair_queue):
    client = _client(rater)
    first = _open(client, pair_queue, rater)
    response = client.post(
        f"/rate/assignment/{first.pk}/",
        {"preference": "bad", "criterion-harmful": "on", "criterion-quality-A": "2", "active_seconds": "7.5"},
        **HX,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.startswith('<div id="workbench"') and "<html" not in body
    second = Assignment.objects.get(rater=rater, status=Assignment.Status.LEASED)
    assert response["HX-Push-Url"] == f"/rate/assignment/{second.pk}/"
    assert "Saved." in body and "Undo last" in body
    judgment = Judgment.objects.get(assignment=first)
    assert (judgment.preference, judgment.flags) == (0, ["both_bad"])
    assert judgment.criteria == {"harmful": True, "quality": {"A": 2}}
    assert judgment.active_seconds == 7.5


def test_htmx_error_keeps_answers_and_writes_nothing(rater, pair_queue):
    client = _client(rater)
    first = _open(client, pair_queue, rater)
    response = client.post(f"/rate/assignment/{first.pk}/", {"rationale": "kept"}, **HX)
    assert response.status_code == 400
    assert b"preference: required" in response.content and b">kept</textarea>" in response.content
    assert Judgment.objects.count() == 0


def test_htmx_skip_needs_nothing_else_and_moves_on(rater, pair_queue):
    client = _client(rater)
    first = _open(client, pair_queue, rater)
    response = client.post(
        f"/rate/assignment/{first.pk}/", {"action": "skip", "skip_reason": "Prompt is unclear"}, **HX
    )
    assert b"Skipped." in response.content
    first.refresh_from_db()
    assert (first.status, first.skip_reason) == ("skipped", "Prompt is unclear")


def test_ranking_item_from_text_and_error_names_field(rater):
    queue = QueueFactory(members=[rater], kind=Queue.Kind.RANKING)
    prompt = PromptFactory()
    cands = [CandidateFactory(prompt=prompt, text=f"Answer {i}") for i in range(4)]
    QueueItemFactory(queue=queue, comparison=make_comparison(prompt, cands))
    client = _client(rater)
    assignment = _open(client, queue, rater)
    page = client.get(f"/rate/assignment/{assignment.pk}/").content.decode()
    assert 'id="rank-board"' in page and page.count('class="chip"') == 4
    bad = client.post(f"/rate/assignment/{assignment.pk}/", {"ranking_text": "A > B"}, **HX)
    assert bad.status_code == 400 and b"ranking: must place each of A, B, C, D" in bad.content
    ok = client.post(f"/rate/assignment/{assignment.pk}/", {"ranking_text": "D > b=C > A"}, **HX)
    assert ok.status_code == 200
    assert Judgment.objects.get().ranking == [["D"], ["B", "C"], ["A"]]


def test_rewrite_is_a_human_candidate_hidden_from_the_blind_view_and_undo_removes_it(rater, pair_queue):
    client = _client(rater)
    first = _open(client, pair_queue, rater)
    client.post(
        f"/rate/assignment/{first.pk}/", {"preference": "-2", "rewrite": "A much better answer."}, **HX
    )
    judgment = Judgment.objects.get(assignment=first)
    human = Candidate.objects.get(generator__backend=Generator.Backend.HUMAN)
    assert (human.text, human.author, human.finish_reason) == ("A much better answer.", rater, "human")
    assert human.prompt_id == first.item.comparison.prompt_id and human.sample_index == judgment.pk
    assert not human.comparisons.exists()
    second = Assignment.objects.get(rater=rater, status=Assignment.Status.LEASED)
    assert "A much better answer." not in client.get(f"/rate/assignment/{second.pk}/").content.decode()
    # Undo: the judgment and its rewrite go; the form comes back filled in.
    response = client.post(f"/rate/{pair_queue.pk}/undo/", **HX)
    assert response["HX-Push-Url"] == f"/rate/assignment/{first.pk}/"
    body = response.content.decode()
    assert 'value="-2" data-key="2" required checked' in body and "A much better answer.</textarea>" in body
    assert not Candidate.objects.filter(generator__backend=Generator.Backend.HUMAN).exists()
    assert not Judgment.objects.exists()


def test_undo_reopens_last_judgment_keeping_the_slot(rater, pair_queue):
    client = _client(rater)
    first = _open(client, pair_queue, rater)
    client.post(f"/rate/assignment/{first.pk}/", {"preference": "3"})
    item = QueueItem.objects.get(pk=first.item_id)
    assert (item.claimed, item.judged) == (1, 1)
    response = client.post(f"/rate/{pair_queue.pk}/undo/")
    assert response["Location"] == f"/rate/assignment/{first.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "Reopened your last judgment" in page and 'value="3" data-key="7" required checked' in page
    first.refresh_from_db()
    item.refresh_from_db()
    assert first.status == "leased" and (item.claimed, item.judged) == (1, 0)
    client.post(f"/rate/assignment/{first.pk}/", {"preference": "-1"})
    assert Judgment.objects.get(assignment=first).preference == -1
    # The next item, leased before the undo, is handed back next.
    nxt = client.get(f"/rate/{pair_queue.pk}/")
    held = Assignment.objects.get(rater=rater, status="leased")
    assert nxt["Location"] == f"/rate/assignment/{held.pk}/"


def test_undo_refused_after_the_lease_would_have_expired_or_when_nothing(rater, rater2, pair_queue):
    with pytest.raises(Conflict, match="no judgment"):
        assignment_reopen_last(rater=rater, queue=pair_queue)
    judgment = JudgmentFactory(
        assignment__item=pair_queue.items.first(),
        assignment__rater=rater,
        assignment__expires_at=timezone.now() - timedelta(seconds=1),
    )
    with pytest.raises(Conflict, match="Too late"):
        assignment_reopen_last(rater=rater, queue=pair_queue)
    assert Judgment.objects.filter(pk=judgment.pk).exists()
    # Another rater cannot undo it (only their own work) and the page says why.
    pair_queue.members.add(rater2)
    response = _client(rater2).post(f"/rate/{pair_queue.pk}/undo/", follow=True)
    assert b"no judgment of yours" in response.content


def test_content_warnings_from_queue_admin_tag_and_earlier_rater(rater, rater2):
    queue = QueueFactory(members=[rater, rater2], overlap=2)
    CriterionFactory(rubric=queue.rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful?")
    tagged = PromptFactory(tags=["cw:violence", "math"])
    QueueItemFactory(queue=queue, comparison=make_pair(prompt=tagged))
    plain = QueueItemFactory(queue=queue, comparison=make_pair())
    client = _client(rater)
    first = _open(client, queue, rater)
    assert [w["category"] for w in content_warnings_for_assignment(assignment=first)] == ["violence"]
    page = client.get(f"/rate/assignment/{first.pk}/").content.decode()
    assert 'class="cw-blur" inert aria-hidden="true"' in page and "violence or gore" in page
    client.post(f"/rate/assignment/{first.pk}/", {"preference": "0"}, **HX)
    second = Assignment.objects.get(rater=rater, status="leased")
    assert second.item_id == plain.pk and content_warnings_for_assignment(assignment=second) == []
    client.post(
        f"/rate/assignment/{second.pk}/",
        {"preference": "1", "criterion-harmful": "on", "warn_category": "self_harm"},
    )
    # rater2 sees the earlier rater's flags as warnings (never the answers themselves).
    other = _client(rater2)
    other.get(f"/rate/{queue.pk}/")
    a2 = Assignment.objects.get(rater=rater2, status="leased")
    assert a2.item.comparison.prompt_id == tagged.pk
    later = Assignment.objects.create(
        item=plain, rater=rater2, shown_order=second.shown_order, expires_at=a2.expires_at
    )
    warned = content_warnings_for_assignment(assignment=later)
    assert [(w["category"], w["sources"]) for w in warned] == [("self_harm", ["rater"]), ("other", ["rater"])]
    queue.content_warning_category = "sexual"
    queue.save()
    assert [w["category"] for w in content_warnings_for_assignment(assignment=a2)] == ["violence", "sexual"]


def test_opt_outs_pass_items_on_and_close_warned_queues(rater):
    queue = QueueFactory(members=[rater], skip_policy=Queue.SkipPolicy.RETIRE)
    warned = QueueItemFactory(queue=queue, comparison=make_pair(prompt=PromptFactory(tags=["cw:hate"])))
    QueueItemFactory(queue=queue, comparison=make_pair())
    client = _client(rater)
    page = client.post("/rate/profile/", {"opt_out": ["hate", "sexual"]}, follow=True)
    assert b"saved" in page.content
    rater.refresh_from_db()
    assert rater.content_opt_outs == ["sexual", "hate"]
    assignment = _open(client, queue, rater)
    assert assignment.item_id != warned.pk
    passed = Assignment.objects.get(item=warned, rater=rater)
    warned.refresh_from_db()
    assert passed.status == "skipped" and passed.skip_reason == "content opt-out: hate"
    assert (warned.claimed, warned.retired) == (0, False)  # the item stays open for others
    bad = client.post("/rate/profile/", {"opt_out": ["spiders"]})
    assert b"unknown category" in bad.content
    queue.content_warning_category = "sexual"
    queue.save()
    home = client.get(f"/rate/{queue.pk}/", follow=True)
    assert b"opted out" in home.content
