"""The outbox: which changes store which event, in the same transaction."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from rooms import services
from tests.factories import RoomFactory, UserFactory
from webhooks.models import Event
from webhooks.services import record_event

pytestmark = pytest.mark.django_db


def stored() -> list[tuple[str, dict]]:
    return [(e.type, json.loads(e.body)["data"]) for e in Event.objects.order_by("id")]


def test_nothing_is_stored_without_a_webhook_url(settings):
    settings.VOICEROOM_WEBHOOK_URL = ""
    RoomFactory()
    assert not Event.objects.exists()


def test_room_created_is_stored_with_the_contract_fields(webhooks_on):
    room = RoomFactory(name="Jazz")
    event = Event.objects.get()
    body = json.loads(event.body)
    assert set(body) == {"id", "type", "created_at", "room_id", "data"}
    assert body["type"] == "room.created" and body["room_id"] == room.pk
    assert body["id"] == str(event.uid)
    assert body["data"] == {"name": "Jazz", "owner_id": room.owner_id}
    assert body["created_at"].endswith("Z")
    assert event.status == "pending"


def test_a_rolled_back_change_leaves_no_event(webhooks_on):
    owner = UserFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.room_create(owner=owner, name="gone")
        raise RuntimeError("the change fails after the event was written")
    assert not Event.objects.exists()


def test_a_refused_act_stores_nothing(webhooks_on):
    room = RoomFactory()
    stranger = UserFactory()
    services.member_join(room=room, user=stranger)
    Event.objects.all().delete()
    with pytest.raises(Exception):  # noqa: B017 (Forbidden: not a moderator)
        services.member_kick(room=room, actor=stranger, user_id=room.owner_id)
    assert not Event.objects.exists()


def test_moderation_and_room_acts_store_their_events(webhooks_on):
    room = RoomFactory()
    owner = room.owner
    alice, bob = UserFactory(), UserFactory()
    for user in (alice, bob):
        services.member_join(room=room, user=user)
    Event.objects.all().delete()
    services.member_mute(room=room, actor=owner, user_id=alice.pk, muted=True)
    services.member_mute(room=room, actor=owner, user_id=alice.pk, muted=False)
    services.room_mute_all(room=room, actor=owner, muted=True)
    services.member_kick(room=room, actor=owner, user_id=alice.pk)
    services.member_ban(room=room, actor=owner, user_id=bob.pk, reason="spam")
    services.member_unban(room=room, actor=owner, user_id=bob.pk)
    services.room_close(room=room, actor=owner)
    services.room_open(room=room, actor=owner)
    a, b, o = alice.pk, bob.pk, owner.pk
    assert stored() == [
        ("moderation.mute", {"actor_id": o, "user_id": a, "muted": True, "all": False}),
        ("moderation.mute", {"actor_id": o, "user_id": a, "muted": False, "all": False}),
        ("moderation.mute", {"actor_id": o, "user_id": a, "muted": True, "all": True}),
        ("moderation.mute", {"actor_id": o, "user_id": b, "muted": True, "all": True}),
        ("moderation.kick", {"actor_id": o, "user_id": a}),
        ("moderation.ban", {"actor_id": o, "user_id": b, "reason": "spam"}),
        ("moderation.unban", {"actor_id": o, "user_id": b}),
        ("room.closed", {"actor_id": o}),
        ("room.opened", {"actor_id": o}),
    ]


def test_participants_joining_and_leaving_store_events(webhooks_on):
    room = RoomFactory()
    alice = UserFactory()
    services.member_join(room=room, user=alice)
    Event.objects.all().delete()
    result = services.participant_connect(
        room_id=room.pk, user_id=alice.pk, resume_session=None, node="n1", channel="c1"
    )
    assert result.close_code is None
    # A second socket of the same participant is not a new arrival.
    services.participant_connect(
        room_id=room.pk, user_id=alice.pk, resume_session=None, node="n1", channel="c2"
    )
    services.member_leave(room=room, user=alice)
    assert stored() == [
        ("participant.joined", {"user_id": alice.pk}),
        ("participant.left", {"user_id": alice.pk, "reason": "left"}),
    ]


def test_record_event_refuses_a_type_outside_the_contract(webhooks_on):
    with pytest.raises(ValueError):
        record_event("room.exploded", 1, {})


def test_record_event_is_the_function_other_apps_call(webhooks_on):
    """reports and recording (issue 16 items 1-2) record their events with it."""
    event = record_event("recording.started", 42, {"actor_id": 7})
    assert event is not None
    assert json.loads(Event.objects.get().body)["data"] == {"actor_id": 7}


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_a_rooms_events_commit_in_id_order(webhooks_on):
    """While one transaction holds an uncommitted event of a room, another event of that
    room waits (the room's Stream row), so a later id can never be visible, and sent,
    before an earlier one commits."""
    import threading

    from django.db import connection

    record_event("room.created", 7, {})
    holding, release = threading.Event(), threading.Event()
    ids: dict[str, int] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                ids["first"] = record_event("room.closed", 7, {}).pk
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    def second() -> None:
        try:
            ids["second"] = record_event("room.opened", 7, {}).pk
        finally:
            connection.close()

    a = threading.Thread(target=first)
    a.start()
    assert holding.wait(10)
    b = threading.Thread(target=second)
    b.start()
    b.join(1.0)
    assert b.is_alive(), "the second event did not wait for the first transaction"
    release.set()
    a.join(10)
    b.join(10)
    assert ids["first"] < ids["second"]
    assert [e.type for e in Event.objects.order_by("id")] == [
        "room.created",
        "room.closed",
        "room.opened",
    ]
