"""The contract's throttles over REST (issue 12, items 5 and 6): 429 `throttled` with
Retry-After, scoped as documented, not escaped by a forged X-Forwarded-For, off with
VOICEROOM_THROTTLES=off. The admin's lockout (item 7) is in test_admin_lockout.py; the
same limits across two real nodes in test_live_throttles.py.
"""

from __future__ import annotations

import json
import os
import secrets
import threading

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from rooms.models import Membership, Room
from tests.factories import RoomFactory, UserFactory, operator, token_for
from tests.throttling import set_rates
from voiceroom import throttling

pytestmark = pytest.mark.django_db

ROOM_PASSWORD = "open sesame"


def assert_throttled(response) -> int:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["code"] == "throttled" and body["detail"], body
    wait = int(response["Retry-After"])
    assert wait >= 1
    return wait


def register(client: APIClient, name: str | None = None, **extra):
    body = {"username": name or f"u{secrets.token_hex(4)}", "password": "a-Long-pass-123"}
    return client.post("/api/auth/register", body, format="json", **extra)


def as_user(user, **extra) -> APIClient:
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def join(client: APIClient, room: Room, password: str | None = None, **extra):
    body = {} if password is None else {"password": password}
    return client.post(f"/api/rooms/{room.pk}/join", body, format="json", **extra)


# --- register: per address (item 6) ------------------------------------------------------


def test_register_is_throttled_per_address_and_a_taken_name_is_no_longer_told(settings):
    set_rates(settings, register="3/hour")
    client = APIClient()
    assert register(client, "alice").status_code == 201
    assert register(client, "alice").json()["code"] == "username_taken"
    assert register(client).status_code == 201

    wait = assert_throttled(register(client, "alice"))
    assert wait <= 3600
    assert_throttled(register(client))  # a free name is refused alike: no oracle left
    # Another address has its own budget.
    assert register(APIClient(REMOTE_ADDR="198.51.100.7")).status_code == 201


def test_register_throttle_is_not_escaped_by_a_forged_forwarded_for(settings):
    set_rates(settings, register="2/hour")
    settings.VOICEROOM_TRUSTED_PROXIES = 0
    for i in range(2):
        assert register(APIClient(HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")).status_code == 201
    assert_throttled(register(APIClient(HTTP_X_FORWARDED_FOR="203.0.113.99")))


def test_behind_one_proxy_only_the_address_the_proxy_saw_counts_for_register(settings):
    set_rates(settings, register="2/hour")
    settings.VOICEROOM_TRUSTED_PROXIES = 1
    mallory = {"HTTP_X_FORWARDED_FOR": "198.51.100.66"}
    for _ in range(2):
        assert register(APIClient(**mallory)).status_code == 201
    assert_throttled(register(APIClient(**mallory)))
    # Whatever Mallory prepends, the proxy appends her real address: still refused.
    assert_throttled(register(APIClient(HTTP_X_FORWARDED_FOR="10.9.9.9, 198.51.100.66")))
    # Someone else behind the proxy whose header starts with Mallory's address is not.
    other = APIClient(HTTP_X_FORWARDED_FOR="198.51.100.66, 203.0.113.5")
    assert register(other).status_code == 201


def test_register_is_not_throttled_with_throttles_off(settings):
    set_rates(settings, register="1/hour")
    settings.VOICEROOM_THROTTLES = False
    client = APIClient()
    for _ in range(5):
        assert register(client).status_code == 201


# --- join with a room password: per user and room, and per address (item 5) --------------


@pytest.fixture
def private_room():
    return RoomFactory(password=ROOM_PASSWORD)


def test_wrong_room_passwords_are_throttled_per_user_and_room(settings, private_room):
    set_rates(settings, join_password="3/hour", join_password_address="1000/hour")
    guesser = UserFactory()
    client = as_user(guesser)
    for i in range(3):
        response = join(client, private_room, f"guess {i}")
        assert response.status_code == 403 and response.json()["code"] == "bad_password"

    assert_throttled(join(client, private_room, ROOM_PASSWORD))  # even the right one, now
    assert not Membership.objects.filter(room=private_room, user=guesser).exists()

    # Another private room, and another user in this room, are not held back by it.
    other_room = RoomFactory(password="other")
    assert join(client, other_room, "other").status_code == 200
    assert join(as_user(UserFactory()), private_room, ROOM_PASSWORD).status_code == 200


def test_only_wrong_passwords_count_for_the_member(settings, private_room):
    set_rates(settings, join_password="2/hour", join_password_address="1000/hour")
    client = as_user(UserFactory())
    assert join(client, private_room, "typo").status_code == 403
    for _ in range(4):  # a typo, then the right password, again and again
        assert join(client, private_room, ROOM_PASSWORD).status_code == 200
    assert join(client, private_room, "typo again").status_code == 403
    assert_throttled(join(client, private_room, ROOM_PASSWORD))


def test_every_password_checked_counts_per_address_whatever_the_account(settings, private_room):
    set_rates(settings, join_password="1000/hour", join_password_address="3/hour")
    settings.VOICEROOM_TRUSTED_PROXIES = 0
    users = [UserFactory() for _ in range(4)]
    assert join(as_user(users[0]), private_room, ROOM_PASSWORD).status_code == 200
    for user in users[1:3]:
        assert join(as_user(user), private_room, "guess").status_code == 403
    forged = {"HTTP_X_FORWARDED_FOR": "203.0.113.77"}
    assert_throttled(join(as_user(users[3], **forged), private_room, ROOM_PASSWORD))
    # The same account from another address is served.
    other = as_user(users[3], REMOTE_ADDR="198.51.100.8")
    assert join(other, private_room, ROOM_PASSWORD).status_code == 200


def test_behind_one_proxy_only_the_last_hop_counts_for_join(settings, private_room):
    set_rates(settings, join_password="1000/hour", join_password_address="2/hour")
    settings.VOICEROOM_TRUSTED_PROXIES = 1
    mallory = {"HTTP_X_FORWARDED_FOR": "198.51.100.66"}
    for _ in range(2):
        assert join(as_user(UserFactory(), **mallory), private_room, "guess").status_code == 403
    forged = {"HTTP_X_FORWARDED_FOR": "203.0.113.1, 198.51.100.66"}
    assert_throttled(join(as_user(UserFactory(), **forged), private_room, "guess"))
    honest = {"HTTP_X_FORWARDED_FOR": "198.51.100.66, 203.0.113.5"}
    assert join(as_user(UserFactory(), **honest), private_room, ROOM_PASSWORD).status_code == 200


def test_a_throttled_join_computes_no_password_hash(settings, private_room, monkeypatch):
    """The point for the server's CPU: once throttled, a guess costs no hash."""
    set_rates(settings, join_password="2/hour", join_password_address="1000/hour")
    client = as_user(UserFactory())
    for _ in range(2):
        assert join(client, private_room, "guess").status_code == 403
    checked = []
    real = Room.check_password
    monkeypatch.setattr(Room, "check_password", lambda r, raw: checked.append(raw) or real(r, raw))
    for _ in range(3):
        assert_throttled(join(client, private_room, "guess"))
    assert checked == []


def test_joins_that_check_no_password_are_never_throttled(settings, private_room):
    set_rates(settings, join_password="1/hour", join_password_address="1/hour")
    public = RoomFactory()
    member = as_user(UserFactory())
    owner = as_user(private_room.owner)
    op = as_user(operator("change_room"))
    for _ in range(3):
        assert join(member, public).status_code == 200
        assert join(owner, private_room).status_code == 200
        assert join(op, private_room).status_code == 200


def test_join_is_not_throttled_with_throttles_off(settings, private_room):
    set_rates(settings, join_password="1/hour", join_password_address="1/hour")
    settings.VOICEROOM_THROTTLES = False
    client = as_user(UserFactory())
    for _ in range(4):
        assert join(client, private_room, "guess").status_code == 403
    assert join(client, private_room, ROOM_PASSWORD).status_code == 200


def test_login_is_not_throttled_with_throttles_off(settings):
    set_rates(settings, login="1/min")
    settings.VOICEROOM_THROTTLES = False
    UserFactory(username="alice")
    client = APIClient()
    for _ in range(4):
        response = client.post("/api/auth/login", {"username": "alice", "password": "x"})
        assert response.status_code == 400


# --- the counter itself ------------------------------------------------------------------


def _parallel_attempts(n: int, scope: str, ident: str) -> int:
    """n threads count one attempt each at the same moment; how many were allowed."""
    allowed = []
    start = threading.Barrier(n)

    def one() -> None:
        start.wait()
        if throttling.attempt(scope, ident).wait is None:
            allowed.append(1)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return len(allowed)


def test_parallel_attempts_cannot_slip_past_the_limit(settings):
    set_rates(settings, join_password="5/hour")
    assert _parallel_attempts(40, "join_password", "7:9") == 5


@pytest.mark.redis
def test_parallel_attempts_through_redis_cannot_slip_past_the_limit(settings):
    """With REDIS_URL the count is in Redis, shared by every node (the threads here share
    the process's connection pool, as a node's sockets do: voiceroom.cache)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "voiceroom.cache.SharedRedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": f"vrtest{secrets.token_hex(4)}",
        }
    }
    set_rates(settings, join_password="5/hour")
    try:
        assert _parallel_attempts(40, "join_password", "7:9") == 5
    finally:
        caches["default"].clear()


# --- the setting --------------------------------------------------------------------------

DUMP = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps([settings.VOICEROOM_THROTTLES, settings.AXES_ENABLED]))
"""


def test_throttles_are_on_by_default_and_off_turns_off_the_admin_lockout_too():
    from tests.voiceroom.test_settings import KEY, run_python

    for value, expected in [(None, [True, True]), ("off", [False, False]), ("on", [True, True])]:
        env = {"DJANGO_SECRET_KEY": KEY, **({"VOICEROOM_THROTTLES": value} if value else {})}
        done = run_python(DUMP, **env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"VOICEROOM_THROTTLES": "maybe"},
        {"VOICEROOM_REGISTER_THROTTLE": "20 per hour"},
        {"VOICEROOM_JOIN_PASSWORD_THROTTLE": "10/fortnight"},
    ],
)
def test_a_misspelt_throttle_setting_stops_the_process(env):
    """Not silently off, nor a 500 at the first request."""
    from tests.voiceroom.test_settings import KEY, run_python

    done = run_python(DUMP, DJANGO_SECRET_KEY=KEY, **env)
    assert done.returncode != 0
    assert next(iter(env)) in done.stderr


def test_a_scope_without_a_rate_is_a_configuration_error(settings):
    """DRF allows None (no limit) as a rate; these throttles always need one, and say which
    scope lacks it instead of failing on None.partition()."""
    from django.core.exceptions import ImproperlyConfigured

    current = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {
        **current,
        "DEFAULT_THROTTLE_RATES": {**current["DEFAULT_THROTTLE_RATES"], "login": None},
    }
    with pytest.raises(ImproperlyConfigured, match="'login'"):
        throttling.rate_of("login")
