"""Voice frames as a client's socket receives them, byte for byte, on every server path.

- `uvicorn`: the documented command, with our WebSocket protocol: the relay encodes a
  frame once and writes it to every recipient's transport (the fast path);
- `uvicorn-asgi`: the same node with uvicorn's own websockets-sansio protocol, so the
  relay uses each socket's ASGI `send` (the path before issue 17);
- `daphne`: the fast path to the Twisted transport (realtime/servers/sockets.py).

A listener that does the handshake by hand on a raw TCP socket reads the bytes the node
wrote; every binary frame must be exactly what websockets' server side writes for
`send_binary` of that message (uvicorn's ASGI path). The node's
`voiceroom_voice_deliveries_direct` shows which path carried them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

import pytest
from websockets.protocol import State
from websockets.server import ServerProtocol

from tests.live import Api, Node, base_env
from tests.rooms.test_live_nodes import join, metric

pytestmark = [pytest.mark.processes]

KINDS = {
    "uvicorn": ("uvicorn", ()),
    "uvicorn-asgi": ("uvicorn", ("--ws", "websockets-sansio")),
    "daphne": ("daphne", ()),
}


@pytest.fixture(params=sorted(KINDS))
def any_node(request, live_db):
    kind, args = KINDS[request.param]
    node = Node(kind, base_env(DATABASE_URL=live_db), args=args).start()
    node.path = request.param
    yield node
    node.stop()


def expected_frame(data: bytes) -> bytes:
    conn = ServerProtocol(state=State.OPEN)
    conn.send_binary(data)
    return b"".join(conn.data_to_send())


class RawListener:
    """A WebSocket client of a few lines: handshake, then whole frames as raw bytes."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def frame(self) -> bytes:
        """The next whole frame, header included, as it came off the wire."""
        while len(self.buf) < 2:
            self._more()
        size, at = self.buf[1] & 0x7F, 2
        assert size < 127 and not self.buf[1] & 0x80  # no 64-bit lengths, never masked
        if size == 126:
            while len(self.buf) < 4:
                self._more()
            size, at = struct.unpack("!H", self.buf[2:4])[0], 4
        while len(self.buf) < at + size:
            self._more()
        frame, self.buf = self.buf[: at + size], self.buf[at + size :]
        return frame

    def binary_frames(self, count: int) -> list[bytes]:
        got = []
        while len(got) < count:
            frame = self.frame()
            if frame[0] & 0x0F == 2:
                got.append(frame)
        return got


async def test_voice_frames_are_byte_identical_on_every_server_path(any_node):
    node = any_node
    (speaker_api, speaker_user), (listener_api, _) = [
        await asyncio.to_thread(Api.user, node.url) for _ in range(2)
    ]
    room = await asyncio.to_thread(
        speaker_api.ok, "POST", "/api/rooms/", {"name": "bytes", "seat_count": 0}
    )
    joined = await asyncio.to_thread(listener_api.ok, "POST", f"/api/rooms/{room['id']}/join", {})
    ticket = joined["ticket"]
    listener = await asyncio.to_thread(
        RawListener, node.port, f"/ws/rooms/{room['id']}/?ticket={ticket}"
    )
    speaker = await join(node, speaker_api, speaker_user, room["id"])
    direct_before = metric(node, "voiceroom_voice_deliveries_direct")
    inbound_before = metric(node, "voiceroom_voice_frames_in_direct")

    # Payloads whose messages (9-byte header + payload) sit at the length forms' bounds.
    payloads = [os.urandom(n) for n in (1, 116, 117, 118, 1000, 4096)]
    for payload in payloads:
        await speaker.ws.send(payload)
    frames = await asyncio.to_thread(listener.binary_frames, len(payloads))

    for seq, (payload, frame) in enumerate(zip(payloads, frames, strict=True), start=1):
        data = struct.pack(">BII", 1, speaker.id, seq) + payload
        assert frame == expected_frame(data), (node.path, len(payload))

    direct = metric(node, "voiceroom_voice_deliveries_direct") - direct_before
    assert direct == (0 if node.path == "uvicorn-asgi" else len(payloads)), node.path
    # Inbound, only our uvicorn protocol hands voice over as it reads it (those that
    # arrive while the speaker's consumer handles an event take the queue, in order).
    inbound = metric(node, "voiceroom_voice_frames_in_direct") - inbound_before
    if node.path == "uvicorn":
        assert 0 < inbound <= len(payloads)
    else:
        assert inbound == 0, node.path
    listener.sock.close()
    await speaker.ws.close()
