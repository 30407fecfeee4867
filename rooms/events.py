"""The one place that broadcasts.

Services call these after their transaction commits (`transaction.on_commit`); the
consumer calls the async forms for things that never touch the database (chat). Every
message goes through the channel layer to a group named from ids only:

  room.{room_id}              every socket in the room, on every node
  member.{room_id}.{user_id}  the sockets of one member in one room, wherever they are

Seat-request events go to the room's moderators only (`to_moderators`: the member group
of each owner and admin in the room) and to the member the request is about.

A message's `type` is the client-facing event type (`participant.joined`), which
Channels dispatches to the consumer method of the same name with dots as underscores
(`participant_joined`). Types under `member.` are commands to a socket, not events.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from redis.exceptions import TimeoutError as RedisTimeoutError

from rooms import contract, selectors
from rooms.models import Room

logger = logging.getLogger(__name__)

# How long a sender's chat or whisper may wait on the channel layer. The socket's later
# frames, voice included, wait behind it (the consumer keeps a client's frames in order),
# so a Redis that hangs or fails over must not hold them longer than this; the sender
# gets `service_unavailable` instead. A healthy PUBLISH takes well under a millisecond.
STRICT_SEND_TIMEOUT_S = 0.5


def room_group(room_id: int) -> str:
    return f"room.{int(room_id)}"


def member_group(room_id: int, user_id: int) -> str:
    return f"member.{int(room_id)}.{int(user_id)}"


async def agroup_send(group: str, message: dict[str, Any], *, strict: bool = False) -> None:
    """Send to a group. A failure is logged, not raised, so a dead Redis cannot fail the
    write that caused the event; with `strict` (the event IS the act: chat, whisper) it
    is raised, so the sender learns the message did not go out."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if strict:
            try:
                await asyncio.wait_for(layer.group_send(group, message), STRICT_SEND_TIMEOUT_S)
            except TimeoutError:
                raise RedisTimeoutError(f"group_send to {group} timed out") from None
        else:
            await layer.group_send(group, message)
    except Exception:
        if strict:
            raise
        logger.exception("group_send to %s failed", group)


def _send_now(group: str, message: dict[str, Any]) -> None:
    async_to_sync(agroup_send)(group, message)


def _after_commit(group: str, message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _send_now(group, message))


async def _agroups_send(groups: list[str], message: dict[str, Any]) -> None:
    for group in groups:
        await agroup_send(group, message)


def _after_commit_many(groups: list[str], message: dict[str, Any]) -> None:
    """One thread hop after commit for several groups, not one per group."""
    if groups:
        transaction.on_commit(lambda: async_to_sync(_agroups_send)(groups, message))


# Events to every socket of a room.


def participant_joined(room_id: int, participant: contract.Participant) -> None:
    _after_commit(room_group(room_id), {"type": "participant.joined", "participant": participant})


def participant_left(room_id: int, user_id: int, reason: str) -> None:
    _after_commit(
        room_group(room_id), {"type": "participant.left", "user_id": user_id, "reason": reason}
    )


def participant_updated(room_id: int, participant: contract.Participant) -> None:
    _after_commit(room_group(room_id), {"type": "participant.updated", "participant": participant})


def seat_updated(room_id: int, seat: contract.Seat) -> None:
    _after_commit(room_group(room_id), {"type": "seat.updated", "seat": seat})


def room_updated(room: Room) -> None:
    """The payload is built after commit: its online count is a presence (Redis) round
    trip, which must not run inside a transaction that holds the room's row lock."""
    group = room_group(room.pk)
    transaction.on_commit(
        lambda: _send_now(group, {"type": "room.updated", "room": selectors.room_dict(room)})
    )


def recording_control(room_id: int, message: dict[str, Any]) -> None:
    """Start or stop recording on every node with sockets in the room (consumers handle
    it; clients see the room's `recording` through `room.updated`)."""
    _after_commit(room_group(room_id), message)


def room_closed(room_id: int) -> None:
    _after_commit(room_group(room_id), {"type": "room.closed"})


# Events to the moderators of a room (and to the member concerned).


def to_moderators(room_id: int, message: dict[str, Any], *, also: int | None = None) -> None:
    """Send to the member group of every moderator (owner, admin) now in the room.

    The moderators are looked up now, inside the caller's transaction; the message goes
    out after it commits. `also` adds one more member (the requester of a seat).
    """
    user_ids = set(selectors.moderator_user_ids(room_id=room_id))
    if also is not None:
        user_ids.add(also)
    _after_commit_many([member_group(room_id, uid) for uid in sorted(user_ids)], message)


def seat_requested(room_id: int, user_id: int, request: contract.SeatRequest) -> None:
    to_moderators(room_id, {"type": "seat.requested", "request": request}, also=user_id)


def seat_request_resolved(
    room_id: int, user_id: int, *, accepted: bool, index: int | None = None
) -> None:
    message: dict[str, Any] = {
        "type": "seat.request.resolved",
        "user_id": user_id,
        "accepted": accepted,
    }
    if accepted:
        message["index"] = index
    to_moderators(room_id, message, also=user_id)


def seat_request_cancelled(room_id: int, user_id: int, reason: str) -> None:
    """The request is gone without a decision: withdrawn, or its member left or sat down."""
    to_moderators(
        room_id,
        {"type": "seat.request.cancelled", "user_id": user_id, "reason": reason},
        also=user_id,
    )


async def achat(room_id: int, sender_id: int, text: str) -> None:
    await agroup_send(
        room_group(room_id),
        {"type": "chat", "from": sender_id, "text": text, "ts": _now()},
        strict=True,
    )


async def awhisper(room_id: int, sender_id: int, to_id: int, text: str) -> None:
    message = {"type": "whisper", "from": sender_id, "to": to_id, "text": text, "ts": _now()}
    await agroup_send(member_group(room_id, to_id), message, strict=True)
    await agroup_send(member_group(room_id, sender_id), message, strict=True)


# Commands to the sockets of one member.


def member_close(room_id: int, user_id: int, code: int, reason: str = "") -> None:
    """Close the member's socket in the room, on whichever node holds it."""
    _after_commit(
        member_group(room_id, user_id), {"type": "member.close", "code": code, "reason": reason}
    )


async def amember_replace(room_id: int, user_id: int, new_channel: str) -> None:
    """A newer socket of the same member took over: the older one closes with 4012."""
    await agroup_send(
        member_group(room_id, user_id), {"type": "member.replace", "channel": new_channel}
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
