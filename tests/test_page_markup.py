"""Every admin and researcher page, empty and after a server-side error: each id an
``aria-describedby``, ``aria-labelledby`` or ``<label for>`` names exists, no id is used twice,
and each field with an error is marked ``aria-invalid`` and described by its error.

axe-core (tests/browser/test_axe.py) does not fail a page for a description pointing nowhere, so
these checks read the HTML itself.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.factories import PromptFactory, QueueFactory, QueueItemFactory, RubricFactory

pytestmark = pytest.mark.django_db


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.references: list[tuple[str, str, str]] = []  # (tag, attribute, id)
        self.invalid: list[dict[str, str | None]] = []
        self.group_descriptions: set[str] = set()  # what fieldsets (groups of inputs) are described by

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.append(values["id"] or "")
        for attribute in ("aria-describedby", "aria-labelledby"):
            for ref in (values.get(attribute) or "").split():
                self.references.append((tag, attribute, ref))
        if tag == "fieldset":
            self.group_descriptions |= set((values.get("aria-describedby") or "").split())
        if tag == "label" and values.get("for"):
            self.references.append((tag, "for", values["for"] or ""))
        if values.get("aria-invalid") == "true":
            self.invalid.append(values)


def _check(html: str, *, errors: bool) -> _Markup:
    markup = _Markup()
    markup.feed(html)
    ids = set(markup.ids)
    dangling = [ref for ref in markup.references if ref[2] not in ids]
    assert dangling == [], f"references to ids that do not exist: {dangling}"
    twice = [i for i, n in Counter(markup.ids).items() if n > 1]
    assert twice == [], f"ids used twice: {twice}"
    if errors:
        assert markup.invalid, "a page with errors marks its fields aria-invalid"
        for field in markup.invalid:
            # A field is described by its error; a radio button or checkbox of a group (id_x_0)
            # through its fieldset, described by the group's error.
            own = f"{field['id']}_error" in (field.get("aria-describedby") or "").split()
            group = re.sub(r"_\d+$", "", field["id"] or "") + "_error"
            assert own or group in markup.group_descriptions, field
        assert 'class="error-summary"' in html and "data-focus-on-load" in html
    return markup


def _upload(name: str, body: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, body.encode(), content_type="application/jsonl")


@pytest.fixture
def admin_client(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_every_form_page_empty(admin_client):
    queue = QueueFactory()
    QueueItemFactory(queue=queue)
    PromptFactory(collection="evals")
    for url in (
        "/manage/",
        "/manage/queues/",
        f"/manage/queues/{queue.pk}/",
        "/manage/queues/new/",
        "/manage/generation/",
        "/manage/import/",
        "/export/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        markup = _check(response.content.decode(), errors=False)
        assert markup.invalid == [], url


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/manage/queues/new/", {"name": "", "overlap": "0", "prompts_by": "tags", "gold_rate": "2"}),
        ("/manage/generation/", {"prompts_by": "ids", "ids": "", "samples_per_prompt": "99"}),
        ("/export/", {"name": "", "format": "trl", "min_agreement": "7", "file_kinds": []}),
    ],
)
def test_every_form_page_after_an_error(admin_client, url, data):
    RubricFactory()
    response = admin_client.post(url, data)
    assert response.status_code == 400
    _check(response.content.decode(), errors=True)


def test_queue_dashboard_after_an_error(admin_client):
    queue = QueueFactory()
    response = admin_client.post(f"/manage/queues/{queue.pk}/settings/", {"settings-overlap": "0"})
    assert response.status_code == 400
    _check(response.content.decode(), errors=True)
    response = admin_client.post(f"/manage/queues/{queue.pk}/members/", {"members-usernames": "ghost"})
    assert response.status_code == 400
    _check(response.content.decode(), errors=True)


def test_import_page_after_a_missing_file_and_after_a_refused_file(admin_client):
    response = admin_client.post("/manage/import/", {"kind": "prompts", "prompts-source": "import"})
    assert response.status_code == 400
    _check(response.content.decode(), errors=True)
    refused = admin_client.post(
        "/manage/import/",
        {"kind": "prompts", "prompts-source": "import", "prompts-file": _upload("bad.jsonl", "{nope\n")},
    )
    assert refused.status_code == 400
    html = refused.content.decode()
    _check(html, errors=False)
    assert 'id="import-failed-card"' in html and "data-focus-on-load" in html
