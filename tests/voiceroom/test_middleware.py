"""Errors outside DRF views are JSON with a stable code too."""

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize(
    "method,path,status,code",
    [
        ("get", "/api/nope", 404, "not_found"),
        ("post", "/api/rooms/1/nothing-here", 404, "not_found"),
        ("post", "/healthz", 405, "method_not_allowed"),
        ("delete", "/metrics", 405, "method_not_allowed"),
    ],
)
def test_errors_outside_drf_are_json(method, path, status, code):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)  # as a real client is treated
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == code and response.json()["detail"]


@pytest.mark.django_db
def test_post_to_the_room_list_without_the_slash_creates_a_room(client):
    from rest_framework.test import APIClient

    api = APIClient()
    token = api.post(
        "/api/auth/register",
        {"username": "slashless", "password": "a-Long-pass-123"},
        format="json",
    ).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api.post("/api/rooms", {"name": "no slash"}, format="json")
    assert response.status_code == 201 and response.json()["name"] == "no slash"


@pytest.mark.django_db
def test_non_api_pages_keep_their_html(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200 and "text/html" in response["Content-Type"]
    assert "text/html" in client.get("/not-an-api-page").get("Content-Type", "text/html")
