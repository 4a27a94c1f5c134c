from __future__ import annotations

import pytest

from model_runner.models import GenerationJob
from tests.factories import GenerationJobFactory

pytestmark = pytest.mark.django_db

URL = "/manage/generation/"


def test_admin_sees_jobs_and_the_page_refreshes_while_one_runs(client, admin_user):
    client.force_login(admin_user)
    running = GenerationJobFactory.create(status=GenerationJob.Status.RUNNING, total=8, done=2, errors=[])
    failed = GenerationJobFactory.create(
        status=GenerationJob.Status.FAILED,
        total=4,
        done=2,
        errors=[{"prompt_id": 7, "generator": "m", "error": "<b>prompt is too long</b>"}],
    )

    response = client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'http-equiv="refresh"' in html
    assert f'id="job-{running.pk}"' in html and f'id="job-{failed.pk}"' in html
    assert "2 / 8" in html
    assert 'aria-valuenow="25"' in html
    # Error text is shown escaped, never as markup.
    assert "&lt;b&gt;prompt is too long&lt;/b&gt;" in html
    assert "<b>prompt is too long</b>" not in html


def test_no_refresh_when_every_job_has_finished(client, admin_user):
    client.force_login(admin_user)
    GenerationJobFactory.create(status=GenerationJob.Status.SUCCEEDED, total=2, done=2)
    response = client.get(URL)
    assert response.status_code == 200
    assert 'http-equiv="refresh"' not in response.content.decode()


def test_raters_are_refused_and_anonymous_users_sent_to_login(client, rater):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    client.force_login(rater)
    assert client.get(URL).status_code == 403
