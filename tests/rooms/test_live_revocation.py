"""Signing out on one node closes the user's socket on another (real processes, Redis,
MySQL/MariaDB), on both servers."""

from __future__ import annotations

import asyncio
import os
import secrets
import time

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.live import Api, Node, base_env
from tests.rooms.test_live_nodes import SERVERS, join

pytestmark = [pytest.mark.processes, pytest.mark.redis, pytest.mark.mysql]


@pytest.fixture(params=SERVERS)
def two_nodes(request, live_db):
    env = base_env(
        DATABASE_URL=live_db,
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        VOICEROOM_REDIS_PREFIX=f"t{secrets.token_hex(3)}",
    )
    nodes = [Node(request.param, env) for _ in range(2)]
    for n in nodes:
        n.start()
    yield nodes
    for n in nodes:
        n.stop()


async def closed_with(ws, timeout: float) -> int:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return ws.close_code


async def test_signing_out_on_one_node_closes_the_socket_on_another_with_4001(two_nodes):
    n1, n2 = two_nodes
    owner_api, owner = await asyncio.to_thread(Api.user, n1.url)
    room = await asyncio.to_thread(owner_api.ok, "POST", "/api/rooms/", {"name": "revoke"})
    api, user = await asyncio.to_thread(Api.user, n1.url)
    watcher = await join(n1, owner_api, owner, room["id"])
    member = await join(n2, api, user, room["id"])  # the member's socket lives on node 2
    await watcher.event("participant.joined")
    spare = (await asyncio.to_thread(api.ok, "POST", f"/api/rooms/{room['id']}/ticket"))["ticket"]

    started = time.monotonic()
    status, _ = await asyncio.to_thread(api.call, "POST", "/api/auth/logout")  # on node 1
    assert status == 204

    assert await closed_with(member.ws, 5) == 4001
    assert time.monotonic() - started < 5
    left = await watcher.event("participant.left")
    assert left == {"type": "participant.left", "user_id": user["id"], "reason": "left"}
    # What was issued before is refused on the other node too.
    ws = await ws_connect(f"{n2.ws}/ws/rooms/{room['id']}/?ticket={spare}")
    assert await closed_with(ws, 5) == 4001
    ws = await ws_connect(
        f"{n2.ws}/ws/rooms/{room['id']}/?resume={member.welcome['session']['resume_token']}"
    )
    assert await closed_with(ws, 5) == 4001
    status, body = await asyncio.to_thread(Api(n2.url, api.token).call, "GET", "/api/auth/me")
    assert status == 401 and body["code"] == "authentication_failed"
    await watcher.ws.close()
