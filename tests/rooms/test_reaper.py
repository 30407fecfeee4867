"""Housekeeping: absent members, saved voice sequences, expired resume windows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from rooms import presence, reaper, services
from rooms.models import Membership
from rooms.relay import Endpoint, Relay

pytestmark = pytest.mark.django_db


def _user(name: str) -> User:
    return User.objects.create_user(username=name, password="a-Long-pass-123")


def _age(membership: Membership, seconds: float) -> None:
    Membership.objects.filter(pk=membership.pk).update(
        updated_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_a_member_who_joined_but_never_came_stops_holding_a_place_and_a_seat():
    owner = _user("owner")
    room = services.room_create(owner=owner, name="r", capacity=2, seat_count=2)
    ghost = _user("ghost")
    membership = services.member_join(room=room, user=ghost).membership
    Membership.objects.filter(pk=membership.pk).update(seat=1)
    # Full: the owner and the ghost.
    late = _user("late")
    with pytest.raises(services.Conflict):
        services.member_join(room=room, user=late)
    _age(membership, 600)
    assert services.members_absent_reap(older_than_s=300) >= 1
    membership.refresh_from_db()
    assert membership.active is False and membership.seat is None
    assert services.member_join(room=room, user=late).membership.active


def test_a_member_who_is_in_the_room_is_not_reaped_however_old_the_row():
    owner = _user("owner2")
    room = services.room_create(owner=owner, name="r")
    member = _user("present")
    membership = services.member_join(room=room, user=member).membership
    presence.store().attach(room.pk, member.pk, node="n", channel="c", resume=False)
    _age(membership, 600)
    services.members_absent_reap(older_than_s=300)
    membership.refresh_from_db()
    assert membership.active is True


def test_a_recent_join_or_a_fresh_ticket_is_not_absent():
    owner = _user("owner3")
    room = services.room_create(owner=owner, name="r")
    member = _user("coming")
    membership = services.member_join(room=room, user=member).membership
    _age(membership, 600)
    services.ticket_member_issue(room=room, user=member)  # the client is on its way
    services.members_absent_reap(older_than_s=300)
    membership.refresh_from_db()
    assert membership.active is True


async def _noop(message):
    return None


def test_moved_voice_sequences_are_saved_once_and_continue_after_a_crash():
    owner = _user("owner4")
    room = services.room_create(owner=owner, name="r")
    attached = presence.store().attach(room.pk, owner.pk, node="n1", channel="chan-1", resume=False)
    relay = Relay()
    ep = Endpoint(room_id=room.pk, user_id=owner.pk, send=_noop, channel="chan-1")
    relay.rooms[room.pk] = {owner.pk: ep}
    ep.seq = 42
    moved = relay.unsaved_sequences()
    assert moved == [(room.pk, owner.pk, "chan-1", 42)]
    assert relay.unsaved_sequences() == []  # saved: nothing moved since
    reaper.tick(sequences=moved)
    assert presence.store().get(room.pk, owner.pk).seq == 42
    # The node dies; the session resumes elsewhere and continues ahead, never behind.
    store = presence.store()
    if isinstance(store, presence.LocalStore):
        store.detach(room.pk, owner.pk, "chan-1", seq=42)
        assert (
            store.attach(room.pk, owner.pk, node="n2", channel="c2", resume=True).session.seq == 42
        )
    else:
        store.detach_node("n1")
        resumed = store.attach(room.pk, owner.pk, node="n2", channel="c2", resume=True).session
        assert resumed.seq == 42 + presence.SEQ_GAP
    assert attached.session.session_id == store.get(room.pk, owner.pk).session_id
