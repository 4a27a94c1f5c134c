"""A lost database answers 503 with Retry-After (labeling/unavailable.py), not 500: from a view
(API and page) and from a middleware; other errors stay 500. The recovery itself, with a real
PostgreSQL restart under gunicorn, is ``scripts/fault_postgres_restart.sh``."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client
from rest_framework.test import APIClient

from labeling.unavailable import RETRY_AFTER_SECONDS

pytestmark = pytest.mark.django_db

LOST = OperationalError("server closed the connection unexpectedly")


@pytest.mark.parametrize("error", [LOST, InterfaceError("connection already closed")])
def test_an_api_view_that_loses_the_database_answers_503_with_retry_after(rater, error):
    client = APIClient()  # the token is checked in the view (DRF): it raises there
    with mock.patch("labeling.authentication.TokenAuthentication.authenticate", side_effect=error):
        response = client.get("/api/v1/queues/", HTTP_AUTHORIZATION="Token whatever")
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "unavailable" in response.json()["detail"]
    assert "server closed" not in response.content.decode()  # nothing of the error leaks


def test_a_page_that_loses_the_database_answers_503_with_retry_after(rater):
    client = Client()
    client.force_login(rater)
    with mock.patch("django.contrib.auth.get_user", side_effect=LOST):
        response = client.get("/rate/")
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert b"unavailable" in response.content


def test_a_middleware_that_loses_the_database_answers_503_through_the_error_handler(rater, settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    with mock.patch("labeling.middleware.RequestTextMiddleware.__call__", side_effect=LOST, autospec=True):
        response = client.get("/api/v1/queues/")
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_any_other_error_is_still_a_500(rater, settings):
    settings.DEBUG = False
    client = APIClient(raise_request_exception=False)
    with mock.patch(
        "labeling.authentication.TokenAuthentication.authenticate", side_effect=RuntimeError("a bug")
    ):
        response = client.get("/api/v1/queues/", HTTP_AUTHORIZATION="Token whatever")
    assert response.status_code == 500
    assert not response.has_header("Retry-After")
