import pytest


@pytest.mark.django_db
def test_schema_is_served(api):
    response = api.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content
