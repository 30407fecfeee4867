"""The admin's sign-in form locks an address out after repeated failures (issue 12, item 7).

django-axes, configured in voiceroom/settings.py and voiceroom/adminlock.py: 5 failures
from one client address lock it out for 15 minutes (429 with Retry-After); the address is
voiceroom.throttling.client_address, so rotating X-Forwarded-For does not escape it.
"""

from __future__ import annotations

import logging

import pytest
from axes.models import AccessAttempt
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from tests.throttling import set_rates

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "pw-long-enough-1"


@pytest.fixture
def operator_account() -> User:
    return User.objects.create_superuser(username="olga", password=PASSWORD)


def sign_in(password: str, **meta):
    """One try at the admin's form, as a browser would, from the address in `meta`."""
    return Client(**meta).post(LOGIN, {"username": "olga", "password": password})


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def assert_locked_out(response) -> None:
    assert response.status_code == 429, response.status_code
    assert int(response["Retry-After"]) == 900
    assert b"Too many failed sign-ins" in response.content


def test_five_failures_lock_the_address_out_even_for_the_right_password(operator_account):
    for _ in range(4):
        response = sign_in("wrong")
        assert response.status_code == 200  # the form again, with its error
    assert_locked_out(sign_in("wrong"))
    assert_locked_out(sign_in(PASSWORD))
    # Another address is not locked out.
    assert signed_in(sign_in(PASSWORD, REMOTE_ADDR="198.51.100.20"))


def test_rotating_forwarded_for_does_not_escape_the_lockout(operator_account, settings):
    settings.VOICEROOM_TRUSTED_PROXIES = 0
    for i in range(5):
        sign_in("wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    assert_locked_out(sign_in(PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.200"))
    assert_locked_out(sign_in(PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.201"))


def test_behind_one_proxy_only_the_address_the_proxy_saw_is_locked_out(operator_account, settings):
    settings.VOICEROOM_TRUSTED_PROXIES = 1
    for i in range(5):
        sign_in("wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}, 198.51.100.66")
    assert_locked_out(sign_in(PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.66"))
    assert_locked_out(sign_in(PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.66"))
    # Another client of the proxy, even one whose header starts with the locked address.
    assert signed_in(sign_in(PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.66, 203.0.113.5"))


def test_a_successful_sign_in_before_the_limit_starts_the_count_again(operator_account):
    for _ in range(4):
        sign_in("wrong")
    assert signed_in(sign_in(PASSWORD))
    for _ in range(4):
        assert sign_in("wrong").status_code == 200
    assert signed_in(sign_in(PASSWORD))


def test_no_lockout_with_throttles_off(operator_account, settings):
    settings.VOICEROOM_THROTTLES = False
    for _ in range(8):
        assert sign_in("wrong").status_code == 200
    assert signed_in(sign_in(PASSWORD))
    assert not AccessAttempt.objects.exists()


def test_rest_sign_in_failures_are_not_the_admins_and_log_no_error(
    operator_account, settings, caplog
):
    """REST login has its own throttle; axes only watches the admin's form (REST calls
    authenticate() without a request, which axes would log as an error every time)."""
    set_rates(settings, login="100/min")
    api = APIClient()
    with caplog.at_level(logging.INFO):
        for _ in range(8):
            response = api.post("/api/auth/login", {"username": "olga", "password": "wrong"})
            assert response.status_code == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not AccessAttempt.objects.exists()
    assert signed_in(sign_in(PASSWORD))


def test_the_lockout_keeps_no_password_and_no_csrf_token(operator_account):
    Client().post(
        LOGIN, {"username": "olga", "password": "hunter2-secret", "csrfmiddlewaretoken": "tok123"}
    )
    attempt = AccessAttempt.objects.get()
    assert "hunter2-secret" not in attempt.post_data
    assert "tok123" not in attempt.post_data
    assert attempt.ip_address == "127.0.0.1"


def test_the_lockout_ends_after_the_cool_off_and_each_try_meanwhile_restarts_it(
    operator_account,
):
    from datetime import timedelta

    from django.utils import timezone

    for _ in range(5):
        sign_in("wrong")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=14))
    assert_locked_out(sign_in(PASSWORD))  # 14 minutes on: still locked, and it restarts
    assert AccessAttempt.objects.get().attempt_time > timezone.now() - timedelta(minutes=1)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert signed_in(sign_in(PASSWORD))


def test_an_operator_unlocks_an_address_with_the_command_or_in_the_admin(operator_account):
    from django.core.management import call_command
    from django.urls import reverse

    for _ in range(5):
        sign_in("wrong")
    call_command("axes_reset_ip", "127.0.0.1", verbosity=0)
    assert signed_in(sign_in(PASSWORD))

    for _ in range(5):
        sign_in("wrong")
    colleague = Client(REMOTE_ADDR="198.51.100.30")
    colleague.force_login(operator_account)
    attempt = AccessAttempt.objects.get(ip_address="127.0.0.1")
    url = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert colleague.post(url, {"post": "yes"}).status_code == 302
    assert signed_in(sign_in(PASSWORD))
