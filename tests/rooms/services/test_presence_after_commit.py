"""Presence (Redis, or this process) changes only once the database commits.

Presence lives outside the database transaction. Written inside it, a rollback would
leave the member active in the database but gone from the room (or the other way
round). Each test rolls a service back after its presence write would have happened
and checks that the participant is still in the room, on both stores.
"""

from __future__ import annotations

import os

import pytest
from django.db import transaction

from realtime import presence, runtime
from realtime.redis_client import RedisConfig
from rooms import services
from rooms.models import Membership, Room
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


class Rollback(Exception):
    """Raised inside the atomic block, after the service ran, to undo it."""


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
def store(request, settings):
    """The presence store the services use: this process's, or Redis."""
    url = os.environ.get("REDIS_URL", "") if request.param == "redis" else ""
    settings.REDIS = RedisConfig.from_env(url)
    runtime.install(None)  # a runtime (and store) made from this test's settings
    presence.store().clear()
    yield presence.store()
    presence.store().clear()
    runtime.install(None)  # a runtime (and store) made from this test's settings


def connected(room: Room):
    user = UserFactory()
    services.member_join(room=room, user=user)
    presence.store().attach(room.pk, user.pk, node="n1", channel="c1")
    return user


def test_a_kick_rolled_back_leaves_the_participant_in_the_room(store):
    room = RoomFactory()
    user = connected(room)

    with pytest.raises(Rollback), transaction.atomic():
        services.member_kick(room=room, actor=room.owner, user_id=user.pk)
        raise Rollback

    assert Membership.objects.get(room=room, user=user).active
    assert store.get(room.pk, user.pk) is not None


def test_a_kick_that_commits_takes_the_participant_out(store, django_capture_on_commit_callbacks):
    room = RoomFactory()
    user = connected(room)

    with django_capture_on_commit_callbacks(execute=True):
        services.member_kick(room=room, actor=room.owner, user_id=user.pk)

    assert store.get(room.pk, user.pk) is None


def test_a_leave_rolled_back_leaves_the_participant_in_the_room(store):
    room = RoomFactory()
    user = connected(room)

    with pytest.raises(Rollback), transaction.atomic():
        services.member_leave(room=room, user=user)
        raise Rollback

    assert store.get(room.pk, user.pk) is not None


def test_a_close_rolled_back_leaves_every_participant_in_the_room(store):
    room = RoomFactory()
    users = [connected(room) for _ in range(2)]

    with pytest.raises(Rollback), transaction.atomic():
        services.room_close(room=room, actor=room.owner)
        raise Rollback

    assert Room.objects.get(pk=room.pk).status == Room.Status.OPEN
    assert {s.user_id for s in store.sessions(room.pk)} == {u.pk for u in users}


def test_a_close_that_commits_forgets_every_session(store, django_capture_on_commit_callbacks):
    room = RoomFactory()
    for _ in range(2):
        connected(room)

    with django_capture_on_commit_callbacks(execute=True):
        services.room_close(room=room, actor=room.owner)

    assert store.sessions(room.pk) == []


def test_a_revocation_rolled_back_leaves_the_participant_in_the_room(store):
    room = RoomFactory()
    user = connected(room)

    with pytest.raises(Rollback), transaction.atomic():
        assert services.participants_revoke(user_id=user.pk) == 1
        raise Rollback

    assert store.get(room.pk, user.pk) is not None
