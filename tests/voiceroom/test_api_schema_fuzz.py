"""The REST API against its own OpenAPI document (schemathesis), and the document itself.

Schemathesis reads /api/schema/ (drf-spectacular) and calls every operation with
generated requests, valid and invalid, authenticated as a user who owns one room, is a
member of another, and may not touch a third; ids in paths often name those real rooms
and users. Every answer must be no 5xx, a status code the document lists for that
operation, the content type it lists, and a body that matches the listed schema.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.management import call_command
from django.db import close_old_connections
from hypothesis import HealthCheck, event, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rooms import services
from tests.factories import RoomFactory, UserFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_the_schema_is_valid_and_spectacular_has_no_warnings(tmp_path):
    """drf-spectacular documents every view without guessing (warnings are errors)."""
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", tmp_path / "s.yaml")


def _wsgi_app():
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


# Loaded when the module is imported (schemathesis' pytest integration parametrizes
# from it); serving the document reads no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", _wsgi_app())
# Reproducible, and no cases spent on leaving out the Token header (each operation's
# 401 would be the same answer): the test sets a valid one on every request.
schema.config.generation.update(deterministic=True, database="none", with_security_parameters=False)


@pytest.fixture
def in_thread_requests(db):
    """Requests run in this thread, inside the test's transaction: like Django's test
    client, do not let request_started/finished close the test's connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(db):
    """The caller and real objects for the ids in paths."""
    me = UserFactory()
    friend, stranger, banned = UserFactory(), UserFactory(), UserFactory()
    mine = RoomFactory(owner=me, seat_count=4)
    theirs = RoomFactory(owner=friend)
    private = RoomFactory(owner=stranger, password="secret")
    for room, user in [(mine, friend), (mine, banned), (theirs, me), (mine, stranger)]:
        services.member_join(room=room, user=user)
    services.member_ban(room=mine, actor=me, user_id=banned.pk)
    services.seat_take(room=mine, user=friend, index=1)
    services.seat_request_create(room=mine, user=stranger, index=2)
    return {
        "me": me,
        "rooms": [mine.pk, theirs.pk, private.pk],
        "users": [me.pk, friend.pk, stranger.pk, banned.pk],
    }


# Ids at the edges of the database's integers (SQLite and MySQL store 64-bit signed).
EDGE_IDS = [0, 2**63 - 1, 2**63, 2**64 + 1]


def _real(value, choices: list[int]):
    """Most generated ids become real ones, some become edge cases, the rest stay."""
    if not isinstance(value, int) or isinstance(value, bool):
        return value
    if value % 4 in (1, 2):
        return choices[value % len(choices)]
    if value % 4 == 3:
        return EDGE_IDS[value % len(EDGE_IDS)]
    return value


@schema.parametrize()
@settings(
    max_examples=25,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_every_answer_matches_the_schema(case, world, in_thread_requests):
    params = case.path_parameters or {}
    if "room_id" in params:
        params["room_id"] = _real(params["room_id"], world["rooms"])
    if "user_id" in params:
        params["user_id"] = _real(params["user_id"], world["users"])
    # A generated `logout` ends the token: every case gets a working one.
    token = Token.objects.get_or_create(user=world["me"])[0].key
    # Over any generated Authorization: refusing a bad token is one 401, whatever the
    # request; the operations behind it are what is worth exploring.
    headers = {**(case.headers or {}), "Authorization": f"Token {token}"}
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    event(f"{response.status_code}")
