"""No credential in a node's output: tickets, resume tokens and API tokens stay out of
every line the servers print, access logs included (issue 12, item 1).

Each node runs as documented (README "Running a node by hand": uvicorn logs at info, with
its access log; daphne at its default verbosity, with its access log on stdout), and
once more with everything on (uvicorn --log-level trace, daphne -v 2). Sockets open with
`?ticket=`, `?resume=` and the Token header; a plain GET carries both in its query string.
The nginx of docker/ is checked the same way, with its configuration as shipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.live import ROOT, Api, Node, base_env, free_port

pytestmark = [pytest.mark.processes]

CONFIGS = {
    "uvicorn": ("uvicorn", ("--log-level", "info")),  # README's command: info, access log on
    "uvicorn-trace": ("uvicorn", ("--log-level", "trace")),
    "daphne": ("daphne", ()),  # verbosity 1: access log on stdout
    "daphne-verbose": ("daphne", ("-v", "2")),  # Twisted's log too
}


@pytest.fixture(params=list(CONFIGS))
def logged_node(request, live_db):
    kind, args = CONFIGS[request.param]
    node = Node(kind, base_env(DATABASE_URL=live_db), args=args).start()
    yield node
    node.stop()
    node.discard_log()


async def welcome_of(ws) -> dict:
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert welcome["type"] == "welcome", welcome
    return welcome


async def dropped(watcher, user_id: int) -> None:
    """Wait until the room sees the user's socket gone (its session in the window): only
    then does its resume token work."""
    async with asyncio.timeout(5):
        while True:
            event = json.loads(await watcher.recv())
            if (
                event["type"] == "participant.updated"
                and event["participant"]["user_id"] == user_id
                and not event["participant"]["connected"]
            ):
                return


def stop_and_read(node: Node) -> str:
    node.stop()  # every line flushed
    return Path(node.log.name).read_text(errors="replace")


async def test_no_ticket_resume_token_or_api_token_in_the_node_output(logged_node):
    node = logged_node
    owner, _ = await asyncio.to_thread(Api.user, node.url)
    guest, user = await asyncio.to_thread(Api.user, node.url)
    room = await asyncio.to_thread(owner.ok, "POST", "/api/rooms/", {"name": "logs"})
    path = f"{node.ws}/ws/rooms/{room['id']}/"
    await asyncio.to_thread(owner.ok, "POST", f"/api/rooms/{room['id']}/join", {})
    ticket = (await asyncio.to_thread(guest.ok, "POST", f"/api/rooms/{room['id']}/join", {}))[
        "ticket"
    ]
    secrets = {"ticket": ticket, "owner's API token": owner.token, "API token": guest.token}

    # The owner watches with the Token header; the guest comes and goes with the others.
    header = {"Authorization": f"Token {owner.token}"}
    async with ws_connect(path, additional_headers=header) as watcher:
        secrets["owner's resume token"] = (await welcome_of(watcher))["session"]["resume_token"]
        async with ws_connect(f"{path}?ticket={quote(ticket, safe='')}") as ws:
            first = (await welcome_of(ws))["session"]["resume_token"]
        await dropped(watcher, user["id"])
        async with ws_connect(f"{path}?resume={first}") as ws:
            second = (await welcome_of(ws))["session"]["resume_token"]
        await dropped(watcher, user["id"])
        async with ws_connect(f"{path}?resume={first}") as ws:  # used: refused
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 4001
        secrets.update({"resume token 1": first, "resume token 2": second})
    # A plain GET of a socket URL (a proxy that dropped the Upgrade): an HTTP access line.
    with pytest.raises(urllib.error.HTTPError) as answer:
        url = f"{node.url}/ws/rooms/{room['id']}/?ticket={ticket}&resume={second}"
        await asyncio.to_thread(urllib.request.urlopen, url, timeout=5)
    assert answer.value.code == 404
    output = await asyncio.to_thread(stop_and_read, node)
    for name, value in secrets.items():
        # A ticket is "payload:timestamp:signature"; its signature alone is enough to see.
        for shown in {value, quote(value, safe=""), value.rsplit(":", 1)[-1]}:
            assert shown not in output, f"{name} in the {node.kind} output:\n{output[-4000:]}"
    # The lines are still there, and still say what happened.
    assert f"/ws/rooms/{room['id']}/?ticket=[redacted]&resume=[redacted]" in output, output
    if node.kind == "uvicorn":
        assert f'"WebSocket /ws/rooms/{room["id"]}/?ticket=[redacted]" [accepted]' in output
        assert f'"WebSocket /ws/rooms/{room["id"]}/?resume=[redacted]" [accepted]' in output
    else:
        assert f'"WSCONNECT /ws/rooms/{room["id"]}/"' in output


NGINX = "/usr/sbin/nginx"


def nginx_in_front_of(node: Node, folder: Path) -> tuple[subprocess.Popen, int]:
    """docker/nginx.conf as shipped, pointed at `node` and at files in `folder`."""
    port = free_port()
    conf = (ROOT / "docker" / "nginx.conf").read_text()
    conf, upstreams = re.subn(
        r"server app1:8000[^;]*;\s*server app2:8000[^;]*;", f"server 127.0.0.1:{node.port};", conf
    )
    # The per-node upstreams of the /node/<id>/ prefixes (placement) point at it too.
    conf = re.sub(r"server app\d+:8000;", f"server 127.0.0.1:{node.port};", conf)
    replaced = {
        "listen 80 default_server;": f"listen 127.0.0.1:{port} default_server;",
        "access_log /dev/stdout main;": f"access_log {folder}/access.log main;",
        "error_log /dev/stderr warn;": f"error_log {folder}/error.log warn;",
    }
    for old, new in replaced.items():
        assert old in conf, f"docker/nginx.conf changed: {old!r} not found"
        conf = conf.replace(old, new)
    assert upstreams == 1, "docker/nginx.conf changed: its upstream servers not found"
    (folder / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        [
            NGINX,
            "-p",
            str(folder),
            "-c",
            str(folder / "nginx.conf"),
            "-g",
            f"daemon off; pid {folder}/nginx.pid; error_log {folder}/main-error.log;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError((folder / "main-error.log").read_text()) from None
            time.sleep(0.05)


@pytest.fixture
def behind_nginx(live_db, tmp_path):
    if not os.access(NGINX, os.X_OK):
        reason = f"needs {NGINX} (apt-get install nginx)"
        if os.environ.get("VOICEROOM_REQUIRE_SERVICES") == "1":
            pytest.fail(f"VOICEROOM_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    kind, args = CONFIGS["uvicorn"]
    node = Node(kind, base_env(DATABASE_URL=live_db), args=args).start()
    tmp_path.chmod(0o755)  # nginx's workers run as another user when started as root
    proc, port = nginx_in_front_of(node, tmp_path)
    yield node, port, tmp_path
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)
    node.stop()
    node.discard_log()


async def test_nginx_logs_no_credential_either(behind_nginx):
    node, port, folder = behind_nginx
    base = f"http://127.0.0.1:{port}"
    owner, _ = await asyncio.to_thread(Api.user, base)
    guest, user = await asyncio.to_thread(Api.user, base)
    room = await asyncio.to_thread(owner.ok, "POST", "/api/rooms/", {"name": "nginx"})
    await asyncio.to_thread(owner.ok, "POST", f"/api/rooms/{room['id']}/join", {})
    ticket = (await asyncio.to_thread(guest.ok, "POST", f"/api/rooms/{room['id']}/join", {}))[
        "ticket"
    ]
    path = f"ws://127.0.0.1:{port}/ws/rooms/{room['id']}/"
    header = {"Authorization": f"Token {owner.token}"}
    async with ws_connect(path, additional_headers=header) as watcher:
        await welcome_of(watcher)
        async with ws_connect(f"{path}?ticket={quote(ticket, safe='')}") as ws:
            first = (await welcome_of(ws))["session"]["resume_token"]
        await dropped(watcher, user["id"])
        async with ws_connect(f"{path}?resume={first}") as ws:
            await welcome_of(ws)
    assert (await asyncio.to_thread(owner.call, "GET", "/api/rooms/?page=1"))[0] == 200
    await asyncio.sleep(0.2)  # nginx writes a socket's line when it closes

    log = (folder / "access.log").read_text()
    for secret in (ticket, quote(ticket, safe=""), ticket.rsplit(":", 1)[-1], first):
        assert secret not in log, log
    assert f'"GET /ws/rooms/{room["id"]}/?[redacted] HTTP/1.1" 101' in log, log
    assert '"GET /api/rooms/?page=1 HTTP/1.1" 200' in log, log  # other queries stay
