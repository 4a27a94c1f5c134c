"""Rubrics in the Django admin: a frozen rubric (judgments used it) cannot change, criteria included;
an action makes the next, editable version."""

from __future__ import annotations

import pytest

from labeling.models import Criterion, Rubric
from tests.factories import CriterionFactory, RubricFactory

pytestmark = pytest.mark.django_db


def _change_form(rubric: Rubric, question: str) -> dict:
    criterion = rubric.criteria.get()
    return {
        "name": rubric.name,
        "version": rubric.version,
        "description": rubric.description,
        "criteria-TOTAL_FORMS": "1",
        "criteria-INITIAL_FORMS": "1",
        "criteria-MIN_NUM_FORMS": "0",
        "criteria-MAX_NUM_FORMS": "1000",
        "criteria-0-id": criterion.pk,
        "criteria-0-rubric": rubric.pk,
        "criteria-0-key": criterion.key,
        "criteria-0-question": question,
        "criteria-0-kind": criterion.kind,
        "criteria-0-position": 0,
    }


def test_criteria_of_a_frozen_rubric_cannot_be_changed(client, admin_user):
    client.force_login(admin_user)
    rubric = RubricFactory(name="hhh", frozen=True)
    CriterionFactory(rubric=rubric, key="helpful", question="Which is more helpful?", kind="preference")
    url = f"/admin/labeling/rubric/{rubric.pk}/change/"

    page = client.get(url).content.decode()
    assert 'name="criteria-0-question"' not in page  # shown read-only
    client.post(url, _change_form(rubric, "Which is shorter?"))
    assert Criterion.objects.get().question == "Which is more helpful?"

    unfrozen = RubricFactory(name="draft")
    CriterionFactory(rubric=unfrozen, key="helpful", question="Which is more helpful?", kind="preference")
    response = client.post(
        f"/admin/labeling/rubric/{unfrozen.pk}/change/", _change_form(unfrozen, "Which is clearer?")
    )
    assert response.status_code == 302
    assert unfrozen.criteria.get().question == "Which is clearer?"


def test_new_version_action_copies_the_criteria_into_an_editable_rubric(client, admin_user):
    client.force_login(admin_user)
    rubric = RubricFactory(name="hhh", version=1, frozen=True, description="v1")
    CriterionFactory(
        rubric=rubric, key="helpful", question="Helpful?", kind="preference", required=True, position=0
    )
    CriterionFactory(rubric=rubric, key="unsafe", question="Unsafe?", kind="flag", position=1)

    response = client.post(
        "/admin/labeling/rubric/", {"action": "new_version", "_selected_action": [rubric.pk]}, follow=True
    )

    copy = Rubric.objects.get(name="hhh", version=2)
    assert "Copied hhh v1 as hhh v2: edit that one." in response.content.decode()
    assert not copy.frozen and copy.description == "v1"
    assert [(c.key, c.question, c.kind, c.required) for c in copy.criteria.all()] == [
        ("helpful", "Helpful?", "preference", True),
        ("unsafe", "Unsafe?", "flag", False),
    ]
