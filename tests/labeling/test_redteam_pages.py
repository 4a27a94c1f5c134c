"""The red-team pages (/redteam/) through the Django test client: the list with its target and
category pickers, the opt-in note, starting, a model turn's label form (and a refused label shown
next to it with what was typed), a reply that is HTML shown escaped, and the verdict. The fake
backend stands in for the model; tasks run eagerly on commit."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from labeling.models import Attack, Session, SessionTemplate, TurnLabel
from labeling.services import sessions as session_services
from labeling.services.session_templates import session_template_create
from tests.factories import RaterFactory, RubricFactory, harm_categories_seed
from tests.test_page_markup import _check as check_markup

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(fake_backend):
    from model_runner.services import generator_get_bundled

    harm_categories_seed()
    rita = RaterFactory(username="rita", disturbing_opt_in=True)
    queue = session_template_create(
        name="attack the model",
        rubric=RubricFactory(),
        generators=[generator_get_bundled()],
        mode=SessionTemplate.Mode.REDTEAM,
        members=[rita],
    )
    client = Client()
    client.force_login(rita)
    return {"rita": rita, "queue": queue, "client": client, "target": generator_get_bundled()}


def _page(client: Client, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status
    html = response.content.decode()
    check_markup(html, errors=False)
    return html


def test_start_label_and_finish_on_the_pages(world):
    client, queue = world["client"], world["queue"]
    home = _page(client, "/redteam/")
    assert 'href="/redteam/"' in home  # the nav link, for a red-teamer who opted in
    assert f'id="target-{queue.pk}"' in home and ">Illegal activity or malware</option>" in home
    # a category is needed: the refusal is shown at the template's row, with what was chosen
    refused = client.post(
        "/redteam/start/", {"queue": queue.pk, "target": world["target"].pk, "category": ""}
    )
    assert refused.status_code == 400 and "category: must be one of" in refused.content.decode()
    started = client.post(
        "/redteam/start/", {"queue": queue.pk, "target": world["target"].pk, "category": "privacy"}
    )
    session = Session.objects.get()
    assert started.status_code == 302 and started.url == f"/redteam/{session.pk}/"
    assert (session.target, session.category) == (world["target"], "privacy")

    # the model's reply is HTML: shown escaped
    turn = session_services.session_say(session=session, text="Hi")
    turn.refresh_from_db()
    turn.chosen.text = '<script>alert("x")</script><b>bold</b>'
    turn.chosen.save()
    type(turn).objects.filter(pk=turn.pk).update(text=turn.chosen.text)
    html = _page(client, f"/redteam/{session.pk}/")
    assert "<script>alert" not in html and "&lt;script&gt;" in html and "<b>bold</b>" not in html
    assert 'id="label-form"' in html and f'action="/redteam/{session.pk}/turns/{turn.pk}/label/"' in html
    assert re.search(r'<option value="privacy" selected>', html)  # the session's category first

    # a bad severity: 400 next to the form, what was typed kept, nothing written
    path = f"/redteam/{session.pk}/turns/{turn.pk}/label/"
    bad = client.post(path, {"outcome": "partial", "category": "privacy", "tactic": "other", "severity": "9"})
    assert bad.status_code == 400
    html = bad.content.decode()
    assert (
        "severity: must be an integer from 1" in html
        and 'value="partial" data-key="2" required checked' in html
    )
    assert not TurnLabel.objects.exists()
    good = client.post(
        path, {"outcome": "complied", "category": "privacy", "tactic": "other", "severity": "4"}
    )
    assert good.status_code == 302 and good.url == f"/redteam/{session.pk}/"
    label = TurnLabel.objects.get()
    assert (label.outcome, label.severity, label.candidate) == ("complied", 4, turn.chosen)
    assert "severity 4" in _page(client, f"/redteam/{session.pk}/")

    # the verdict: a success without a description is refused next to the finish form
    finish = f"/redteam/{session.pk}/finish/"
    refused = client.post(finish, {"verdict": "success", "description": ""})
    assert refused.status_code == 400 and "description: say in a few words" in refused.content.decode()
    assert client.post(finish, {"verdict": "success", "description": "Asked nicely."}).status_code == 302
    attack = Attack.objects.get()
    assert attack.family == f"session:{session.pk}" and attack.status == "pending"
    html = _page(client, f"/redteam/{session.pk}/")
    assert 'id="verdict"' in html and f"attack {attack.pk}" in html and 'id="label-form"' not in html


def test_without_the_opt_in_the_page_says_where_to_turn_it_on(world):
    shy = RaterFactory(username="shy")
    world["queue"].members.add(shy)
    client = Client()
    client.force_login(shy)
    home = _page(client, "/redteam/")
    assert 'id="opt-in-note"' in home and 'href="/rate/profile/"' in home
    assert 'href="/redteam/"' not in home.split("</nav>")[0]  # no nav link
    refused = client.post(
        "/redteam/start/", {"queue": world["queue"].pk, "target": world["target"].pk, "category": "hate"}
    )
    assert refused.status_code == 403 and "opt in to disturbing work" in refused.content.decode()
    assert not Session.objects.exists()
