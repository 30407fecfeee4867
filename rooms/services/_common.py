"""Helpers the service modules share: locks, the audit log, and the after-commit
notifications of a changed participant or seat."""

from __future__ import annotations

from django.db import transaction

from accounts.models import User
from realtime import presence
from rooms import events, policy, selectors
from rooms.models import (
    Membership,
    ModerationAction,
    Room,
    Seat,
    SeatRequest,
)
from voiceroom.errors import ApplicationError, NotFound
from webhooks.services import record_event

Role = Membership.Role


Action = ModerationAction.Action


def _audit(
    *,
    room: Room,
    actor: policy.Actor | None,
    action: str,
    target: User | None = None,
    reason: str = "",
    detail: dict | None = None,
) -> None:
    ModerationAction.objects.create(
        room=room,
        actor=actor if isinstance(actor, User) else None,  # SYSTEM: no actor on the row
        target=target,
        action=action,
        reason=reason,
        detail=detail or {},
    )


def _actor_id(actor: policy.Actor | None) -> int | None:
    """The acting user's id in webhook events; None for SYSTEM."""
    return actor.pk if isinstance(actor, User) else None


def _check_range(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApplicationError(f"{name} must be an integer from {low} to {high}.", code="invalid")
    return value


def _lock_room(room_id: int) -> Room:
    try:
        return Room.objects.select_for_update().select_related("owner").get(pk=room_id)
    except Room.DoesNotExist:
        raise NotFound("No such room.") from None


def _lock_member(room: Room, user_id: int) -> Membership:
    found = (
        Membership.objects.select_for_update()
        .select_related("user")
        .filter(room=room, user_id=user_id)
        .first()
    )
    if found is None:
        raise NotFound("No such member in this room.")
    return found


def _participant_changed(membership: Membership) -> None:
    """Tell the room a participant's stored state changed (role, mute, seat)."""
    session = presence.store().get(membership.room_id, membership.user_id)
    if session is not None:
        events.participant_updated(
            membership.room_id, selectors.participant_dict(membership, session)
        )


def _seat_changed(room: Room, index: int) -> None:
    if index < room.seat_count:
        events.seat_updated(room.pk, selectors.seat_get(room=room, index=index))


def _ensure_seats(room: Room) -> None:
    have = set(Seat.objects.filter(room=room).values_list("index", flat=True))
    Seat.objects.bulk_create(
        [Seat(room=room, index=i) for i in range(room.seat_count) if i not in have]
    )


def _end_presence(membership: Membership, *, reason: str, close_code: int | None) -> None:
    """The member is out of the room: free the seat, forget the session, tell everyone."""
    room = membership.room
    freed = membership.seat
    membership.seat = None
    membership.active = False
    membership.save(update_fields=["seat", "active", "muted", "banned", "ban_reason", "updated_at"])
    session = presence.store().get(room.pk, membership.user_id)
    presence_remove_on_commit(room.pk, membership.user_id)
    if close_code is not None:
        events.member_close(room.pk, membership.user_id, close_code, reason)
    if session is not None:
        events.participant_left(room.pk, membership.user_id, reason)
        record_event("participant.left", room.pk, {"user_id": membership.user_id, "reason": reason})
    if freed is not None:
        _seat_changed(room, freed)
    _seat_request_drop(room, membership.user_id, reason=reason)


def presence_remove_on_commit(room_id: int, user_id: int, session_id: str | None = None) -> None:
    """Forget the participant's session once the transaction commits.

    Presence lives in Redis (or this process), outside the database transaction:
    removed inside it, a rollback would leave the member active in the database but gone
    from the room. Registered before the events of the same change, it runs before they
    are sent, as it did when it ran in place.
    """
    transaction.on_commit(lambda: presence.store().remove(room_id, user_id, session_id))


def _seat_request_drop(room: Room, user_id: int, *, reason: str) -> bool:
    """Cancel the member's pending seat request, if any, and tell the moderators why."""
    deleted, _ = SeatRequest.objects.filter(room=room, user_id=user_id).delete()
    if deleted:
        events.seat_request_cancelled(room.pk, user_id, reason)
    return bool(deleted)
