"""The event stream is complete: a `welcome` plus the events that follow it equals a
fresh `welcome` (in the style of Zulip's `verify_action`).

A client keeps its picture of the room by applying events to its `welcome`. If some
change forgot its event, the picture drifts from the truth, and only a reconnect shows
it. Each test below makes a change through the services, applies what the room's
owner was sent to the owner's `welcome` with a reducer written here from
docs/protocol.md, and compares with the `welcome` the owner would get now.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from rooms import events, services
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def apply(state: dict, event: dict) -> None:
    """What a client does with each event it gets (docs/protocol.md)."""
    kind = event["type"]
    people = state["participants"]
    if kind in ("participant.joined", "participant.updated"):
        new = event["participant"]
        state["participants"] = [p for p in people if p["user_id"] != new["user_id"]] + [new]
        if new["user_id"] == state["you"]["user_id"]:
            state["you"] = new
    elif kind == "participant.left":
        state["participants"] = [p for p in people if p["user_id"] != event["user_id"]]
    elif kind == "seat.updated":
        seats, index = state["seats"], event["seat"]["index"]
        if index >= state["room"]["seat_count"]:
            return  # a seat that a smaller seat_count removed: freed, then gone
        seats.extend([None] * (index + 1 - len(seats)))  # a seat that seat_count added
        seats[index] = event["seat"]
    elif kind == "room.updated":
        state["room"] = event["room"]
        # Seats appear or go with seat_count; each new one also gets its seat.updated.
        del state["seats"][event["room"]["seat_count"] :]
    elif kind == "seat.requested":
        state["seat_requests"].append(event["request"])
    elif kind in ("seat.request.resolved", "seat.request.cancelled"):
        state["seat_requests"] = [
            r for r in state["seat_requests"] if r["user_id"] != event["user_id"]
        ]


def comparable(welcome: dict) -> dict:
    """A welcome without what differs between two connections by design (the session
    and its resume token), participants in one order, and the online count (which a
    client reads from the participants: no event carries it)."""
    state = copy.deepcopy(welcome)
    for key in ("session", "resumed", "type"):
        state.pop(key, None)
    state["participants"] = sorted(state["participants"], key=lambda p: p["user_id"])
    assert state["room"].pop("online_count", None) is not None
    return state


class Room:
    """A room with its owner connected, and what each of its members was sent."""

    def __init__(self, monkeypatch, capture) -> None:
        self.sent: list[tuple[str, dict]] = []
        self._capture = capture

        async def record(group, message, **_):
            self.sent.append((group, message))

        monkeypatch.setattr(events, "agroup_send", record)
        self.room = RoomFactory(seat_count=4)
        self.owner = self.room.owner
        self.sessions: dict[int, str] = {}

    def connect(self, user) -> dict:
        with self._capture(execute=True):
            result = services.participant_connect(
                room_id=self.room.pk,
                user_id=user.pk,
                resume_session=None,
                node="n1",
                channel=f"c{user.pk}",
            )
        assert result.welcome is not None, result.reason
        self.sessions[user.pk] = result.session.session_id
        return result.welcome

    def member(self):
        user = UserFactory()
        with self._capture(execute=True):
            services.member_join(room=self.room, user=user)
        self.connect(user)
        return user

    def to_owner(self) -> list[dict]:
        mine = {events.room_group(self.room.pk), events.member_group(self.room.pk, self.owner.pk)}
        return [message for group, message in self.sent if group in mine]

    def verify(self, action: Callable[[], object]) -> list[dict]:
        """Run `action`; the owner's welcome plus what the owner was sent equals the
        welcome the owner would get now."""
        before = self.connect(self.owner)
        self.sent.clear()
        with self._capture(execute=True):
            action()
        got = self.to_owner()
        state = copy.deepcopy(before)
        for event in got:
            apply(state, event)
        self.room.refresh_from_db()
        after = self.connect(self.owner)
        assert comparable(state) == comparable(after), [e["type"] for e in got]
        return got


@pytest.fixture
def room(monkeypatch, django_capture_on_commit_callbacks):
    made = Room(monkeypatch, django_capture_on_commit_callbacks)
    made.connect(made.owner)
    return made


def test_a_member_joining_and_connecting(room):
    def join_and_connect():
        user = UserFactory()
        services.member_join(room=room.room, user=user)
        services.participant_connect(
            room_id=room.room.pk, user_id=user.pk, resume_session=None, node="n", channel="x"
        )

    room.verify(join_and_connect)


def test_leaving(room):
    bob = room.member()
    room.verify(lambda: services.seat_take(room=room.room, user=bob, index=1))
    room.verify(lambda: services.member_leave(room=room.room, user=bob))


def test_a_dropped_socket_and_its_timeout(room):
    bob = room.member()
    room.verify(
        lambda: services.participant_disconnect(
            room_id=room.room.pk, user_id=bob.pk, channel=f"c{bob.pk}", seq=0
        )
    )
    room.verify(
        lambda: services.participant_timeout(
            room_id=room.room.pk, user_id=bob.pk, session_id=room.sessions[bob.pk]
        )
    )


def test_seats_taken_left_locked_and_muted(room):
    bob = room.member()
    room.verify(lambda: services.seat_take(room=room.room, user=bob, index=2))
    room.verify(lambda: services.seat_mute(room=room.room, actor=room.owner, index=2, muted=True))
    room.verify(lambda: services.seat_leave(room=room.room, user=bob))
    room.verify(lambda: services.seat_take(room=room.room, user=bob, index=0))
    room.verify(lambda: services.seat_lock(room=room.room, actor=room.owner, index=0, locked=True))
    room.verify(lambda: services.seat_take(room=room.room, user=bob, index=3))
    room.verify(lambda: services.seat_remove(room=room.room, actor=room.owner, user_id=bob.pk))


def test_mutes_self_mutes_and_mute_all(room):
    bob = room.member()
    room.verify(
        lambda: services.member_mute(room=room.room, actor=room.owner, user_id=bob.pk, muted=True)
    )
    room.verify(
        lambda: services.participant_self_mute(
            room_id=room.room.pk, user_id=bob.pk, session_id=room.sessions[bob.pk], muted=True
        )
    )
    room.member()
    room.verify(lambda: services.room_mute_all(room=room.room, actor=room.owner, muted=True))
    room.verify(lambda: services.room_mute_all(room=room.room, actor=room.owner, muted=False))


def test_role_changes(room):
    bob = room.member()
    room.verify(
        lambda: services.member_set_role(
            room=room.room, actor=room.owner, user_id=bob.pk, role="admin"
        )
    )
    room.verify(
        lambda: services.member_set_role(
            room=room.room, actor=room.owner, user_id=bob.pk, role="member"
        )
    )


def test_kick_and_ban(room):
    bob, carol = room.member(), room.member()
    room.verify(lambda: services.seat_take(room=room.room, user=bob, index=1))
    room.verify(lambda: services.member_kick(room=room.room, actor=room.owner, user_id=bob.pk))
    room.verify(lambda: services.member_ban(room=room.room, actor=room.owner, user_id=carol.pk))


def test_room_changes_including_seat_count(room):
    bob = room.member()
    room.verify(lambda: services.seat_take(room=room.room, user=bob, index=3))
    room.verify(
        lambda: services.room_update(room=room.room, actor=room.owner, name="New", topic="t")
    )
    room.verify(lambda: services.room_update(room=room.room, actor=room.owner, seat_count=2))
    room.verify(lambda: services.room_update(room=room.room, actor=room.owner, seat_count=6))


def test_seat_requests_made_cancelled_refused_and_accepted(room):
    bob, carol = room.member(), room.member()
    room.verify(lambda: services.seat_request_create(room=room.room, user=bob, index=1))
    room.verify(lambda: services.seat_request_cancel(room=room.room, user=bob))
    room.verify(lambda: services.seat_request_create(room=room.room, user=bob))
    room.verify(lambda: services.seat_request_create(room=room.room, user=carol, index=2))
    room.verify(
        lambda: services.seat_request_refuse(room=room.room, actor=room.owner, user_id=bob.pk)
    )
    room.verify(
        lambda: services.seat_request_accept(room=room.room, actor=room.owner, user_id=carol.pk)
    )
    # A request goes when its member leaves.
    room.verify(lambda: services.seat_request_create(room=room.room, user=bob))
    room.verify(lambda: services.member_leave(room=room.room, user=bob))


def test_the_check_notices_a_missing_event(room, monkeypatch):
    """The comparison is not vacuous: with participant.updated lost, a mute drifts."""
    bob = room.member()
    monkeypatch.setattr(events, "participant_updated", lambda *args, **kwargs: None)
    with pytest.raises(AssertionError):
        room.verify(
            lambda: services.member_mute(
                room=room.room, actor=room.owner, user_id=bob.pk, muted=True
            )
        )
