"""The wire, said once: close codes and the shapes of what the server sends.

Every layer imports its codes and payload shapes from here; nothing else defines them
(the JavaScript SDK's `CLOSE` table is checked against `CloseCode` by a test).

One person in a room has one name per layer:
- *member*: the database row (`rooms.models.Membership`): joined through REST, with a
  role, a mute, a ban, a seat;
- *participant*: who is in the room now, connected or inside the resume window
  (`realtime.presence.Session` holds their live state; `Participant` below is how the
  wire shows them).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal, TypedDict


class CloseCode(IntEnum):
    """WebSocket close codes the server sends (docs/protocol.md, "Close codes")."""

    NORMAL = 1000  # the client's own clean `leave`
    MESSAGE_TOO_BIG = 1009  # a message over the server's limit, refused before buffering
    SERVICE_RESTART = 1012  # uvicorn draining on shutdown: resume elsewhere at once
    LEFT = 4000  # left through REST
    AUTH_FAILED = 4001
    FORBIDDEN = 4003  # not a member, or banned
    UNKNOWN_ROOM = 4004
    POLICY = 4008  # persistent flooding or oversized frames
    ROOM_FULL = 4009
    KICKED = 4010
    ROOM_CLOSED = 4011
    REPLACED = 4012  # the same user connected to the same room again
    DRAINING = 4013  # daphne's stand-in for 1012
    TOO_SLOW = 4014  # the socket stopped taking data: resume when reading again
    TOO_MANY_SOCKETS = 4029
    UNAVAILABLE = 4503  # the database or Redis is down: try again shortly


# After these, reconnecting cannot help: clients stop (the SDK's FINAL_CLOSE_CODES).
FINAL_CLOSE_CODES = frozenset(
    {
        CloseCode.LEFT,
        CloseCode.FORBIDDEN,
        CloseCode.UNKNOWN_ROOM,
        CloseCode.ROOM_FULL,
        CloseCode.KICKED,
        CloseCode.ROOM_CLOSED,
        CloseCode.REPLACED,
        CloseCode.TOO_MANY_SOCKETS,
    }
)


# --- payloads: what the wire carries ---------------------------------------------------
# Built once, in rooms.selectors (room_dict, participant_dict, seat_dict,
# seat_request_dict); rooms.api.serializers derives the REST serializers (and so the
# OpenAPI schema) from these declarations, so a shape is written here and nowhere else.


class User(TypedDict):
    id: int
    username: str
    display_name: str


class Room(TypedDict):
    id: int
    name: str
    topic: str
    owner: User
    status: str
    capacity: int
    seat_count: int
    codec: str
    is_private: bool
    online_count: int
    created_at: str
    recording: bool


class Participant(TypedDict):
    """A member who is in the room now (connected, or inside the resume window)."""

    user_id: int
    username: str
    display_name: str
    role: str
    muted: bool
    self_muted: bool
    seat: int | None
    connected: bool


class Seat(TypedDict):
    index: int
    user_id: int | None
    locked: bool
    muted: bool


class SeatRequest(TypedDict):
    user_id: int
    index: int | None
    ts: str


# --- server -> client events (docs/protocol.md) -----------------------------------------


class SessionInfo(TypedDict):
    resume_token: str
    resume_window_s: int


class Welcome(TypedDict):
    type: Literal["welcome"]
    room: Room
    you: Participant
    participants: list[Participant]
    seats: list[Seat]
    seat_requests: list[SeatRequest]
    session: SessionInfo
    resumed: bool


class ParticipantJoined(TypedDict):
    type: Literal["participant.joined"]
    participant: Participant


class ParticipantUpdated(TypedDict):
    type: Literal["participant.updated"]
    participant: Participant


class ParticipantLeft(TypedDict):
    type: Literal["participant.left"]
    user_id: int
    reason: str


class SeatUpdated(TypedDict):
    type: Literal["seat.updated"]
    seat: Seat


class RoomUpdated(TypedDict):
    type: Literal["room.updated"]
    room: Room


class RoomClosed(TypedDict):
    type: Literal["room.closed"]


class SeatRequested(TypedDict):
    type: Literal["seat.requested"]
    request: SeatRequest


class SeatRequestResolved(TypedDict, total=False):
    type: Literal["seat.request.resolved"]
    user_id: int
    accepted: bool
    index: int | None  # only when accepted


class SeatRequestCancelled(TypedDict):
    type: Literal["seat.request.cancelled"]
    user_id: int
    reason: str
