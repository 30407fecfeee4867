"""What a socket must pass before a frame is handled, and what gates its voice.

- `Flood`: the text-frame rate (TEXT_RATE, TEXT_BURST) and the abuse budget that refused
  frames spend (ABUSE_REFILL, ABUSE_BUDGET); a client that exhausts it is closed 4008.
  The size limits are checked where a frame is read (rooms.ws.frames.parse_text_frame)
  and, for voice, by the relay (realtime.relay / realtime.limits).
- `over_socket_limit`: VOICEROOM_MAX_SOCKETS_PER_USER on this node.
- `target_in_room`: a guard of the frame table (rooms.ws.frames.FRAMES) for frames that
  name another participant (`whisper`, `voice.target`).
- `SpeakState`: the voice gate, rooms.policy.may_speak on this socket's latest state.

Roles (who may lock a seat, moderate...) are not checked here: the services do it with
rooms.policy, whichever face (REST, socket, admin) calls them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from realtime.limits import (
    ABUSE_BUDGET,
    ABUSE_REFILL,
    TEXT_BURST,
    TEXT_RATE,
    Bucket,
)
from realtime.relay import Relay
from rooms import contract, policy
from rooms.ws.errors import FrameError

if TYPE_CHECKING:
    from rooms.ws.handlers import Socket


class Flood:
    """One socket's text-frame rate and its abuse budget (time.monotonic() clocks)."""

    def __init__(self) -> None:
        now = time.monotonic()
        self.text = Bucket(TEXT_RATE, TEXT_BURST, now)
        self.abuse = Bucket(ABUSE_REFILL, ABUSE_BUDGET, now)

    def text_allowed(self) -> bool:
        """Take one text frame from the rate; False: refuse it (and spend abuse budget)."""
        return self.text.take(time.monotonic())

    def refusal_allowed(self, cost: float) -> bool:
        """Spend `cost` of the abuse budget on a refusal; False: the budget is gone, close."""
        return self.abuse.take(time.monotonic(), cost)


def over_socket_limit(relay: Relay, limit: int, room_id: int, user_id: int) -> bool:
    """`limit` sockets per user on this node, over all rooms (0: no limit); a socket that
    will replace this user's socket in this room (a resume, a reconnect) does not count."""
    if not limit:
        return False
    others = relay.sockets_of(user_id) - (relay.local(room_id, user_id) is not None)
    return others >= limit


async def target_in_room(socket: Socket, data: dict[str, Any]) -> None:
    """The participant named by `to` (if any) is someone else, in this room now."""
    user_id = data.get("to")
    if user_id is None:
        return
    if user_id == socket.user_id:
        raise FrameError("invalid_target", "You cannot target yourself.")
    if socket.relay.local(socket.room_id, user_id) is None:
        from realtime import presence

        session = await database_sync_to_async(presence.store().get)(socket.room_id, user_id)
        if session is None:
            raise FrameError("not_in_room", "That user is not in this room.")


class SpeakState:
    """What decides whether this socket's voice is relayed; kept current by events."""

    def __init__(
        self, you: contract.Participant, seat_count: int, seats: list[contract.Seat]
    ) -> None:
        """From the socket's `welcome`: its `you`, `room.seat_count` and `seats`."""
        self.seat_count = seat_count
        self.muted = you["muted"]
        self.self_muted = you["self_muted"]
        self.seat = you["seat"]
        self.seat_muted = {s["index"]: s["muted"] for s in seats}

    def participant_update(self, participant: contract.Participant) -> None:
        self.muted = participant["muted"]
        self.self_muted = participant["self_muted"]
        self.seat = participant["seat"]

    def seat_update(self, seat: contract.Seat) -> None:
        self.seat_muted[seat["index"]] = seat["muted"]

    def can_speak(self) -> bool:
        return policy.may_speak(
            muted=self.muted,
            self_muted=self.self_muted,
            seat=self.seat,
            seat_count=self.seat_count,
            seat_muted=self.seat is not None and self.seat_muted.get(self.seat, False),
        )
