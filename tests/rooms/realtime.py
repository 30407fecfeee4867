"""Helpers for socket tests: members, tickets and connected WebsocketCommunicators."""

from __future__ import annotations

import itertools
import json

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.models import User
from rooms import services
from rooms.models import Room
from voiceroom.asgi import application

_names = itertools.count(1)


def make_user(name: str | None = None, **extra) -> User:
    name = name or f"user{next(_names)}"
    return User.objects.create_user(username=name, password="a-Long-pass-123", **extra)


@database_sync_to_async
def a_room(*, seat_count: int = 0, capacity: int = 50, owner: User | None = None) -> Room:
    owner = owner or make_user()
    return services.room_create(owner=owner, name="Room", seat_count=seat_count, capacity=capacity)


@database_sync_to_async
def a_member(room: Room, name: str | None = None) -> tuple[User, str]:
    user = make_user(name)
    result = services.member_join(room=room, user=user)
    return user, result.ticket


@database_sync_to_async
def owner_ticket(room: Room) -> str:
    return services.member_join(room=room, user=room.owner).ticket


class Client:
    """A connected socket that has read its welcome."""

    def __init__(self, comm: WebsocketCommunicator, welcome: dict, user_id: int) -> None:
        self.comm = comm
        self.welcome = welcome
        self.user_id = user_id

    async def send(self, **message) -> None:
        await self.comm.send_to(text_data=json.dumps(message))

    async def voice(self, payload: bytes) -> None:
        await self.comm.send_to(bytes_data=payload)

    async def event(self, timeout: float = 2.0) -> dict:
        """The next text event (binary frames in between are an error)."""
        out = await self.comm.receive_output(timeout)
        assert out["type"] == "websocket.send", out
        assert out.get("text") is not None, f"expected text, got binary {out.get('bytes')!r}"
        # A real server sends text frames as UTF-8; one it cannot encode never arrives.
        out["text"].encode("utf-8")
        return json.loads(out["text"])

    async def event_of(self, kind: str, timeout: float = 2.0) -> dict:
        """Skip events until one of `kind` arrives."""
        for _ in range(50):
            event = await self.event(timeout)
            if event["type"] == kind:
                return event
        raise AssertionError(f"no {kind} event")

    async def event_where(self, kind: str, test, timeout: float = 2.0) -> dict:
        """Skip events until one of `kind` for which `test(event)` is true arrives."""
        for _ in range(50):
            event = await self.event_of(kind, timeout)
            if test(event):
                return event
        raise AssertionError(f"no matching {kind} event")

    async def frame(self, timeout: float = 2.0) -> bytes:
        """The next binary frame, skipping text events."""
        for _ in range(50):
            out = await self.comm.receive_output(timeout)
            if out["type"] == "websocket.close":
                raise AssertionError(f"socket closed with {out.get('code')}")
            if out.get("bytes") is not None:
                return out["bytes"]
        raise AssertionError("no binary frame")

    async def frames(self, timeout: float = 0.3) -> list[bytes]:
        """Every binary frame that arrives until the socket is quiet for `timeout`."""
        got = []
        # receive_nothing, unlike a timed-out receive_output, leaves the application running.
        while not await self.comm.receive_nothing(timeout):
            out = await self.comm.receive_output(1)
            if out.get("bytes") is not None:
                got.append(out["bytes"])
        return got

    async def nothing(self, timeout: float = 0.3) -> None:
        assert await self.comm.receive_nothing(timeout), "expected nothing"

    async def closed(self, timeout: float = 2.0) -> int:
        """Skip events until the server closes the socket; return the close code."""
        for _ in range(50):
            out = await self.comm.receive_output(timeout)
            if out["type"] == "websocket.close":
                return out.get("code", 1000)
        raise AssertionError("socket not closed")

    async def disconnect(self) -> None:
        await self.comm.disconnect()


def communicator(room_id: int, query: str = "", headers=None) -> WebsocketCommunicator:
    path = f"/ws/rooms/{room_id}/" + (f"?{query}" if query else "")
    return WebsocketCommunicator(application, path, headers=headers or [])


async def connect(room_id: int, ticket: str, user_id: int) -> Client:
    comm = communicator(room_id, f"ticket={ticket}")
    connected, _ = await comm.connect()
    assert connected
    out = await comm.receive_output(3)
    assert out["type"] == "websocket.send" and out.get("text"), out
    welcome = json.loads(out["text"])
    assert welcome["type"] == "welcome", welcome
    return Client(comm, welcome, user_id)


async def refused(room_id: int, query: str = "", headers=None) -> int:
    """Connect and return the close code the server answers with after accepting."""
    comm = communicator(room_id, query, headers)
    connected, _ = await comm.connect()
    assert connected, "refusals must come after the handshake"
    out = await comm.receive_output(3)
    assert out["type"] == "websocket.close", out
    await comm.wait(1)
    return out["code"]
