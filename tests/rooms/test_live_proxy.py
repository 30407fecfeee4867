"""docker/ behind its nginx: a client cannot choose the address the nodes count (issue 12,
item 8).

Before: nginx appended the client's own X-Forwarded-For ($proxy_add_x_forwarded_for) and
uvicorn believed the header from anyone (FORWARDED_ALLOW_IPS "*"), taking its first
entry: whatever the client wrote. A client escaped VOICEROOM_MAX_SOCKETS_PER_ADDRESS by
writing a new address on every socket. Now nginx sets the header from $remote_addr and
the nodes believe it only from nginx's address.

These tests run the REAL docker/nginx.conf (tests/live.py Nginx: only the upstream and
the listening address are substituted) in front of a uvicorn node started with the
command and the proxy settings of docker/compose.yaml; nginx's compose address becomes
127.0.0.1, where the test's nginx connects from. Clients connect from other loopback
addresses (127.0.0.2, 127.0.0.3), so each has an address of its own.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.live import ROOT, Api, Nginx, Node, base_env, free_port

pytestmark = [pytest.mark.processes, pytest.mark.nginx]

COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
NGINX_ADDRESS = (
    (COMPOSE["services"]["nginx"].get("networks") or {}).get("default", {}).get("ipv4_address")
)
TOO_MANY_SOCKETS = 4029
FORGED = ["198.51.100.7", "203.0.113.9, 198.51.100.8", "127.0.0.3", "10.250.37.10"]


def node_command(port: int) -> list[str]:
    """docker/compose.yaml's node command, on a loopback port."""
    argv = list(COMPOSE["x-app"]["command"])
    argv[0] = str(Path(sys.executable).parent / "uvicorn")
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    return argv


def node_proxy_env() -> dict[str, str]:
    """The proxy settings docker/compose.yaml gives the nodes, with nginx's address as
    the test's nginx has it."""
    env = COMPOSE["x-app-env"]
    trusted = [a.strip() for a in str(env["FORWARDED_ALLOW_IPS"]).split(",")]
    return {
        "FORWARDED_ALLOW_IPS": ",".join("127.0.0.1" if a == NGINX_ADDRESS else a for a in trusted),
        "VOICEROOM_TRUSTED_PROXIES": str(env["VOICEROOM_TRUSTED_PROXIES"]),
    }


def test_compose_nodes_believe_forwarded_headers_from_nginx_alone():
    trusted = str(COMPOSE["x-app-env"]["FORWARDED_ALLOW_IPS"])
    assert trusted == NGINX_ADDRESS, "FORWARDED_ALLOW_IPS must be nginx's address, not " + trusted
    # nginx's address is fixed in the network's subnet, outside the range Docker gives
    # the other containers, so no other container can hold it.
    (ipam,) = COMPOSE["networks"]["default"]["ipam"]["config"]  # one subnet
    address = ipaddress.ip_address(NGINX_ADDRESS)
    assert address in ipaddress.ip_network(ipam["subnet"])
    assert address not in ipaddress.ip_network(ipam["ip_range"])
    # The nodes are reached through nginx only: they publish no port.
    assert "ports" not in COMPOSE["x-app"]


# -- what nginx tells the upstream ------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(
            {
                "path": self.path,
                "x-forwarded-for": self.headers.get("X-Forwarded-For"),
                "x-real-ip": self.headers.get("X-Real-IP"),
                "peer": self.client_address[0],
            }
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def get(port: int, path: str, source: str, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_nginx_sets_x_forwarded_for_to_the_address_it_sees_on_every_location(recorder, tmp_path):
    nginx = Nginx(f"127.0.0.1:{recorder.server_address[1]}", tmp_path).start()
    try:
        for path in ("/api/rooms/", "/ws/rooms/1/"):
            for forged in FORGED:
                status = get(nginx.port, path, "127.0.0.2", {"X-Forwarded-For": forged})
                assert status == 200, nginx.output()
            assert get(nginx.port, path, "127.0.0.2", {}) == 200
    finally:
        nginx.stop()
    assert len(_Recorder.seen) == 2 * (len(FORGED) + 1)
    for request in _Recorder.seen:
        assert request["x-forwarded-for"] == "127.0.0.2", request
        assert request["x-real-ip"] == "127.0.0.2", request
        assert request["peer"] == "127.0.0.1", request  # nginx's own address


# -- the per-address socket limit through nginx ----------------------------------------------


@pytest.fixture
def proxied_node(live_db, tmp_path):
    env = base_env(
        DATABASE_URL=live_db,
        VOICEROOM_MAX_SOCKETS_PER_ADDRESS="1",
        VOICEROOM_THROTTLES="off",  # several registrations from one address
        **node_proxy_env(),
    )
    port = free_port()
    node = Node("uvicorn", env, port=port, argv=node_command(port)).start()
    nginx = Nginx(f"127.0.0.1:{node.port}", tmp_path).start()
    yield node, nginx
    nginx.stop()
    node.stop()


async def open_socket(base: str, path: str, source: str, forged: str | None) -> int | str:
    """Open a socket from `source`; its welcome ("welcome") or the close code."""
    headers = {"X-Forwarded-For": forged} if forged else {}
    ws = await ws_connect(
        base + path, additional_headers=headers, local_addr=(source, 0), open_timeout=5
    )
    try:
        return json.loads(await asyncio.wait_for(ws.recv(), 5))["type"]
    except ConnectionClosed:
        return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else 1006
    finally:
        if ws.protocol.close_rcvd is None:
            await ws.close()


async def test_a_forged_x_forwarded_for_does_not_escape_the_per_address_socket_limit(
    proxied_node,
):
    node, nginx = proxied_node
    owner_api, _ = await asyncio.to_thread(Api.user, nginx.url)
    room = await asyncio.to_thread(
        owner_api.ok, "POST", "/api/rooms/", {"name": "proxy", "seat_count": 0}
    )
    people = [await asyncio.to_thread(Api.user, nginx.url) for _ in range(len(FORGED) + 3)]

    async def ticket_path(api: Api) -> str:
        answer = await asyncio.to_thread(api.ok, "POST", f"/api/rooms/{room['id']}/join", {})
        return f"/ws/rooms/{room['id']}/?ticket={answer['ticket']}"

    # Client A, at 127.0.0.2, holds the one socket its address may have.
    holder = await ws_connect(
        nginx.ws + await ticket_path(people[0][0]), local_addr=("127.0.0.2", 0)
    )
    assert json.loads(await asyncio.wait_for(holder.recv(), 5))["type"] == "welcome"
    try:
        # Every other member at 127.0.0.2 is refused, whatever address it writes.
        for (api, _), forged in zip(people[1:], FORGED, strict=False):
            answer = await open_socket(nginx.ws, await ticket_path(api), "127.0.0.2", forged)
            assert answer == TOO_MANY_SOCKETS, (forged, answer, node.output())
        # Straight to the node (not through nginx), the header is not believed either.
        api = people[len(FORGED) + 1][0]
        answer = await open_socket(node.ws, await ticket_path(api), "127.0.0.2", FORGED[0])
        assert answer == TOO_MANY_SOCKETS, answer
        # Another client address is counted apart: the node does not see everyone as
        # nginx (127.0.0.1), even when it claims to be A.
        api = people[len(FORGED) + 2][0]
        answer = await open_socket(nginx.ws, await ticket_path(api), "127.0.0.3", "127.0.0.2")
        assert answer == "welcome", answer
    finally:
        await holder.close()
