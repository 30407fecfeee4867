"""Seat requests: a member asks for a seat; a moderator accepts or refuses."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.models import User
from rooms import events, policy, selectors
from rooms.models import (
    Membership,
    Room,
    SeatRequest,
)
from rooms.services._common import Action, _audit, _lock_member, _lock_room, _seat_request_drop
from rooms.services.seats import _seat_assign, _seat_row
from voiceroom.errors import ApplicationError, Conflict, Forbidden, NotFound


@transaction.atomic
def seat_request_create(*, room: Room, user: User, index: int | None = None) -> SeatRequest:
    """A member asks for a seat (a given one, or any); the moderators get `seat.requested`.

    Refusals: `not_a_member`, `invalid_seat` (no seats, or no such seat), `seat_locked`,
    `already_seated`, `seat_request_pending` (one pending request per member).
    """
    room = _lock_room(room.pk)
    membership = Membership.objects.select_for_update().filter(room=room, user_id=user.pk).first()
    if membership is None or not membership.active:
        raise Forbidden("You are not in this room.", code="not_a_member")
    if room.seat_count == 0:
        raise ApplicationError("This room has no seats.", code="invalid_seat")
    if index is not None and _seat_row(room, index).locked:
        raise Conflict("That seat is locked.", code="seat_locked")
    if membership.seat is not None:
        raise Conflict("You are already on a seat.", code="already_seated")
    if SeatRequest.objects.filter(room=room, user_id=user.pk).exists():
        raise Conflict("You already asked for a seat.", code="seat_request_pending")
    try:
        with transaction.atomic():
            request = SeatRequest.objects.create(room=room, user_id=user.pk, index=index)
    except IntegrityError:  # the room lock makes this unreachable; the constraint backs it
        raise Conflict("You already asked for a seat.", code="seat_request_pending") from None
    events.seat_requested(room.pk, user.pk, selectors.seat_request_dict(request))
    return request


@transaction.atomic
def seat_request_cancel(*, room: Room, user: User) -> None:
    """The member withdraws their request (`seat.request.cancelled`, reason `cancelled`)."""
    room = _lock_room(room.pk)
    if not _seat_request_drop(room, user.pk, reason="cancelled"):
        raise NotFound("You have no pending seat request.", code="no_seat_request")


@transaction.atomic
def seat_request_accept(
    *, room: Room, actor: policy.Actor, user_id: int, index: int | None = None
) -> Membership:
    """A moderator seats the requester, with seat_take's rules.

    The seat is `index`, else the one asked for, else the first free one. If the seat
    cannot be had (`seat_taken`, `seat_locked`, `no_free_seat`) the request stays pending.
    """
    room = _lock_room(room.pk)
    policy.require_moderator(room=room, actor=actor)
    request = SeatRequest.objects.select_for_update().filter(room=room, user_id=user_id).first()
    if request is None:
        raise NotFound("No pending seat request from that member.", code="no_seat_request")
    target = _lock_member(room, user_id)
    if index is None and request.index is not None and request.index < room.seat_count:
        index = request.index
    request.delete()
    seat = _seat_assign(room, target, index)
    _audit(
        room=room,
        actor=actor,
        target=target.user,
        action=Action.SEAT_REQUEST_ACCEPT,
        detail={"index": seat},
    )
    events.seat_request_resolved(room.pk, user_id, accepted=True, index=seat)
    return target


@transaction.atomic
def seat_request_refuse(*, room: Room, actor: policy.Actor, user_id: int) -> None:
    """A moderator turns the request down; requester and moderators get it resolved, false."""
    room = _lock_room(room.pk)
    policy.require_moderator(room=room, actor=actor)
    request = (
        SeatRequest.objects.select_for_update()
        .select_related("user")
        .filter(room=room, user_id=user_id)
        .first()
    )
    if request is None:
        raise NotFound("No pending seat request from that member.", code="no_seat_request")
    target = request.user
    request.delete()
    _audit(
        room=room,
        actor=actor,
        target=target,
        action=Action.SEAT_REQUEST_REFUSE,
        detail={"index": request.index},
    )
    events.seat_request_resolved(room.pk, user_id, accepted=False)
