"""Seats: take, leave, lock, mute and free."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.models import User
from rooms import policy
from rooms.models import (
    Membership,
    Room,
    Seat,
)
from rooms.services._common import (
    Action,
    _audit,
    _lock_member,
    _lock_room,
    _participant_changed,
    _seat_changed,
    _seat_request_drop,
)
from voiceroom.errors import ApplicationError, Conflict, Forbidden


def _seat_row(room: Room, index: int) -> Seat:
    if not 0 <= index < room.seat_count:
        raise ApplicationError(
            f"Seat index must be from 0 to {room.seat_count - 1}."
            if room.seat_count
            else "This room has no seats.",
            code="invalid_seat",
        )
    return Seat.objects.select_for_update().get(room=room, index=index)


def _seat_assign(room: Room, membership: Membership, index: int | None) -> int:
    """seat_take's rules, on a locked room and member: the given seat, or the first free one.

    The room row is locked by the caller, so two members racing for one seat are served
    one after the other; the (room, seat) unique constraint is the last line of defence.
    """
    if not membership.active:
        raise Forbidden("You are not in this room.", code="not_a_member")
    if room.seat_count == 0:
        raise ApplicationError("This room has no seats.", code="invalid_seat")
    taken = set(
        Membership.objects.filter(room=room, seat__isnull=False).values_list("seat", flat=True)
    )
    locked = set(Seat.objects.filter(room=room, locked=True).values_list("index", flat=True))
    if index is None:
        if membership.seat is not None:
            return membership.seat
        free = [i for i in range(room.seat_count) if i not in taken and i not in locked]
        if not free:
            raise Conflict("No free seat.", code="no_free_seat")
        index = free[0]
    else:
        _seat_row(room, index)
        if membership.seat == index:
            return index
        if index in locked:
            raise Conflict("That seat is locked.", code="seat_locked")
        if index in taken:
            raise Conflict("That seat is taken.", code="seat_taken")
    old = membership.seat
    membership.seat = index
    try:
        with transaction.atomic():
            membership.save(update_fields=["seat", "updated_at"])
    except IntegrityError:
        membership.seat = old
        raise Conflict("That seat is taken.", code="seat_taken") from None
    if old is not None:
        _seat_changed(room, old)
    _seat_changed(room, index)
    _participant_changed(membership)
    return index


@transaction.atomic
def seat_take(*, room: Room, user: User, index: int | None = None) -> int:
    """Sit on the given seat, or the first free unlocked one. Exactly one of two racers wins.

    Refusals: `invalid_seat` (no such seat), `seat_locked`, `seat_taken`, `no_free_seat`,
    `not_a_member`. A pending seat request of the member is cancelled (reason `seated`).
    """
    room = _lock_room(room.pk)
    membership = _lock_member(room, user.pk)
    seat = _seat_assign(room, membership, index)
    _seat_request_drop(room, membership.user_id, reason="seated")
    return seat


@transaction.atomic
def seat_leave(*, room: Room, user: User) -> None:
    room = _lock_room(room.pk)
    membership = _lock_member(room, user.pk)
    if membership.seat is None:
        raise Conflict("You are not on a seat.", code="not_seated")
    old = membership.seat
    membership.seat = None
    membership.save(update_fields=["seat", "updated_at"])
    _seat_changed(room, old)
    _participant_changed(membership)


@transaction.atomic
def seat_lock(*, room: Room, actor: policy.Actor, index: int, locked: bool) -> None:
    room = _lock_room(room.pk)
    policy.require_moderator(room=room, actor=actor)
    seat = _seat_row(room, index)
    if seat.locked == locked:
        return
    seat.locked = locked
    seat.save(update_fields=["locked"])
    if locked:
        holder = (
            Membership.objects.select_for_update()
            .select_related("user")
            .filter(room=room, seat=index)
            .first()
        )
        if holder is not None:
            holder.seat = None
            holder.save(update_fields=["seat", "updated_at"])
            _participant_changed(holder)
    _audit(
        room=room,
        actor=actor,
        action=Action.SEAT_LOCK if locked else Action.SEAT_UNLOCK,
        detail={"index": index},
    )
    _seat_changed(room, index)


@transaction.atomic
def seat_mute(*, room: Room, actor: policy.Actor, index: int, muted: bool) -> None:
    room = _lock_room(room.pk)
    policy.require_moderator(room=room, actor=actor)
    seat = _seat_row(room, index)
    if seat.muted == muted:
        return
    seat.muted = muted
    seat.save(update_fields=["muted"])
    _audit(
        room=room,
        actor=actor,
        action=Action.SEAT_MUTE if muted else Action.SEAT_UNMUTE,
        detail={"index": index},
    )
    _seat_changed(room, index)


@transaction.atomic
def seat_remove(*, room: Room, actor: policy.Actor, user_id: int) -> None:
    """A moderator takes a member off their seat."""
    room = _lock_room(room.pk)
    target = _lock_member(room, user_id)
    policy.require_moderator(room=room, actor=actor, target=target)
    if target.seat is None:
        raise Conflict("That member is not on a seat.", code="not_seated")
    old = target.seat
    target.seat = None
    target.save(update_fields=["seat", "updated_at"])
    _audit(
        room=room, actor=actor, target=target.user, action=Action.SEAT_REMOVE, detail={"index": old}
    )
    _seat_changed(room, old)
    _participant_changed(target)
