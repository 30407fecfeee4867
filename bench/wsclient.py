"""The bench's WebSocket client: the HTTP Upgrade done by hand and a minimal RFC 6455 parser.

Deliberately lean (an asyncio Protocol, on uvloop in the load generator) so that one core
can take ~40,000 frames/s. `bench.client.BenchClient` builds the room member on it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import struct
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
MAX_FRAME = 16 * 1024 * 1024

perf_ns = time.perf_counter_ns

CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3


class HandshakeError(Exception):
    pass


class WSClientProtocol(asyncio.Protocol):
    """A client WebSocket over a raw asyncio transport.

    Subclasses override `on_binary(data, start, end, now_ns)` (a complete binary message
    lies in `data[start:end]`; `data` may be a reused buffer: copy what you keep) and
    `on_text(payload: bytes)`.
    """

    def __init__(self, host_header: str, path: str, extra_headers: dict[str, str] | None = None):
        self.host_header = host_header
        self.path = path
        self.extra_headers = extra_headers or {}
        self.transport: asyncio.Transport | None = None
        self.state = CONNECTING
        self._buf = bytearray()
        self._key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.mask = secrets.token_bytes(4)
        self._mask_ints: dict[int, int] = {}
        self._frag_op = 0
        self._frag = bytearray()
        self.close_code: int | None = None
        self.close_sent = False
        self.error: str = ""
        self.opened: asyncio.Future | None = None
        self.lost: asyncio.Future | None = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self.opened = loop.create_future()
            self.lost = loop.create_future()

    # -- asyncio callbacks ------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host_header}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key}",
            "Sec-WebSocket-Version: 13",
            "User-Agent: voiceroom-bench",
        ]
        lines += [f"{k}: {v}" for k, v in self.extra_headers.items()]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def data_received(self, data: bytes) -> None:
        if self.state == CONNECTING:
            self._handshake(data)
        elif self.state != CLOSED:
            self.feed(data)

    def connection_lost(self, exc) -> None:
        prev, self.state = self.state, CLOSED
        if self.opened is not None and not self.opened.done():
            self.opened.set_exception(
                HandshakeError(self.error or f"connection lost before open ({exc or 'eof'})")
            )
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)
        self.on_lost(prev)

    # -- handshake --------------------------------------------------------------------

    def _handshake(self, data: bytes) -> None:
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > 65536:
                self._fail("handshake answer too long")
            return
        head = bytes(self._buf[:end]).decode("latin-1")
        rest = bytes(self._buf[end + 4 :])
        self._buf = bytearray()
        status_line, _, header_text = head.partition("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or parts[1] != "101":
            self._fail(f"upgrade refused: {status_line.strip()}")
            return
        headers = {}
        for line in header_text.split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self._key.encode() + WS_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            self._fail("bad Sec-WebSocket-Accept")
            return
        self.state = OPEN
        self.on_open()
        if self.opened is not None and not self.opened.done():
            self.opened.set_result(None)
        if rest:
            self.feed(rest)

    def _fail(self, why: str) -> None:
        self.error = why
        if self.transport is not None:
            self.transport.close()

    # -- frame parser -----------------------------------------------------------------

    def feed(self, data) -> None:
        """Parse server frames from `data`; keeps an incomplete tail for the next call."""
        buf = self._buf
        buffered = len(buf) > 0
        if buffered:
            buf += data
            data = buf
        n = len(data)
        pos = 0
        now = perf_ns()
        on_binary = self.on_binary
        while n - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            hl = 2
            if length >= 126:
                if length == 126:
                    if n - pos < 4:
                        break
                    length = (data[pos + 2] << 8) | data[pos + 3]
                    hl = 4
                else:
                    if n - pos < 10:
                        break
                    length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                    hl = 10
                    if length > MAX_FRAME:
                        self._protocol_error(1009, "frame too big")
                        return
            if b1 & 0x80:
                hl += 4
            end = pos + hl + length
            if end > n:
                break
            if b0 == 0x82 and not b1 & 0x80:
                on_binary(data, pos + hl, end, now)
            else:
                self._slow_frame(b0, b1, data, pos, hl, end, now)
                if self.state == CLOSED:
                    return
            pos = end
        if buffered:
            del buf[:pos]
        elif pos < n:
            buf += data[pos:]

    def _slow_frame(self, b0: int, b1: int, data, pos: int, hl: int, end: int, now: int) -> None:
        fin = b0 & 0x80
        op = b0 & 0x0F
        start = pos + hl
        if b1 & 0x80:  # a masked server frame: not allowed, but unmask and go on
            key = bytes(data[start - 4 : start])
            payload = self._xor(bytes(data[start:end]), key)
            data, start, end = payload, 0, len(payload)
        if op == OP_BINARY or op == OP_TEXT:
            if fin:
                if op == OP_BINARY:
                    self.on_binary(data, start, end, now)
                else:
                    self.on_text(bytes(data[start:end]))
            else:
                self._frag_op = op
                self._frag = bytearray(data[start:end])
        elif op == OP_CONT:
            if not self._frag_op:
                self._protocol_error(1002, "unexpected continuation frame")
                return
            self._frag += data[start:end]
            if len(self._frag) > MAX_FRAME:
                self._protocol_error(1009, "message too big")
                return
            if fin:
                msg, op0 = bytes(self._frag), self._frag_op
                self._frag_op, self._frag = 0, bytearray()
                if op0 == OP_BINARY:
                    self.on_binary(msg, 0, len(msg), now)
                else:
                    self.on_text(msg)
        elif op == OP_PING:
            self.send_frame(OP_PONG, bytes(data[start:end]))
        elif op == OP_PONG:
            pass
        elif op == OP_CLOSE:
            payload = bytes(data[start:end])
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.close_sent:
                self.send_frame(OP_CLOSE, payload[:2])
                self.close_sent = True
            self.on_close_frame(self.close_code, payload[2:].decode("utf-8", "replace"))
            self.state = CLOSED
            if self.transport is not None:
                self.transport.close()
        else:
            self._protocol_error(1002, f"unknown opcode {op}")

    def _protocol_error(self, code: int, why: str) -> None:
        self.error = why
        self.close(code)
        self.state = CLOSED
        if self.transport is not None:
            self.transport.close()

    # -- sending (masked) -------------------------------------------------------------

    def _xor(self, payload: bytes, key: bytes | None = None) -> bytes:
        n = len(payload)
        if not n:
            return b""
        if key is None:
            m = self._mask_ints.get(n)
            if m is None:
                m = int.from_bytes((self.mask * (n // 4 + 1))[:n], "big")
                self._mask_ints[n] = m
        else:
            m = int.from_bytes((key * (n // 4 + 1))[:n], "big")
        return (int.from_bytes(payload, "big") ^ m).to_bytes(n, "big")

    def send_frame(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
        transport.write(head + self.mask + self._xor(payload))

    def send_binary(self, payload: bytes) -> None:
        self.send_frame(OP_BINARY, payload)

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode())

    def close(self, code: int = 1000) -> None:
        if self.state == OPEN and not self.close_sent:
            self.close_sent = True
            self.send_frame(OP_CLOSE, code.to_bytes(2, "big"))
            self.state = CLOSING

    # -- hooks ------------------------------------------------------------------------

    def on_open(self) -> None:
        pass

    def on_binary(self, data, start: int, end: int, now: int) -> None:
        pass

    def on_text(self, payload: bytes) -> None:
        pass

    def on_close_frame(self, code: int, reason: str) -> None:
        pass

    def on_lost(self, prev_state: int) -> None:
        pass
