"""Signing out, a password change and deactivation kill the API token; tokens expire.

The realtime half (tickets, resume tokens, open sockets) is in
tests/rooms/test_revocation.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import services
from accounts.models import User
from tests.factories import PASSWORD, UserFactory, token_for

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-different-Long-pass-456"


def me(token: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/auth/me")


def assert_refused(token: str) -> None:
    response = me(token)
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == "authentication_failed" and body["detail"]


def login(username: str, password: str) -> str:
    response = APIClient().post(
        "/api/auth/login", {"username": username, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


# --- the three ways credentials are revoked ------------------------------------------------


def test_logout_kills_the_token_and_signing_in_again_gives_a_working_one():
    user = UserFactory()
    token = token_for(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.post("/api/auth/logout").status_code == 204

    assert_refused(token)
    user.refresh_from_db()
    assert user.credentials_revoked_at is not None
    fresh = login(user.username, PASSWORD)
    assert fresh != token and me(fresh).status_code == 200


def test_a_password_change_in_code_kills_the_token():
    user = UserFactory()
    token = token_for(user)
    assert me(token).status_code == 200

    user.set_password(NEW_PASSWORD)
    user.save()

    assert_refused(token)
    assert me(login(user.username, NEW_PASSWORD)).status_code == 200


def test_a_password_change_with_update_fields_kills_the_token():
    user = UserFactory()
    token = token_for(user)
    user.set_password(NEW_PASSWORD)
    user.save(update_fields=["password"])
    assert_refused(token)
    user.refresh_from_db()
    assert user.credentials_revoked_at is not None


def test_a_password_change_in_the_admin_kills_the_token(admin_client):
    user = UserFactory()
    token = token_for(user)
    response = admin_client.post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    assert_refused(token)
    assert me(login(user.username, NEW_PASSWORD)).status_code == 200


def test_disabling_password_sign_in_in_the_admin_kills_the_token(admin_client):
    user = UserFactory()
    token = token_for(user)
    response = admin_client.post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"usable_password": "false", "unset-password": "Disable password-based authentication"},
    )
    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert_refused(token)


def test_manage_py_changepassword_kills_the_token(monkeypatch):
    user = UserFactory()
    token = token_for(user)
    monkeypatch.setattr("getpass.getpass", lambda *args, **kwargs: NEW_PASSWORD)
    call_command("changepassword", user.username, stdout=None)
    assert_refused(token)


def test_deactivation_in_code_kills_the_token_for_good():
    user = UserFactory()
    token = token_for(user)
    user.is_active = False
    user.save()
    assert_refused(token)
    # Reactivated, the account signs in again; the old token stays dead.
    user.is_active = True
    user.save()
    assert_refused(token)
    assert me(login(user.username, PASSWORD)).status_code == 200


def admin_change(admin_client, user: User, **changes):
    """Post the admin's change form of `user` as a browser would, with `changes`."""
    form = {
        "username": user.username,
        "display_name": user.display_name,
        "first_name": "",
        "last_name": "",
        "email": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "is_active": "on",
        **changes,
    }
    form = {k: v for k, v in form.items() if v is not None}
    return admin_client.post(reverse("admin:accounts_user_change", args=[user.pk]), form)


def test_deactivation_in_the_admin_kills_the_token(admin_client):
    user = UserFactory()
    token = token_for(user)
    response = admin_change(admin_client, user, is_active=None)  # the box unticked
    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert user.is_active is False
    user.is_active = True
    user.save()
    assert_refused(token)


def test_other_saves_keep_the_token():
    # Signing in (last_login), editing the profile, a hash upgrade at sign-in: not a
    # revocation. Otherwise every sign-in would sign the user out everywhere.
    user = UserFactory()
    token = token_for(user)
    login(user.username, PASSWORD)
    user.display_name = "Renamed"
    user.save()
    admin_user = UserFactory(is_staff=True)
    admin_user.save()
    assert me(token).status_code == 200
    user.refresh_from_db()
    assert user.credentials_revoked_at is None


def test_a_password_hash_upgrade_at_sign_in_is_not_a_password_change(settings):
    user = UserFactory()  # hashed with MD5, the test settings' hasher
    token = token_for(user)
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    assert login(user.username, PASSWORD) == token
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_")  # upgraded...
    assert user.credentials_revoked_at is None  # ...and still signed in
    assert me(token).status_code == 200


def test_logout_through_the_service_revokes_once_per_call():
    user = UserFactory()
    services.user_logout(user=user)
    first = User.objects.get(pk=user.pk).credentials_revoked_at
    services.user_logout(user=user)
    second = User.objects.get(pk=user.pk).credentials_revoked_at
    assert first is not None and second > first
    assert not Token.objects.filter(user=user).exists()


# --- expiry -----------------------------------------------------------------------------------


def age(token: str, seconds: float) -> None:
    Token.objects.filter(key=token).update(created=timezone.now() - timedelta(seconds=seconds))


def test_a_token_older_than_the_ttl_is_refused(settings):
    settings.VOICEROOM_TOKEN_TTL_S = 3600
    user = UserFactory()
    token = token_for(user)
    age(token, 3500)
    assert me(token).status_code == 200
    age(token, 3601)
    assert_refused(token)
    assert "expired" in me(token).json()["detail"]


def test_tokens_live_thirty_days_by_default():
    user = UserFactory()
    token = token_for(user)
    age(token, 29 * 24 * 3600)
    assert me(token).status_code == 200
    age(token, 30 * 24 * 3600 + 60)
    assert_refused(token)


def test_signing_in_after_expiry_gives_a_new_token(settings):
    settings.VOICEROOM_TOKEN_TTL_S = 3600
    user = UserFactory()
    token = token_for(user)
    age(token, 7200)
    fresh = login(user.username, PASSWORD)
    assert fresh != token
    assert me(fresh).status_code == 200
    assert_refused(token)
