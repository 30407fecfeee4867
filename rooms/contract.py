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
