"""Seats and moderation across real nodes: two server processes (daphne, then uvicorn)
sharing Redis and MySQL/MariaDB, real WebSocket clients (websockets).

The target of a moderation act is found through its member group wherever its socket
lives; two members on two nodes racing for one seat: exactly one gets it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import struct

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.live import Api, Node, base_env

pytestmark = [pytest.mark.processes, pytest.mark.redis, pytest.mark.mysql]

SERVERS = ["daphne", "uvicorn"]


@pytest.fixture(scope="module", params=SERVERS)
def cluster(request, live_db):
    env = base_env(
        DATABASE_URL=live_db,
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        VOICEROOM_REDIS_PREFIX=f"t{secrets.token_hex(3)}",
    )
    nodes = [Node(request.param, env) for _ in range(2)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


class Member:
    """A real socket that keeps every text event it has read, so none is lost to a wait."""

    def __init__(self, ws, welcome: dict, user: dict, api: Api) -> None:
        self.ws = ws
        self.welcome = welcome
        self.id = user["id"]
        self.api = api
        self.inbox: list[dict] = []
        self.frames: list[bytes] = []

    async def send(self, **frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def wait(self, kind: str, where=None, timeout: float = 5) -> dict:
        """The first event of `kind` (matching `where`) read so far or arriving next."""

        def match(event: dict) -> bool:
            return event["type"] == kind and (where is None or where(event))

        for i, event in enumerate(self.inbox):
            if match(event):
                return self.inbox.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                event = await self._read()
                if event is not None and match(event):
                    return event
                if event is not None:
                    self.inbox.append(event)

    async def _read(self) -> dict | None:
        raw = await self.ws.recv()
        if isinstance(raw, bytes):
            self.frames.append(raw)
            return None
        return json.loads(raw)

    async def settle(self, seconds: float = 0.5) -> list[dict]:
        """Everything that arrives within `seconds` (kept in the inbox too)."""
        got: list[dict] = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    event = await self._read()
                    if event is not None:
                        got.append(event)
                        self.inbox.append(event)
        except TimeoutError:
            return got

    async def voice_from(self, sender: int, seconds: float = 1.0) -> list[int]:
        """Sequence numbers of the frames from `sender` that arrive within `seconds`."""
        self.frames.clear()
        await self.settle(seconds)
        return [struct.unpack(">BII", f[:9])[2] for f in self.frames if _sender(f) == sender]

    async def close_code(self, timeout: float = 5) -> int:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    event = await self._read()
                    if event is not None:
                        self.inbox.append(event)
        return self.ws.close_code


def _sender(frame: bytes) -> int:
    return struct.unpack(">BII", frame[:9])[1]


async def call(api: Api, method: str, path: str, body: dict | None = None):
    return await asyncio.to_thread(api.call, method, path, body)


async def room_on(node: Node, seat_count: int) -> tuple[dict, Api, dict]:
    api, owner = await asyncio.to_thread(Api.user, node.url)
    status, room = await call(
        api, "POST", "/api/rooms/", {"name": "seats", "seat_count": seat_count}
    )
    assert status == 201, room
    return room, api, owner


async def enter(node: Node, room: dict, api: Api | None = None, user: dict | None = None):
    if api is None:
        api, user = await asyncio.to_thread(Api.user, node.url)
    status, joined = await call(api, "POST", f"/api/rooms/{room['id']}/join", {})
    assert status == 200, joined
    ws = await ws_connect(
        f"{node.ws}/ws/rooms/{room['id']}/?ticket={joined['ticket']}", max_size=2**20
    )
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert welcome["type"] == "welcome", welcome
    return Member(ws, welcome, user, api)


async def everyone_sees(members, user_id: int) -> None:
    """Wait until each member has seen `user_id` join (events cross nodes through Redis)."""
    for m in members:
        if m.id != user_id and user_id not in {p["user_id"] for p in m.welcome["participants"]}:
            await m.wait("participant.joined", lambda e: e["participant"]["user_id"] == user_id)


async def close_all(*members: Member) -> None:
    for m in members:
        await m.ws.close()


def taken(index: int):
    return lambda e: e["seat"]["index"] == index and e["seat"]["user_id"] is not None


def freed(index: int):
    return lambda e: e["seat"]["index"] == index and e["seat"]["user_id"] is None


async def test_two_members_on_two_nodes_race_for_one_seat_and_exactly_one_wins(cluster):
    n1, n2 = cluster
    room, owner_api, owner_user = await room_on(n1, seat_count=4)
    owner = await enter(n1, room, owner_api, owner_user)
    a = await enter(n1, room)
    b = await enter(n2, room)
    everyone = [owner, a, b]
    for m in everyone:
        await everyone_sees(everyone, m.id)
    winners = []

    for index in (1, 3, 0, 2):
        # The two frames leave at the same moment, through two different nodes.
        await asyncio.gather(
            a.send(type="seat.take", index=index), b.send(type="seat.take", index=index)
        )
        owners = {(await m.wait("seat.updated", taken(index)))["seat"]["user_id"] for m in everyone}
        assert len(owners) == 1, owners  # all members see the same, single owner
        winner_id = owners.pop()
        winner, loser = (a, b) if winner_id == a.id else (b, a)
        error = await loser.wait("error")
        assert error["code"] == "seat_taken", error
        assert not [e for e in await winner.settle(0.3) if e["type"] == "error"]
        # Nobody sees the seat change hands a second time.
        for m in everyone:
            late = [e for e in await m.settle(0.3) if e["type"] == "seat.updated"]
            assert not [e for e in late if e["seat"]["index"] == index], late
        status, detail = await call(owner_api, "GET", f"/api/rooms/{room['id']}/")
        seats = {p["user_id"]: p["seat"] for p in detail["participants"]}
        assert (seats[winner.id], seats[loser.id]) == (index, None)
        winners.append(winner_id)
        await winner.send(type="seat.leave")
        for m in everyone:
            await m.wait("seat.updated", freed(index))
    assert set(winners) <= {a.id, b.id}
    await close_all(*everyone)


async def test_moderation_reaches_the_target_on_the_other_node(cluster):
    n1, n2 = cluster
    room, owner_api, owner_user = await room_on(n1, seat_count=0)
    owner = await enter(n1, room, owner_api, owner_user)
    listener = await enter(n1, room)
    target = await enter(n2, room)
    other = await enter(n2, room)
    everyone = [owner, listener, target, other]
    for m in everyone:
        await everyone_sees(everyone, m.id)
    await asyncio.sleep(0.3)  # the nodes greet each other on the room's voice channel

    async def target_speaks() -> list[int]:
        for _ in range(3):
            await target.ws.send(b"x" * 60)
        return await listener.voice_from(target.id)

    assert await target_speaks() == [1, 2, 3]

    # Mute from a socket on node 1: the target's socket on node 2 learns it, its voice stops.
    await owner.send(type="moderate", action="mute", user_id=target.id)
    for m in everyone:
        event = await m.wait("participant.updated", lambda e: e["participant"]["muted"])
        assert event["participant"]["user_id"] == target.id
    assert await target_speaks() == []

    # Unmute through REST on node 2.
    status, _ = await call(
        Api(n2.url, owner_api.token),
        "POST",
        f"/api/rooms/{room['id']}/members/{target.id}/mute",
        {"muted": False},
    )
    assert status == 200
    await target.wait("participant.updated", lambda e: not e["participant"]["muted"])
    assert await target_speaks() == [4, 5, 6]

    # Mute all from node 1 reaches both plain members on node 2.
    await owner.send(type="moderate", action="mute_all")
    for who in (target, other):
        await listener.wait(
            "participant.updated",
            lambda e, who=who: e["participant"]["user_id"] == who.id and e["participant"]["muted"],
        )
    assert await target_speaks() == []

    # Kick through REST on node 1: the socket on node 2 is closed with 4010.
    status, _ = await call(owner_api, "POST", f"/api/rooms/{room['id']}/members/{target.id}/kick")
    assert status == 204
    assert await target.close_code() == 4010
    left = await listener.wait("participant.left")
    assert left == {"type": "participant.left", "user_id": target.id, "reason": "kicked"}

    # Ban from the owner's socket on node 1: the other socket on node 2 closes with 4003.
    await owner.send(type="moderate", action="ban", user_id=other.id)
    assert await other.close_code() == 4003
    assert (await listener.wait("participant.left"))["reason"] == "banned"

    # Close through REST on node 2: every socket on both nodes gets room.closed, then 4011.
    status, _ = await call(Api(n2.url, owner_api.token), "POST", f"/api/rooms/{room['id']}/close")
    assert status == 200
    for m in (owner, listener):
        await m.wait("room.closed")
        assert await m.close_code() == 4011


async def test_seat_request_from_one_node_accepted_on_the_other(cluster):
    n1, n2 = cluster
    room, owner_api, owner_user = await room_on(n1, seat_count=2)
    owner = await enter(n1, room, owner_api, owner_user)
    listener = await enter(n2, room)
    bystander = await enter(n1, room)
    everyone = [owner, listener, bystander]
    for m in everyone:
        await everyone_sees(everyone, m.id)
    await asyncio.sleep(0.3)

    await listener.send(type="seat.request", index=1)
    requested = await owner.wait("seat.requested")
    assert (requested["request"]["user_id"], requested["request"]["index"]) == (listener.id, 1)
    await listener.wait("seat.requested")

    await owner.send(type="seat.request.accept", user_id=listener.id)

    resolved = {"type": "seat.request.resolved", "user_id": listener.id, "accepted": True}
    for m in (owner, listener):
        assert await m.wait("seat.request.resolved") == {**resolved, "index": 1}
    seat = await bystander.wait("seat.updated", taken(1))
    assert seat["seat"]["user_id"] == listener.id
    await listener.wait("participant.updated", lambda e: e["participant"]["seat"] == 1)
    # The bystander never saw the queue.
    assert not [e for e in bystander.inbox + await bystander.settle(0.3) if "request" in e["type"]]
    for _ in range(3):
        await listener.ws.send(b"on the mic")
    assert await owner.voice_from(listener.id) == [1, 2, 3]
    await close_all(*everyone)
