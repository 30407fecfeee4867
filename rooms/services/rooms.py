"""Rooms: create, change, close and open."""

from __future__ import annotations

import enum
import functools
from typing import Final

from django.db import transaction

from accounts.models import User
from realtime import presence
from rooms import events, policy, selectors
from rooms.models import (
    CAPACITY_MAX,
    CAPACITY_MIN,
    SEATS_MAX,
    SEATS_MIN,
    Membership,
    Room,
    Seat,
    SeatRequest,
)
from rooms.services._common import (
    Action,
    Role,
    _actor_id,
    _audit,
    _check_range,
    _ensure_seats,
    _lock_room,
    _participant_changed,
    _seat_changed,
    _seat_request_drop,
)
from rooms.services.placement import room_unplace
from rooms.services.recording import recording_end_with_room
from webhooks.services import record_event


@transaction.atomic
def room_create(
    *,
    owner: User,
    name: str,
    topic: str = "",
    capacity: int = 50,
    seat_count: int = 8,
    password: str | None = None,
    codec: str = Room.Codec.OPUS,
) -> Room:
    _check_range("capacity", capacity, CAPACITY_MIN, CAPACITY_MAX)
    _check_range("seat_count", seat_count, SEATS_MIN, SEATS_MAX)
    # full_clean refuses a codec outside Room.Codec; room_update has no codec argument,
    # so a room keeps the codec its clients were built around.
    room = Room(
        owner=owner,
        name=name,
        topic=topic or "",
        capacity=capacity,
        seat_count=seat_count,
        codec=codec,
    )
    room.set_password(password)
    room.full_clean(exclude=["password_hash"])
    room.save()
    _ensure_seats(room)
    Membership.objects.create(room=room, user=owner, role=Role.OWNER)
    _audit(room=room, actor=owner, action=Action.ROOM_CREATE)
    record_event("room.created", room.pk, {"name": room.name, "owner_id": owner.pk})
    return room


class _Unset(enum.Enum):
    """A typed "argument not given": `password=None` means "remove the password"."""

    UNSET = enum.auto()


_UNSET: Final = _Unset.UNSET


@transaction.atomic
def room_update(
    *,
    room: Room,
    actor: User,
    name: str | None = None,
    topic: str | None = None,
    capacity: int | None = None,
    seat_count: int | None = None,
    password: str | _Unset | None = _UNSET,
) -> Room:
    """Change a room's fields; the room's sockets get `room.updated`.

    Changing `seat_count` keeps every member whose seat still exists on it; members on
    seats that disappear are unseated, and each seat so freed gets a `seat.updated`
    (user_id null), as does each new seat. Removed seats forget their lock and mute, so
    they come back empty and open if the count grows again.
    """
    policy.require_moderator(room=room, actor=actor, permission=policy.CHANGE_ROOM)
    room = _lock_room(room.pk)
    changed: dict[str, object] = {}
    if name is not None:
        room.name = name
        changed["name"] = name
    if topic is not None:
        room.topic = topic
        changed["topic"] = topic
    if capacity is not None:
        room.capacity = _check_range("capacity", capacity, CAPACITY_MIN, CAPACITY_MAX)
        changed["capacity"] = capacity
    old_seats = room.seat_count
    if seat_count is not None:
        room.seat_count = _check_range("seat_count", seat_count, SEATS_MIN, SEATS_MAX)
        changed["seat_count"] = seat_count
    if password is not _UNSET:
        room.set_password(password or None)
        changed["password"] = "set" if password else "removed"
    room.full_clean(exclude=["password_hash"])
    room.save()
    if changed:
        _audit(room=room, actor=actor, action=Action.ROOM_UPDATE, detail=changed)
        # First, so that clients know the new seat count before the seat events.
        events.room_updated(room)
    if seat_count is not None and seat_count != old_seats:
        _seats_resized(room, old_seats)
    return room


def _seats_resized(room: Room, old_count: int) -> None:
    new_count = room.seat_count
    _ensure_seats(room)
    if new_count > old_count:
        for index in range(old_count, new_count):
            _seat_changed(room, index)
        return
    unseated = list(
        Membership.objects.select_for_update()
        .select_related("user")
        .filter(room=room, seat__gte=new_count)
        .order_by("seat")
    )
    freed = [m.seat for m in unseated if m.seat is not None]  # all of them (seat__gte)
    for membership in unseated:
        membership.seat = None
        membership.save(update_fields=["seat", "updated_at"])
    Seat.objects.filter(room=room, index__gte=new_count).update(locked=False, muted=False)
    for index in freed:
        seat = Seat.objects.get(room=room, index=index)
        events.seat_updated(room.pk, selectors.seat_dict(seat, None))
    for membership in unseated:
        _participant_changed(membership)
    if new_count == 0:
        for user_id in SeatRequest.objects.filter(room=room).values_list("user_id", flat=True):
            _seat_request_drop(room, user_id, reason="no_seats")


def _sessions_forget(room_id: int) -> None:
    store = presence.store()
    for session in store.sessions(room_id):
        store.remove(room_id, session.user_id)


@transaction.atomic
def room_close(*, room: Room, actor: policy.Actor) -> Room:
    """Close the room: every socket gets room.closed then close 4011; joins are refused."""
    policy.require_owner(room=room, actor=actor, permission=policy.CHANGE_ROOM)
    room = _lock_room(room.pk)
    if room.status == Room.Status.CLOSED:
        return room
    room.status = Room.Status.CLOSED
    recording_end_with_room(room)  # a recording ends with its room
    room.save(update_fields=["status", "recording", "updated_at"])
    Membership.objects.filter(room=room).exclude(seat=None).update(seat=None)
    Membership.objects.filter(room=room, active=True).update(active=False)
    # Every socket is about to close; the requests go without an event each.
    SeatRequest.objects.filter(room=room).delete()
    # Presence is outside the transaction: forget the sessions only once it commits.
    transaction.on_commit(functools.partial(_sessions_forget, room.pk))
    transaction.on_commit(functools.partial(room_unplace, room_id=room.pk))
    _audit(room=room, actor=actor, action=Action.ROOM_CLOSE)
    record_event("room.closed", room.pk, {"actor_id": _actor_id(actor)})
    events.room_updated(room)
    events.room_closed(room.pk)
    return room


@transaction.atomic
def room_open(*, room: Room, actor: policy.Actor) -> Room:
    policy.require_owner(room=room, actor=actor, permission=policy.CHANGE_ROOM)
    room = _lock_room(room.pk)
    if room.status == Room.Status.OPEN:
        return room
    room.status = Room.Status.OPEN
    room.save(update_fields=["status", "updated_at"])
    _audit(room=room, actor=actor, action=Action.ROOM_OPEN)
    record_event("room.opened", room.pk, {"actor_id": _actor_id(actor)})
    events.room_updated(room)
    return room
