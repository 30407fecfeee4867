"""Raw WebSocket abuse against a real uvicorn node (hypothesis).

What the in-process communicator cannot send: garbage instead of a handshake, reserved
opcodes and RSV bits, unmasked client frames, invalid UTF-8 in text frames, declared
lengths up to 2^64 - 1, fragments out of order, oversized control frames, bad close
frames. After every example the node is still up, /healthz answers, another member still
hears a third one's voice, and the node has logged no unhandled exception.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect as ws_connect

from tests.live import Api, Node, base_env, database_for_processes, migrate

pytestmark = [pytest.mark.processes]

LIVE_FUZZ = settings(
    max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


class Room:
    """A uvicorn node with a room: a speaker, a listener, and an attacker's Token."""

    def __init__(self, node: Node, sockets: ExitStack) -> None:
        self.node = node
        self.sockets = sockets
        owner_api, _ = Api.user(node.url)
        room = owner_api.ok("POST", "/api/rooms/", {"name": "fuzz", "seat_count": 0})
        self.room_id = room["id"]
        self.speaker, self.speaker_id = self._member()
        self.listener, _ = self._member()
        attacker_api, _ = Api.user(node.url)
        attacker_api.ok("POST", f"/api/rooms/{self.room_id}/join", {})
        self.attacker_token = attacker_api.token
        self.rounds = 0
        self.log_seen = 0

    def _member(self):
        api, user = Api.user(self.node.url)
        ticket = api.ok("POST", f"/api/rooms/{self.room_id}/join", {})["ticket"]
        ws = self.sockets.enter_context(
            ws_connect(f"{self.node.ws}/ws/rooms/{self.room_id}/?ticket={ticket}")
        )
        assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
        return ws, user["id"]

    def handshake(self) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET /ws/rooms/{self.room_id}/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.node.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Token {self.attacker_token}\r\n\r\n"
        ).encode()

    def assert_alive(self) -> None:
        assert self.node.proc.poll() is None, self.node.output()
        with urllib.request.urlopen(self.node.url + "/healthz", timeout=5) as r:
            assert r.status == 200
        self.rounds += 1
        payload = b"still talking %d" % self.rounds
        deadline = time.monotonic() + 5
        next_send = 0.0
        while True:  # skip events and the attacker's own relayed voice
            now = time.monotonic()
            assert now < deadline, "the listener has not heard the speaker for 5 s"
            if now >= next_send:
                # Again every second: voice is best effort (a node sheds frames while its
                # loop is late), so one lost frame is not a room down; 5 s of them is.
                self.speaker.send(payload)
                next_send = now + 1.0
            try:
                got = self.listener.recv(timeout=max(0.01, min(next_send, deadline) - now))
            except TimeoutError:
                continue
            if isinstance(got, bytes) and got[9:] == payload:
                kind, sender = struct.unpack(">BI", got[:5])
                assert (kind, sender) == (1, self.speaker_id)
                break
        log = Path(self.node.log.name).read_text(errors="replace")  # output() is the tail
        new, self.log_seen = log[self.log_seen :], len(log)
        # Nothing a client sends is a server error: uvicorn's traceback for a text frame
        # that is not UTF-8 (answered with 1007) is demoted by realtime.servers.uvicorn.
        assert "ERROR:" not in new, new
        assert "Exception in ASGI" not in new, new


@pytest.fixture(scope="module")
def live_room():
    url, cleanup = database_for_processes()
    env = base_env(DATABASE_URL=url)
    migrate(env)
    node = Node("uvicorn", env).start()
    try:
        with ExitStack() as sockets:
            yield Room(node, sockets)
    finally:
        node.stop()
        cleanup()


def raw_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x01\x02\x03\x04",
    length: int | None = None,
) -> bytes:
    """One frame as RFC 6455 lays it out, with every field under the caller's control."""
    n = len(payload) if length is None else length
    if n < 126:
        head, ext = n, b""
    elif n < 2**16:
        head, ext = 126, struct.pack(">H", n)
    else:
        head, ext = 127, struct.pack(">Q", n)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    if mask is None:
        return bytes([first, head]) + ext + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([first, 0x80 | head]) + ext + mask + masked


INVALID_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xe2\x82"]

frames = st.one_of(
    # Anything: reserved opcodes (3-7, 11-15), RSV bits, no mask, lying lengths.
    st.builds(
        raw_frame,
        opcode=st.integers(0, 15),
        payload=st.binary(max_size=300),
        fin=st.booleans(),
        rsv=st.sampled_from([0, 0, 0, 1, 2, 4, 7]),
        mask=st.none() | st.binary(min_size=4, max_size=4),
        length=st.none()
        | st.sampled_from([0, 125, 126, 65535, 65536, 2**31, 2**63 - 1, 2**64 - 1]),
    ),
    # Text frames that are not UTF-8, whole or split across fragments.
    st.sampled_from(INVALID_UTF8).map(lambda b: raw_frame(1, b)),
    st.sampled_from(INVALID_UTF8).map(
        lambda b: raw_frame(1, b[:1], fin=False) + raw_frame(0, b[1:])
    ),
    # Fragments out of order: a continuation with nothing to continue, a new text frame
    # inside a fragmented one, a ping in between (allowed).
    st.binary(max_size=50).map(lambda b: raw_frame(0, b)),
    st.just(raw_frame(1, b'{"type":', fin=False) + raw_frame(1, b'"ping"}')),
    st.just(raw_frame(1, b'{"type":', fin=False) + raw_frame(9, b"") + raw_frame(0, b'"ping"}')),
    # Control frames: too long, fragmented, bad close codes and bodies.
    st.sampled_from([8, 9, 10]).map(lambda op: raw_frame(op, b"x" * 126)),
    st.just(raw_frame(9, b"", fin=False)),
    st.sampled_from([b"\x03", b"\x03\xe7", b"\x03\xec", b"\x13\x88", b"\x03\xe8\xff"]).map(
        lambda body: raw_frame(8, body)
    ),
    # Ordinary frames, so that some examples go on after the junk.
    st.just(raw_frame(1, b'{"type":"ping"}')),
    st.binary(min_size=1, max_size=200).map(lambda b: raw_frame(2, b)),
)
# Well-formed frames first, junk for the application rather than for the server.
app_frames = st.one_of(
    st.text(max_size=100).map(lambda text: raw_frame(1, text.encode())),
    st.binary(max_size=5000).map(lambda b: raw_frame(2, b)),
    st.sampled_from([b'{"type":"chat","text":"hi"}', b'{"type":"leave"}', b"[]"]).map(
        lambda b: raw_frame(1, b)
    ),
)


def exchange(sock: socket.socket, data: bytes) -> bytes:
    """Send, then read what the server answers until it closes or goes quiet."""
    try:
        sock.sendall(data)
    except OSError:
        return b""
    got = b""
    sock.settimeout(0.15)
    try:
        while len(got) < 1_000_000:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except (TimeoutError, OSError):
        pass
    return got


@LIVE_FUZZ
@given(
    garbage=st.none()
    | st.binary(min_size=1, max_size=400)
    | st.sampled_from([b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00", b"GET /ws/rooms/"]),
    first=st.lists(app_frames, max_size=3),
    sent=st.lists(frames, min_size=1, max_size=5),
)
def test_raw_socket_abuse_never_takes_the_node_or_the_room_down(live_room, garbage, first, sent):
    with socket.create_connection(("127.0.0.1", live_room.node.port), timeout=5) as sock:
        if garbage is not None:
            # Junk where the handshake should be: an HTTP error or a closed connection, or,
            # when the junk happens to be a plain request for `/`, its redirect to the demo.
            # Never a server error, never an upgrade.
            answer = exchange(sock, garbage + b"\r\n\r\n")
            allowed = (b"HTTP/1.1 4", b"HTTP/1.1 302")
            assert answer == b"" or answer.startswith(allowed), answer[:200]
        else:
            answer = exchange(sock, live_room.handshake())
            assert answer.startswith(b"HTTP/1.1 101"), answer[:200]
            exchange(sock, b"".join(first + sent))
    live_room.assert_alive()
