"""Housekeeping: absent members, saved voice sequences, expired resume windows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from realtime import presence
from realtime.relay import Endpoint, Relay
from rooms import reaper, services
from rooms.contract import CloseCode
from rooms.models import Membership
from voiceroom.errors import Conflict

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
    with pytest.raises(Conflict):
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
    presence.store().attach(room.pk, member.pk, node="n", channel="c")
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
    attached = presence.store().attach(room.pk, owner.pk, node="n1", channel="chan-1")
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
    token = attached.session.resume_token
    if isinstance(store, presence.LocalStore):
        store.detach(room.pk, owner.pk, "chan-1", seq=42)
        resumed = store.attach(room.pk, owner.pk, node="n2", channel="c2", resume_token=token)
        assert resumed.session.seq == 42
    else:
        store.detach_node("n1")
        resumed = store.attach(room.pk, owner.pk, node="n2", channel="c2", resume_token=token)
        assert resumed.session.seq == 42 + presence.SEQ_GAP
    assert attached.session.session_id == store.get(room.pk, owner.pk).session_id


@pytest.mark.redis
def test_a_node_puts_its_live_sockets_back_when_redis_lost_them(monkeypatch):
    """Redis restarted empty (here: its keys deleted): the node's heartbeat entry is gone,
    and `participants_reattach` rebuilds presence from the sockets the node really holds."""
    store = presence.store()
    owner = _user("owner5")
    room = services.room_create(owner=owner, name="r", seat_count=2)
    talker, opening, dropped, kicked = (_user(n) for n in ("talker", "opening", "dropped", "kk"))
    for u in (talker, opening, dropped, kicked):
        services.member_join(room=room, user=u)
    node = presence.NODE_ID
    talking = store.attach(room.pk, talker.pk, node=node, channel="c-talk")
    store.update(room.pk, talker.pk, talking.session.session_id, self_muted=True)
    store.attach(room.pk, kicked.pk, node=node, channel="c-kick")
    assert reaper.tick() is True  # the first beat of this node
    assert reaper.tick() is False

    store.r.delete(*store.r.keys(f"{store.p}*"))  # Redis lost everything
    store.attach(room.pk, opening.pk, node=node, channel="c-open")  # opening now
    Membership.objects.filter(room=room, user=kicked).update(active=False)  # ended meanwhile
    store.attach(room.pk, dropped.pk, node=node, channel="c-drop")
    store._forget("c-drop")  # its socket dropped while Redis could not record it
    sent = []
    monkeypatch.setattr(services.events, "participant_updated", lambda r, p: sent.append(p))
    monkeypatch.setattr(services.events, "member_close", lambda r, u, code: sent.append(code))
    assert reaper.tick() is True  # the heartbeat entry was gone
    sockets = [(room.pk, talker.pk, "c-talk", 77), (room.pk, kicked.pk, "c-kick", 0)]
    services.participants_reattach(node=node, sockets=sockets)

    back = store.get(room.pk, talker.pk)
    assert back.session_id == talking.session.session_id and back.connected and back.self_muted
    assert back.seq == 77
    # Its resume token (the one its client holds) works again once the socket drops.
    store.detach(room.pk, talker.pk, "c-talk", seq=77)
    assert store.resolve_resume_token(talking.session.resume_token) == (
        room.pk,
        talker.pk,
        back.session_id,
    )
    assert store.get(room.pk, opening.pk).connected is True  # still opening: left alone
    assert store.get(room.pk, dropped.pk).connected is False  # in its resume window now
    assert store.get(room.pk, kicked.pk) is None
    assert CloseCode.FORBIDDEN in sent
    assert {(p["user_id"], p["connected"]) for p in sent if isinstance(p, dict)} == {
        (talker.pk, True),
        (dropped.pk, False),
    }


@pytest.mark.redis
def test_sessions_kept_for_reattach_are_forgotten_once_their_socket_is_gone(monkeypatch):
    store = presence.store()
    owner = _user("owner6")
    room = services.room_create(owner=owner, name="r")
    member = _user("member6")
    services.member_join(room=room, user=member)
    store.attach(room.pk, member.pk, node=presence.NODE_ID, channel="c-1")
    store.r.hdel(store._room(room.pk), member.pk)  # kicked through another node
    store.attach(room.pk, owner.pk, node=presence.NODE_ID, channel="c-2")
    assert set(store.keep_only({"c-2"})) == {"c-1", "c-2"}  # c-1 might still be opening
    monkeypatch.setattr(presence.redis, "MINE_GRACE_S", -1.0)
    assert set(store.keep_only({"c-2"})) == {"c-2"}


def test_speak_states_reads_presence_once_for_all_rooms(monkeypatch):
    """The speak re-check's read: right answers for several rooms (self-mute from
    presence, a room's mute from the database), with one presence read for them all
    (it runs every VOICEROOM_SPEAK_RECHECK_S for every local socket)."""
    owner = _user("spk-owner")
    rooms = [services.room_create(owner=owner, name=f"r{i}", seat_count=0) for i in range(3)]
    talker, quiet, muted = _user("spk-talker"), _user("spk-quiet"), _user("spk-muted")
    store = presence.store()
    for room in rooms:
        for user in (talker, quiet, muted):
            services.member_join(room=room, user=user)
            store.attach(room.pk, user.pk, node="n", channel=f"c{room.pk}-{user.pk}")
        session = store.get(room.pk, quiet.pk)
        store.update(room.pk, quiet.pk, session.session_id, self_muted=True)
        Membership.objects.filter(room=room, user=muted).update(muted=True)
    reads: list[list[int]] = []
    many = store.sessions_of_rooms

    def counted(room_ids):
        reads.append(list(room_ids))
        return many(room_ids)

    def one_by_one(room_id):
        raise AssertionError("one presence read per room")

    monkeypatch.setattr(store, "sessions_of_rooms", counted)
    monkeypatch.setattr(store, "sessions", one_by_one)
    asked = {room.pk: [talker.pk, quiet.pk, muted.pk] for room in rooms}
    allowed = reaper.speak_states(asked)
    assert allowed == {
        (room.pk, user.pk): user is talker for room in rooms for user in (talker, quiet, muted)
    }
    assert reads == [list(asked)]
