"""What each client text frame does, once it is valid and has passed its guards.

A handler is `async (socket, data) -> None`: `data` is what the frame's validator
returned (rooms.ws.frames.FRAMES). Handlers call a service, the relay or rooms.events;
they decide nothing about who may (the services check that with rooms.policy).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from channels.db import database_sync_to_async

from accounts.models import User
from realtime.relay import Endpoint, Relay
from realtime.tap import FrameTap
from rooms import contract, events, services
from rooms.models import Room


class Socket(Protocol):
    """What a handler (and a guard) may use of the socket: rooms.ws.consumer.RoomConsumer."""

    room_id: int
    user_id: int
    session_id: str
    endpoint: Endpoint | None
    relay: Relay
    tap: FrameTap  # report evidence keeps the member's chat too
    left_cleanly: bool
    leaving_by_frame: bool

    async def send_json(self, message: dict[str, Any]) -> None: ...

    async def room(self) -> Room: ...

    async def user(self) -> User: ...

    def apply_participant(self, participant: contract.Participant) -> None: ...


Handler = Callable[[Socket, dict[str, Any]], Awaitable[None]]


async def ping(socket: Socket, data: dict[str, Any]) -> None:
    await socket.send_json({"type": "pong", "ts": events._now()})


async def chat(socket: Socket, data: dict[str, Any]) -> None:
    await events.achat(socket.room_id, socket.user_id, data["text"])
    socket.tap.evidence.said(socket.room_id, socket.user_id, data["text"])


async def whisper(socket: Socket, data: dict[str, Any]) -> None:
    await events.awhisper(socket.room_id, socket.user_id, data["to"], data["text"])


async def voice_target(socket: Socket, data: dict[str, Any]) -> None:
    if socket.endpoint is not None:
        socket.endpoint.target = data["to"]


async def mute_self(socket: Socket, data: dict[str, Any]) -> None:
    participant = await database_sync_to_async(services.participant_self_mute)(
        room_id=socket.room_id,
        user_id=socket.user_id,
        session_id=socket.session_id,
        muted=data["muted"],
    )
    if participant is not None:
        socket.apply_participant(participant)


async def leave(socket: Socket, data: dict[str, Any]) -> None:
    # Set before the service runs: its member.close may arrive before it returns.
    socket.left_cleanly = socket.leaving_by_frame = True
    try:
        await database_sync_to_async(services.member_leave)(
            room=await socket.room(), user=await socket.user()
        )
    except BaseException:
        socket.left_cleanly = socket.leaving_by_frame = False  # still in the room
        raise


async def moderate(socket: Socket, data: dict[str, Any]) -> None:
    # The validator's actions (frames.MODERATE_ACTIONS) are keys of MODERATION_ACTS.
    room, actor = await socket.room(), await socket.user()
    await database_sync_to_async(services.moderate)(
        room=room,
        actor=actor,
        act=data["action"],
        user_id=data.get("user_id"),
        reason=data.get("reason", ""),
    )


def service(name: str, *, by: str = "user") -> Handler:
    """A handler that calls `services.<name>(room=, <by>=the socket's user, **data)`.

    `by` is "user" for acts on oneself (seat.take) and "actor" for acts on others or the
    room (seat.lock). The service is looked up in the package when the frame arrives, so
    a service replaced there (tests) is the one called.
    """

    async def handle(socket: Socket, data: dict[str, Any]) -> None:
        call = getattr(services, name)
        room, user = await socket.room(), await socket.user()
        await database_sync_to_async(call)(room=room, **{by: user}, **data)

    handle.__name__ = handle.__qualname__ = f"service_{name}"
    return handle
