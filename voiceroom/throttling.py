"""Throttles: too many attempts answer 429 `{"code": "throttled", "detail"}` with Retry-After.

The contract (v1.1, "Sessions and credentials") throttles sign-in, registration, joining
with a room password and the admin's sign-in form (django-axes, see voiceroom/adminlock.py).
`VOICEROOM_THROTTLES=off` turns all of them off, for load tests.

Rates are `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` ("10/min", "20/hour"), read when
used. Counts live in Django's default cache, which is Redis when REDIS_URL is set, so a
limit holds across nodes. Each attempt is one atomic increment of the count of the
current window (a fixed window of the rate's period): parallel attempts cannot slip past
the limit between a read and a write, as they can with DRF's SimpleRateThrottle (it reads
a list of timestamps and writes it back).

`client_address` is the one rule for "the client's address" (VOICEROOM_TRUSTED_PROXIES),
used by every throttle here and by the admin's lockout.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def enabled() -> bool:
    return bool(settings.VOICEROOM_THROTTLES)


def client_address(request: HttpRequest) -> str:
    """The address of the client that sent `request`.

    With VOICEROOM_TRUSTED_PROXIES = 0 it is the peer's address (REMOTE_ADDR) and
    X-Forwarded-For is ignored: anyone can write that header. Behind n trusted proxies it
    is the n-th address from the right of X-Forwarded-For, the one the outermost trusted
    proxy saw: what a client writes into the header itself stays to the left of it and is
    never read. Same rule as DRF's NUM_PROXIES (set from the same variable).
    """
    remote = request.META.get("REMOTE_ADDR") or ""
    hops = int(settings.VOICEROOM_TRUSTED_PROXIES)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops <= 0 or not forwarded.strip():
        return remote
    hops_seen = [part.strip() for part in forwarded.split(",")]
    candidate = hops_seen[-min(hops, len(hops_seen))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:  # not an address: a misconfigured proxy; do not key on junk
        return remote


@dataclass(frozen=True)
class Rate:
    count: int
    period_s: int


def rate_of(scope: str) -> Rate:
    rate = api_settings.DEFAULT_THROTTLE_RATES[scope]
    if not isinstance(rate, str):  # DRF allows None (no limit); every scope here has a rate
        raise ImproperlyConfigured(f"DEFAULT_THROTTLE_RATES[{scope!r}] must be 'count/period'")
    count, _, period = rate.partition("/")
    return Rate(int(count), _PERIODS[period.strip()[0]])


@dataclass
class Attempt:
    """One counted attempt. `wait` is None when it is within the limit, else the seconds
    until the window ends."""

    key: str
    wait: float | None

    def give_back(self) -> None:
        """Un-count it (an attempt that, it turned out, does not count)."""
        try:
            cache.decr(self.key)
        except ValueError:  # the window has passed and its count expired
            pass


def attempt(scope: str, ident: str) -> Attempt:
    """Count one attempt of `ident` (an address, a user and room...) in `scope`."""
    rate = rate_of(scope)
    now = time.time()
    window = int(now // rate.period_s)
    # Hashed: idents carry client-chosen text; keys stay short and of one alphabet.
    digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
    key = f"throttle:{scope}:{digest}:{window}"
    cache.add(key, 0, rate.period_s + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, rate.period_s + 1)
        count = 1
    if count <= rate.count:
        return Attempt(key, None)
    return Attempt(key, max(1.0, (window + 1) * rate.period_s - now))


class AddressRateThrottle(BaseThrottle):
    """DRF throttle: every request to the view counts against its client address, in
    the view's `throttle_scope`."""

    _wait: float | None = None

    def allow_request(self, request, view) -> bool:
        if not enabled():
            return True
        counted = attempt(view.throttle_scope, client_address(request))
        self._wait = counted.wait
        return counted.wait is None

    def wait(self) -> float | None:
        return self._wait
