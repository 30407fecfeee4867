"""Placement through the real topology (issue 14, items 1 and 3): Debian's nginx running
docker/nginx.conf in front of two uvicorn nodes that share Redis and MariaDB, each with
its public URL under nginx's one origin (VOICEROOM_NODE_URL=<origin>/node/appN, as in
docker/compose.yaml).

- Every member who asks (join, ticket, room detail) is sent to the room's home node, and
  all of them land there through nginx: the other node holds none of the room's sockets
  and the voice bus publishes nothing (voice does not cross Redis).
- The home node is killed (SIGKILL): within 10 s `ws_url` names the other node, and the
  members resume there, through nginx, with their seats and their self-mute.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.live import Api, Nginx, Node, base_env, free_port
from tests.rooms.test_live_nodes import metric

pytestmark = [pytest.mark.processes, pytest.mark.nginx, pytest.mark.redis, pytest.mark.mysql]

REHOME_BOUND_S = 10.0  # contract v1.1: a live home within 10 s of the kill


@pytest.fixture
def placed_cluster(live_db, tmp_path):
    nginx_port = free_port()
    origin = f"http://127.0.0.1:{nginx_port}"
    common = base_env(
        DATABASE_URL=live_db,
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        VOICEROOM_REDIS_PREFIX=f"t{secrets.token_hex(3)}",
        VOICEROOM_RESUME_WINDOW_S="30",
    )
    nodes = {
        name: Node("uvicorn", {**common, "VOICEROOM_NODE_URL": f"{origin}/node/{name}"})
        for name in ("app1", "app2")
    }
    for n in nodes.values():
        n.start()
    nginx = Nginx(
        {name: f"127.0.0.1:{n.port}" for name, n in nodes.items()}, tmp_path, port=nginx_port
    ).start()
    yield nodes, nginx
    nginx.stop()
    for n in nodes.values():
        n.stop()


async def recv_type(ws, kind: str, timeout: float = 5, where=None) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            if isinstance(raw, str) and (event := json.loads(raw))["type"] == kind:
                if where is None or where(event):
                    return event


def node_named(ws_url: str) -> str:
    """ "app1" of ws://127.0.0.1:PORT/node/app1/ws/rooms/5/."""
    parts = ws_url.split("/")
    assert parts[3] == "node", ws_url
    return parts[4]


async def test_a_rooms_members_land_on_its_home_node_and_follow_it_when_it_dies(
    placed_cluster,
):
    nodes, nginx = placed_cluster
    # Both nodes heartbeat from their first HTTP request (Node.start's health check).
    await asyncio.sleep(1.5)
    call = asyncio.to_thread
    owner_api, _ = await call(Api.user, nginx.url)
    room = await call(owner_api.ok, "POST", "/api/rooms/", {"name": "home", "seat_count": 2})
    rid = room["id"]
    people = [(owner_api, None)] + [await call(Api.user, nginx.url) for _ in range(3)]

    sockets = []
    urls = set()
    for i, (api, _) in enumerate(people):
        joined = await call(api.ok, "POST", f"/api/rooms/{rid}/join", {})
        ticket = await call(api.ok, "POST", f"/api/rooms/{rid}/ticket")
        detail = await call(api.ok, "GET", f"/api/rooms/{rid}/")
        urls |= {joined["ws_url"], ticket["ws_url"], detail["ws_url"]}
        # Half of them come with the join's ticket, half with the ticket endpoint's.
        t = joined["ticket"] if i % 2 else ticket["ticket"]
        ws = await ws_connect(f"{ticket['ws_url']}?ticket={t}", close_timeout=1)
        welcome = await recv_type(ws, "welcome")
        sockets.append([ws, welcome["session"]["resume_token"], welcome["you"]["user_id"]])
    assert len(urls) == 1, urls  # one place, whoever asks, however
    (ws_url,) = urls
    assert ws_url.startswith(f"{nginx.ws}/node/") and ws_url.endswith(f"/ws/rooms/{rid}/")
    home = node_named(ws_url)
    other = "app2" if home == "app1" else "app1"
    # All of them are on the home node; the other node holds none of the room's sockets.
    assert metric(nodes[home], "voiceroom_sockets_local") == 4, nodes[home].output()
    assert metric(nodes[other], "voiceroom_sockets_local") == 0

    # Two take seats; one of them mutes herself.
    seated = {}
    for index, entry in ((0, sockets[1]), (1, sockets[2])):
        await entry[0].send(json.dumps({"type": "seat.take", "index": index}))
        seated[entry[2]] = index
    await sockets[2][0].send(json.dumps({"type": "mute.self", "muted": True}))
    for entry in (sockets[1], sockets[2]):
        uid = entry[2]
        await recv_type(
            entry[0], "seat.updated", where=lambda e, uid=uid: e["seat"]["user_id"] == uid
        )
    await recv_type(
        sockets[2][0],
        "participant.updated",
        where=lambda e: (
            e["participant"]["user_id"] == sockets[2][2] and e["participant"]["self_muted"]
        ),
    )
    # Voice between them stays on the node: it is not published to Redis.
    await asyncio.sleep(3)  # the bus's first seconds assume other nodes until they answer
    published = metric(nodes[home], "voiceroom_voice_bus_published")
    for _ in range(20):
        await sockets[1][0].send(b"\x01" + b"v" * 40)
    heard = 0
    async with asyncio.timeout(5):
        while heard < 20:
            if isinstance(await sockets[0][0].recv(), bytes):
                heard += 1
    assert metric(nodes[home], "voiceroom_voice_bus_published") == published

    # The home node dies.
    nodes[home].kill()
    killed = time.monotonic()
    # Their sockets drop (nginx loses the upstream); closing them must not hold up the
    # clock, so it runs aside.
    closing = [asyncio.create_task(entry[0].close()) for entry in sockets]
    moved_to = None
    while time.monotonic() - killed < REHOME_BOUND_S + 5:
        detail = await call(owner_api.ok, "GET", f"/api/rooms/{rid}/")
        if node_named(detail["ws_url"]) != home:
            moved_to = detail["ws_url"]
            break
        await asyncio.sleep(0.2)
    took = time.monotonic() - killed
    assert moved_to is not None and node_named(moved_to) == other, (
        detail["ws_url"],
        nodes[other].output(),
    )
    assert took <= REHOME_BOUND_S, f"re-homed after {took:.1f} s"
    print(f"re-homed {took:.1f} s after the kill")

    # Everyone comes back at the new ws_url, through nginx, with seat and self-mute: with
    # the resume token, or, as the SDK does when a resume is refused with 4001 (the dead
    # node's sessions may not be released yet when ws_url has already moved), a ticket.
    tickets = [await call(api.ok, "POST", f"/api/rooms/{rid}/ticket") for api, _ in people]
    assert {t["ws_url"] for t in tickets} == {moved_to}
    resumed = []
    for entry, ticket in zip(sockets, tickets, strict=True):
        ws = await ws_connect(f"{moved_to}?resume={entry[1]}", close_timeout=1)
        try:
            welcome = await recv_type(ws, "welcome")
        except ConnectionClosed:
            assert ws.protocol.close_rcvd.code == 4001
            ws = await ws_connect(f"{moved_to}?ticket={ticket['ticket']}", close_timeout=1)
            welcome = await recv_type(ws, "welcome")
        resumed.append(ws)
        you = welcome["you"]
        assert you["seat"] == seated.get(entry[2]), you
        assert you["self_muted"] is (entry is sockets[2]), you
    assert metric(nodes[other], "voiceroom_sockets_local") == 4
    await asyncio.gather(*closing, return_exceptions=True)
    for ws in resumed:
        await ws.close()
