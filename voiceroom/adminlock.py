"""The admin's sign-in form locks an address out after repeated failures (django-axes).

Axes keeps its counts in the database (its AccessAttempt table, from its migrations), so
a lockout holds on every node that shares the database. The address is
voiceroom.throttling.client_address, the project's one rule: with no trusted proxy a
client cannot change it by sending X-Forwarded-For. The lockout is answered with 429 and
Retry-After, and VOICEROOM_THROTTLES=off turns it off (AXES_ENABLED, and the checks below).

Only the admin's form is watched. REST sign-in has its own throttle and calls
`authenticate()` without a request, which axes' backend refuses with an exception and
its signal handler logs as an error on every wrong password: both are kept to requests
for the admin here.
"""

from __future__ import annotations

import math

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse

from voiceroom import throttling


def _watched(request: HttpRequest | None) -> bool:
    return (
        request is not None
        and throttling.enabled()
        and AxesProxyHandler.get_implementation().is_admin_request(request)
    )


class AdminLockoutBackend(AxesStandaloneBackend):
    """Axes' check before the admin's sign-in: refuses a locked-out address. It signs
    nobody in itself (ModelBackend, after it, does)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not _watched(request):
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def admin_login_failed(sender, credentials: dict, request: HttpRequest | None = None, **kwargs):
    """Axes' receiver of `user_login_failed`, for the admin's form only."""
    if _watched(request):
        AxesProxyHandler.user_login_failed(sender, credentials, request, **kwargs)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    """429 with Retry-After. Every refused attempt counts as a failure and restarts the
    cool-off (axes' AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so the wait is the
    whole cool-off from now."""
    cool_off = get_cool_off(request)
    seconds = math.ceil(cool_off.total_seconds()) if cool_off else 0
    minutes = max(1, math.ceil(seconds / 60))
    response = HttpResponse(
        "Too many failed sign-ins from your address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
