"""Real server processes and a real WebSocket client library (websockets).

Single-node tests run anywhere. Cluster tests start several nodes sharing Redis and
MySQL/MariaDB and are skipped without them (failing under VOICEROOM_REQUIRE_SERVICES=1).
Every test runs on both servers: daphne (make run, runserver) and uvicorn (production).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import struct
import time
import urllib.request

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.live import Api, Node, base_env

pytestmark = [pytest.mark.processes]

SERVERS = ["daphne", "uvicorn"]


class Member:
    def __init__(self, ws, welcome: dict, user: dict) -> None:
        self.ws = ws
        self.welcome = welcome
        self.user = user
        self.id = user["id"]

    async def event(self, kind: str, timeout: float = 5, where=None) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.recv()
                if isinstance(raw, str):
                    event = json.loads(raw)
                    if event["type"] == kind and (where is None or where(event)):
                        return event

    async def frame(self, timeout: float = 5) -> bytes:
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.recv()
                if isinstance(raw, bytes):
                    return raw

    async def frames_for(self, seconds: float) -> list[bytes]:
        got = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    raw = await self.ws.recv()
                    if isinstance(raw, bytes):
                        got.append(raw)
        except TimeoutError:
            return got


async def join(
    node: Node, api: Api, user: dict, room_id: int, *, query: str | None = None
) -> Member:
    if query is None:
        ticket = (await asyncio.to_thread(api.ok, "POST", f"/api/rooms/{room_id}/join", {}))[
            "ticket"
        ]
        query = f"ticket={ticket}"
    ws = await ws_connect(f"{node.ws}/ws/rooms/{room_id}/?{query}", max_size=2**20)
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert welcome["type"] == "welcome", welcome
    return Member(ws, welcome, user)


def header(frame: bytes) -> tuple[int, int, int]:
    return struct.unpack(">BII", frame[:9])


def metric(node: Node, name: str) -> float:
    with urllib.request.urlopen(node.url + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "_total "):
                return float(line.split()[-1])
    raise AssertionError(f"no metric {name}")


# -- one node ------------------------------------------------------------------------------


@pytest.fixture(params=SERVERS)
def node(request, live_db):
    server = Node(request.param, base_env(DATABASE_URL=live_db)).start()
    yield server
    server.stop()


async def test_two_people_talk_through_a_real_server(node):
    owner_api, owner = await asyncio.to_thread(Api.user, node.url)
    guest_api, guest = await asyncio.to_thread(Api.user, node.url)
    room = await asyncio.to_thread(
        owner_api.ok, "POST", "/api/rooms/", {"name": "live", "seat_count": 0}
    )
    a = await join(node, owner_api, owner, room["id"])
    b = await join(node, guest_api, guest, room["id"])
    assert (await a.event("participant.joined"))["participant"]["user_id"] == guest["id"]

    for i in range(20):
        await a.ws.send(bytes([i]) * 120)
    frames = [await b.frame() for _ in range(20)]
    assert [header(f) for f in frames] == [(1, owner["id"], i + 1) for i in range(20)]
    assert all(f[9:] == bytes([i]) * 120 for i, f in enumerate(frames))

    await b.ws.send(json.dumps({"type": "chat", "text": "hi"}))
    assert (await a.event("chat"))["text"] == "hi"
    await a.ws.send(json.dumps({"type": "whisper", "to": guest["id"], "text": "psst"}))
    assert (await b.event("whisper"))["text"] == "psst"

    await b.ws.send(json.dumps({"type": "leave"}))
    left = await a.event("participant.left")
    assert left["user_id"] == guest["id"] and left["reason"] == "left"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(b.ws.recv(), 5)
    assert b.ws.close_code == 1000
    await a.ws.close()


async def test_refusals_carry_their_close_code(node):
    api, user = await asyncio.to_thread(Api.user, node.url)
    room = await asyncio.to_thread(api.ok, "POST", "/api/rooms/", {"name": "codes"})
    ws = await ws_connect(f"{node.ws}/ws/rooms/{room['id']}/?ticket=forged")
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4001
    ws = await ws_connect(f"{node.ws}/ws/rooms/987654321/?ticket=forged")
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4004


async def test_sigterm_drains_the_node_so_clients_resume_at_once(node):
    api, user = await asyncio.to_thread(Api.user, node.url)
    room = await asyncio.to_thread(api.ok, "POST", "/api/rooms/", {"name": "drain"})
    member = await join(node, api, user, room["id"])
    node.stop()  # SIGTERM
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(member.ws.recv(), 10)
    # uvicorn sends 1012 (service restart); autobahn forbids it to applications, so
    # daphne's drain sends 4013, which clients treat the same way.
    assert member.ws.close_code == (1012 if node.kind == "uvicorn" else 4013)


# -- several nodes over Redis ------------------------------------------------------------------

cluster_marks = [pytest.mark.redis, pytest.mark.mysql]


@pytest.fixture(params=SERVERS)
def cluster(request, live_db):
    env = base_env(
        DATABASE_URL=live_db,
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        VOICEROOM_REDIS_PREFIX=f"t{secrets.token_hex(3)}",
        VOICEROOM_RESUME_WINDOW_S="8",
        VOICEROOM_NODE_HEARTBEAT_S="0.5",
        VOICEROOM_NODE_DEAD_AFTER_S="2",
    )
    nodes = [Node(request.param, env) for _ in range(3)]
    for n in nodes:
        n.start()
    yield nodes
    for n in nodes:
        n.stop()


async def _room_with(cluster, count: int, seat_count: int = 0):
    owner_api, owner = await asyncio.to_thread(Api.user, cluster[0].url)
    room = await asyncio.to_thread(
        owner_api.ok, "POST", "/api/rooms/", {"name": "cluster", "seat_count": seat_count}
    )
    people = [(owner_api, owner)]
    for _ in range(count - 1):
        people.append(await asyncio.to_thread(Api.user, cluster[0].url))
    return room, people


@pytest.mark.redis
@pytest.mark.mysql
async def test_voice_chat_and_whisper_cross_nodes_and_only_nodes_with_members_get_frames(cluster):
    n1, n2, n3 = cluster
    room, [(api_a, ua), (api_b, ub), (api_c, uc), (api_d, ud)] = await _room_with(cluster, 4)
    a = await join(n1, api_a, ua, room["id"])
    d = await join(n1, api_d, ud, room["id"])
    # While the room lives on one node, its voice costs Redis nothing (once the first
    # seconds, in which other nodes are assumed until they answer the hello, are over).
    await asyncio.sleep(3.5)
    published = metric(n1, "voiceroom_voice_bus_published")
    for _ in range(10):
        await a.ws.send(b"local")
    assert [header(await d.frame())[2] for _ in range(10)] == list(range(1, 11))
    assert metric(n1, "voiceroom_voice_bus_published") == published

    b = await join(n2, api_b, ub, room["id"])
    c = await join(n2, api_c, uc, room["id"])
    await a.event("participant.joined", where=lambda e: e["participant"]["user_id"] == uc["id"])
    received_n3 = metric(n3, "voiceroom_voice_bus_received")
    received_n2 = metric(n2, "voiceroom_voice_bus_received")
    published_n1 = metric(n1, "voiceroom_voice_bus_published")
    await asyncio.sleep(0.3)  # the nodes greet each other on the room's channel

    for _ in range(50):
        await a.ws.send(b"v" * 120)
        await asyncio.sleep(0.02)
    for listener in (b, c, d):
        frames = [await listener.frame() for _ in range(50)]
        assert [header(f) for f in frames] == [(1, ua["id"], i + 11) for i in range(50)]
    await asyncio.sleep(0.3)
    assert metric(n1, "voiceroom_voice_bus_published") - published_n1 == 50  # one publish a frame
    assert metric(n2, "voiceroom_voice_bus_received") - received_n2 == 50  # once per node
    assert metric(n3, "voiceroom_voice_bus_received") == received_n3  # no members there

    # Whisper voice to a member on another node reaches only that member.
    await a.ws.send(json.dumps({"type": "voice.target", "to": uc["id"]}))
    await asyncio.sleep(0.2)
    await a.ws.send(b"secret")
    frame = await c.frame()
    assert header(frame) == (2, ua["id"], 61) and frame[9:] == b"secret"
    assert await b.frames_for(0.5) == []
    assert await d.frames_for(0.1) == []

    await b.ws.send(json.dumps({"type": "chat", "text": "across"}))
    assert (await a.event("chat"))["text"] == "across"
    await a.ws.send(json.dumps({"type": "whisper", "to": ub["id"], "text": "psst"}))
    assert (await b.event("whisper"))["text"] == "psst"

    counts = []
    for n in cluster:
        status, detail = await asyncio.to_thread(
            Api(n.url, api_a.token).call, "GET", f"/api/rooms/{room['id']}/"
        )
        counts.append(detail["online_count"])
    assert counts == [4, 4, 4]
    for m in (a, b, c, d):
        await m.ws.close()


@pytest.mark.redis
@pytest.mark.mysql
async def test_a_killed_node_costs_its_member_a_resume_not_its_seat(cluster):
    n1, n2, n3 = cluster
    room, [(api_a, ua), (api_b, ub)] = await _room_with(cluster, 2, seat_count=4)
    a = await join(n1, api_a, ua, room["id"])
    b = await join(n2, api_b, ub, room["id"])
    await b.ws.send(json.dumps({"type": "seat.take", "index": 2}))
    await a.event("seat.updated", where=lambda e: e["seat"]["user_id"] == ub["id"])
    token = b.welcome["session"]["resume_token"]

    n2.kill()
    gone = await a.event(
        "participant.updated", timeout=10, where=lambda e: not e["participant"]["connected"]
    )
    assert gone["participant"]["user_id"] == ub["id"]
    assert gone["participant"]["connected"] is False and gone["participant"]["seat"] == 2

    b2 = await join(n3, api_b, ub, room["id"], query=f"resume={token}")
    assert b2.welcome["resumed"] is True and b2.welcome["you"]["seat"] == 2
    back = await a.event("participant.updated", where=lambda e: e["participant"]["connected"])
    assert back["participant"]["user_id"] == ub["id"]
    await b2.ws.send(b"I am back")
    assert (await a.frame())[9:] == b"I am back"
    # Nobody ever saw the member leave.
    seen = []
    try:
        async with asyncio.timeout(1):
            while True:
                raw = await a.ws.recv()
                if isinstance(raw, str):
                    seen.append(json.loads(raw)["type"])
    except TimeoutError:
        pass
    assert "participant.left" not in seen
    await a.ws.close()
    await b2.ws.close()


@pytest.mark.redis
@pytest.mark.mysql
async def test_a_member_of_a_killed_node_who_never_returns_is_reaped(cluster):
    n1, n2, _ = cluster
    room, [(api_a, ua), (api_b, ub)] = await _room_with(cluster, 2, seat_count=4)
    a = await join(n1, api_a, ua, room["id"])
    b = await join(n2, api_b, ub, room["id"])
    await b.ws.send(json.dumps({"type": "seat.take", "index": 0}))
    await a.event("seat.updated", where=lambda e: e["seat"]["user_id"] == ub["id"])
    started = time.monotonic()
    n2.kill()
    await a.event(
        "participant.updated", timeout=10, where=lambda e: not e["participant"]["connected"]
    )
    left = await a.event("participant.left", timeout=20)
    assert left == {"type": "participant.left", "user_id": ub["id"], "reason": "timeout"}
    assert time.monotonic() - started >= 8
    freed = await a.event("seat.updated", where=lambda e: e["seat"]["index"] == 0)
    assert freed["seat"]["user_id"] is None
    await a.ws.close()
