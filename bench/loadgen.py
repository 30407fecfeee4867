"""Load generator for voice fan-out: N rooms x M members x S speakers, one process.

    python -m bench.loadgen --target bare --url http://127.0.0.1:8765 --json out.json
    python -m bench.loadgen --target voiceroom --url http://127.0.0.1:8000 \\
        --server-pid 1234 --redis-pid 99

Speakers send binary frames of --frame-bytes at --fps; the payload starts with the send
time (perf_counter ns, big-endian int64) and the speaker's index (uint32), padded with
zeros. Listeners parse the server's 9-byte header (kind, sender id, sequence), read the
send time back and record the latency; they check the sequence per sender for gaps.

Only frames SENT inside the measured window count for loss and latency; the tool waits
--grace seconds after the window for stragglers. Throughput and CPU per delivery use the
frames RECEIVED inside the window, the span over which CPU time is sampled.

--stalled K: the last K listeners of each room stop reading (transport.pause_reading())
when the load starts and stay paused until the report is made; they are left out of the
expected deliveries, latency and loss. Around the window the tool reads the servers' RSS
and, for voiceroom, /metrics (voiceroom_voice_*_total deltas, e.g. dropped_backlog).

--interval S: a time series (the soak): one row per S seconds through the warm-up and the
window (throughput, loss by send-time bucket, latency, RSS, CPU, /metrics drops) and a
verdict; the logic is in bench/soak.py.

The client is deliberately lean: an asyncio Protocol on uvloop doing the HTTP Upgrade by
hand and a minimal RFC 6455 parser, so that one core can take ~40,000 frames/s. See
docs/benchmarks.md for the methodology.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fcntl
import gc
import hashlib
import http.client
import json
import math
import os
import platform
import secrets
import socket
import struct
import sys
import termios
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psutil

from bench import soak

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
MAX_FRAME = 16 * 1024 * 1024

# Server -> client voice frame: header (kind, sender id, seq) + our payload (ts, index).
VOICE = struct.Struct("!BIIqI")
PAYLOAD_HEAD = struct.Struct("!qI")
PAYLOAD_MIN = PAYLOAD_HEAD.size  # 12
HEADER_SIZE = 9

perf_ns = time.perf_counter_ns

CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3


class HandshakeError(Exception):
    pass


# --------------------------------------------------------------------------------------
# The WebSocket client protocol: handshake + minimal RFC 6455 framing.
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------


class Stats:
    """Counters shared by all connections of one run (single thread, no locks)."""

    __slots__ = (
        "bad_kind",
        "bucket_ns",
        "close_codes",
        "gap_events",
        "gap_frames",
        "lat",
        "malformed",
        "misrouted",
        "recv",
        "recv_b",
        "reorders",
        "room_of",
        "self_echo",
        "sent",
        "sent_b",
        "sent_room",
        "sent_win_room",
        "skipped_ticks",
        "stalled_recv",
        "text_frames",
        "w0",
        "w1",
        "win_recv",
        "win_recv_rt",
    )

    def __init__(self, rooms: int) -> None:
        self.w0 = 1 << 62  # the measured window, perf_counter ns; set when load starts
        self.w1 = 1 << 62
        self.recv = 0
        self.win_recv = 0  # frames SENT inside the window and received (loss, latency)
        self.win_recv_rt = 0  # frames RECEIVED inside the window (throughput, CPU)
        self.lat = array("q")
        self.gap_events = 0
        self.gap_frames = 0
        self.reorders = 0
        self.self_echo = 0
        self.misrouted = 0
        self.malformed = 0
        self.bad_kind = 0
        self.text_frames = 0
        self.sent = 0
        self.sent_room = [0] * rooms
        self.sent_win_room = [0] * rooms
        self.skipped_ticks = 0
        self.stalled_recv = 0  # voice frames read by stalled listeners (not measured)
        self.room_of: list[int] = []
        self.close_codes: dict[int, int] = {}
        # Send-time buckets of the window (--interval; one bucket without it): frames
        # sent per room and bucket, and those received, for the loss of each interval.
        self.bucket_ns = 1 << 62
        self.recv_b = [0]
        self.sent_b = [[0] for _ in range(rooms)]

    def set_buckets(self, interval_ns: int, n: int) -> None:
        self.bucket_ns = interval_ns
        self.recv_b = [0] * n
        self.sent_b = [[0] * n for _ in self.sent_room]


class BenchClient(WSClientProtocol):
    """One room member: counts and times the voice frames it receives."""

    def __init__(
        self,
        host_header: str,
        path: str,
        stats: Stats,
        index: int,
        room: int,
        frame_bytes: int,
        want_welcome: bool,
    ) -> None:
        super().__init__(host_header, path)
        self.st = stats
        self.index = index
        self.room = room
        self.frame_len = HEADER_SIZE + frame_bytes
        self.last_seq: dict[int, int] = {}
        self.want_welcome = want_welcome
        self.welcome: dict | None = None
        self.stalled = False
        self.fd = -1  # the socket's descriptor, kept while stalled (TCP state, queued bytes)
        self.peer_closed_after_s: float | None = None
        self.peer_closed_at = ""
        self.peer_closed_state = 0
        self.queued_max = 0
        self.ready: asyncio.Future | None = None
        if self.opened is not None:
            self.ready = self.opened.get_loop().create_future()

    def on_open(self) -> None:
        if not self.want_welcome and self.ready is not None and not self.ready.done():
            self.ready.set_result(None)

    def on_text(self, payload: bytes) -> None:
        self.st.text_frames += 1
        if self.welcome is None and self.want_welcome and self.ready is not None:
            try:
                msg = json.loads(payload)
            except ValueError:
                msg = {}
            if not self.ready.done():
                if isinstance(msg, dict) and msg.get("type") == "welcome":
                    self.welcome = msg
                    self.ready.set_result(None)
                else:
                    self.ready.set_exception(
                        HandshakeError(f"first text frame is not welcome: {payload[:200]!r}")
                    )

    def on_binary(self, data, start: int, end: int, now: int) -> None:
        st = self.st
        if end - start != self.frame_len:
            st.malformed += 1
            if end - start < VOICE.size:
                return
        kind, uid, seq, ts, sidx = VOICE.unpack_from(data, start)
        st.recv += 1
        last_seq = self.last_seq
        last = last_seq.get(uid)
        last_seq[uid] = seq
        if last is not None and seq != ((last + 1) & 0xFFFFFFFF):
            st.gap_events += 1
            missing = (seq - last - 1) & 0xFFFFFFFF
            if missing < 0x80000000:
                st.gap_frames += missing
            else:
                st.reorders += 1
        if st.w0 <= ts < st.w1:
            st.win_recv += 1
            st.lat.append(now - ts)
            st.recv_b[(ts - st.w0) // st.bucket_ns] += 1
        if st.w0 <= now < st.w1:
            st.win_recv_rt += 1
        if kind != 1:
            st.bad_kind += 1
        if sidx == self.index:
            st.self_echo += 1
        elif sidx >= len(st.room_of) or st.room_of[sidx] != self.room:
            st.misrouted += 1

    def stall(self) -> None:
        """Stop reading the socket (`--stalled`): the server's writes to it back up.

        Whatever it reads after `unstall()` is counted apart (`stalled_recv`), never in
        the measured deliveries, latency or gaps.
        """
        self.stalled = True
        self.on_binary = self._on_binary_stalled  # feed() looks the hook up per read
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            sock = self.transport.get_extra_info("socket")
            self.fd = sock.fileno() if sock is not None else -1

    def tcp_state(self) -> int:
        """Kernel TCP state of the socket (1 established, 7 close, 8 close-wait ...); 0 unknown.

        A paused transport does not notice the peer closing; the kernel does.
        """
        if self.fd < 0 or self.transport is None or self.transport.is_closing():
            return 0
        try:
            sock = self.transport.get_extra_info("socket")
            return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        except (OSError, AttributeError):
            return 0

    def queued_bytes(self) -> int:
        """Bytes the kernel holds for us, unread (FIONREAD)."""
        if self.fd < 0 or self.transport is None or self.transport.is_closing():
            return 0
        buf = bytearray(4)
        try:
            fcntl.ioctl(self.fd, termios.FIONREAD, buf)
        except OSError:
            return 0
        n = int.from_bytes(buf, sys.byteorder, signed=True)
        self.queued_max = max(self.queued_max, n)
        return n

    def unstall(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _on_binary_stalled(self, data, start: int, end: int, now: int) -> None:
        self.st.stalled_recv += 1

    def on_close_frame(self, code: int, reason: str) -> None:
        self.st.close_codes[code] = self.st.close_codes.get(code, 0) + 1
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(HandshakeError(f"closed by server: {code} {reason}"))

    def on_lost(self, prev_state: int) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(HandshakeError(self.error or "connection lost"))


class Speaker:
    """Sends one frame every 1/fps seconds on its connection, on an absolute schedule."""

    def __init__(self, loop, conn: BenchClient, stats: Stats, frame_bytes: int, fps: float):
        self.loop = loop
        self.conn = conn
        self.st = stats
        self.index = conn.index
        self.room = conn.room
        self.pad = bytes(frame_bytes - PAYLOAD_MIN)
        self.period = 1.0 / fps
        self.t0 = 0.0
        self.k = 0
        self.stop_at_ns = 0
        self.handle: asyncio.TimerHandle | None = None

    def start(self, t0: float, stop_at_ns: int) -> None:
        self.t0 = t0
        self.k = 0
        self.stop_at_ns = stop_at_ns
        self.handle = self.loop.call_at(t0, self._tick)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _tick(self) -> None:
        now = perf_ns()
        if now >= self.stop_at_ns:
            self.handle = None
            return
        st = self.st
        conn = self.conn
        if conn.state == OPEN:
            conn.send_binary(PAYLOAD_HEAD.pack(now, self.index) + self.pad)
            st.sent += 1
            st.sent_room[self.room] += 1
            if st.w0 <= now < st.w1:
                st.sent_win_room[self.room] += 1
                st.sent_b[self.room][(now - st.w0) // st.bucket_ns] += 1
        self.k += 1
        due = self.t0 + self.k * self.period
        lt = self.loop.time()
        if due < lt - 5 * self.period:  # far behind (a stalled loop): skip, don't burst
            skipped = int((lt - due) / self.period)
            st.skipped_ticks += skipped
            self.k += skipped
            due = self.t0 + self.k * self.period
        self.handle = self.loop.call_at(due, self._tick)


def process_cpu(pid: int) -> float:
    """Whole-process CPU seconds: user + sys, reaped children, and live descendants."""
    proc = psutil.Process(pid)
    t = proc.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    try:
        for child in proc.children(recursive=True):
            try:
                ct = child.cpu_times()
                total += ct.user + ct.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def process_rss(pid: int) -> int:
    """Resident set size in bytes of a process and all of its live descendants."""
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    try:
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def servers_rss(pids: list[int]) -> int | None:
    """Summed RSS (bytes) of the server processes, children included; None if one is gone."""
    try:
        return sum(process_rss(pid) for pid in pids) if pids else None
    except psutil.Error:
        return None


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {"name{labels}": value}; comments and bad lines skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "}" in line:
            cut = line.rindex("}") + 1
            name, rest = line[:cut], line[cut:].split()
        else:
            name, *rest = line.split()
        try:
            out[name] = float(rest[0])
        except (IndexError, ValueError):
            continue
    return out


def scrape_metrics(urls: list[str], timeout: float = 5.0) -> dict[str, float] | None:
    """GET /metrics on every node and add the samples up; None if a node does not answer."""
    total: dict[str, float] = {}
    for url in urls:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                          timeout=timeout)  # fmt: skip
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            raw = resp.read()
            if resp.status != 200:
                return None
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
        for name, value in parse_metrics(raw.decode("utf-8", "replace")).items():
            total[name] = total.get(name, 0.0) + value
    return total


def percentile(sorted_values, q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------------------
# REST set-up for target voiceroom (threads, small concurrency; not measured)
# --------------------------------------------------------------------------------------


class RestError(Exception):
    pass


class Rest:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.retries = 0  # 429/503 answers retried (set-up only)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Token {token}"
        for attempt in range(6):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            finally:
                conn.close()
            if resp.status == 429 and attempt < 5:
                wait = resp.getheader("Retry-After") or "1"
                self.retries += 1
                time.sleep(min(10.0, max(0.2, float(wait) if wait.isdigit() else 1.0)))
                continue
            if resp.status == 503 and attempt < 5:  # e.g. database_unavailable: "try again"
                self.retries += 1
                time.sleep(0.2 * (attempt + 1))
                continue
            if resp.status >= 400:
                raise RestError(f"{method} {path}: HTTP {resp.status} {raw[:300]!r}")
            return json.loads(raw) if raw else None
        raise RestError(f"{method} {path}: still refused after retries")


@dataclass
class BenchUser:
    username: str
    password: str
    token: str
    id: int
    node: int = 0


def _load_user_cache(path: str | None) -> list[BenchUser]:
    if not path or not os.path.exists(path):
        return []
    try:
        return [BenchUser(**u) for u in json.loads(Path(path).read_text())]
    except (ValueError, TypeError):
        return []


def _save_user_cache(path: str | None, users: list[BenchUser]) -> None:
    if path:
        tmp = f"{path}.tmp"
        Path(tmp).write_text(json.dumps([asdict(u) for u in users]))
        os.replace(tmp, path)


def _register(rest: Rest, username: str) -> BenchUser:
    password = secrets.token_urlsafe(18) + "-Vr9"
    ans = rest.call(
        "POST",
        "/api/auth/register",
        {"username": username, "password": password, "display_name": username},
    )
    token = ans.get("token")
    if not token:  # the contract says register answers with a token; log in otherwise
        ans = rest.call("POST", "/api/auth/login", {"username": username, "password": password})
        token = ans["token"]
    return BenchUser(username, password, token, int(ans["user"]["id"]))


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


@dataclass
class LoadConfig:
    target: str = "voiceroom"  # "voiceroom" | "bare"
    urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:8000"])
    rooms: int = 10
    members: int = 20
    speakers: int = 2
    fps: float = 50.0
    frame_bytes: int = 120
    duration: float = 20.0
    warmup: float = 5.0
    grace: float = 1.0
    server_pids: list[int] = field(default_factory=list)
    redis_pid: int | None = None
    json_path: str | None = None
    label: str = ""
    setup_concurrency: int = 4
    connect_concurrency: int = 32
    user_cache: str | None = None
    progress: bool = True
    # Listeners per room that stop reading when the load starts (never speakers).
    stalled: int = 0
    # Scrape /metrics around the window: None = only for target voiceroom.
    metrics: bool | None = None
    # > 0: a time series (the soak), one row per `interval` seconds through the warm-up
    # and the window: throughput, loss, latency, RSS, CPU, /metrics drops (bench.soak).
    interval: float = 0.0

    def want_metrics(self) -> bool:
        return self.target == "voiceroom" if self.metrics is None else self.metrics

    def is_stalled(self, index: int) -> bool:
        """The last `stalled` members of each room stall; speakers are the first ones."""
        return index % self.members >= self.members - self.stalled

    def validate(self) -> None:
        if self.target not in ("voiceroom", "bare"):
            raise ValueError("target must be voiceroom or bare")
        if self.frame_bytes < PAYLOAD_MIN:
            raise ValueError(f"--frame-bytes must be >= {PAYLOAD_MIN}")
        if self.members < 2 or self.rooms < 1:
            raise ValueError("need >= 1 room and >= 2 members")
        if not 1 <= self.speakers <= self.members:
            raise ValueError("--speakers must be between 1 and --members")
        if self.fps <= 0 or self.duration <= 0 or self.warmup < 0:
            raise ValueError("--fps and --duration must be > 0, --warmup >= 0")
        if not self.urls:
            raise ValueError("at least one --url")
        if not 0 <= self.stalled <= self.members - self.speakers:
            raise ValueError("--stalled must be between 0 and --members minus --speakers")
        if self.interval < 0:
            raise ValueError("--interval must be >= 0")


def _log(cfg: LoadConfig, msg: str) -> None:
    if cfg.progress:
        print(f"[loadgen{' ' + cfg.label if cfg.label else ''}] {msg}", file=sys.stderr, flush=True)


class _Node:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = f"{self.host}:{self.port}"
        self.rest = Rest(f"http://{self.host}:{self.port}")


async def setup_voiceroom(cfg, nodes, loop, pool) -> tuple[list[BenchUser], list[int]]:
    """Users (reused from the cache when given), then one fresh room per room index."""
    total = cfg.rooms * cfg.members
    users = _load_user_cache(cfg.user_cache)
    if users:
        try:
            await loop.run_in_executor(
                pool, lambda: nodes[0].rest.call("GET", "/api/auth/me", token=users[0].token)
            )
        except (RestError, OSError):
            users = []
    tag = secrets.token_hex(3)
    missing = total - len(users)
    if missing > 0:
        _log(cfg, f"registering {missing} users (password hashing: slow on one core) ...")
        sem = asyncio.Semaphore(cfg.setup_concurrency)
        base = len(users)

        async def reg(n: int) -> BenchUser:
            async with sem:
                node = nodes[n % len(nodes)]
                return await loop.run_in_executor(
                    pool, _register, node.rest, f"bench-{tag}-{base + n}"
                )

        users += await asyncio.gather(*(reg(n) for n in range(missing)))
        _save_user_cache(cfg.user_cache, users)
    users = users[:total]
    owners = [users[r * cfg.members] for r in range(cfg.rooms)]
    capacity = max(2, min(500, cfg.members))
    sem = asyncio.Semaphore(cfg.setup_concurrency)

    async def create(r: int) -> int:
        body = {
            "name": f"bench {cfg.label or tag} {r}",
            "topic": "benchmark",
            "capacity": capacity,
            "seat_count": 0,
        }
        async with sem:
            node = nodes[r % len(nodes)]
            ans = await loop.run_in_executor(
                pool, node.rest.call, "POST", "/api/rooms/", body, owners[r].token
            )
        return int(ans["id"])

    room_ids = list(await asyncio.gather(*(create(r) for r in range(cfg.rooms))))
    return users, room_ids


async def connect_members(
    cfg: LoadConfig,
    nodes: list[_Node],
    loop,
    pool,
    stats: Stats,
    conns: list[BenchClient | None],
    errors: list[str],
    indices,
    users: list[BenchUser],
    room_ids: list[int],
) -> None:
    """Connect members `indices` (join through REST first for voiceroom) into `conns`.

    A member is connected once its socket is open and, for voiceroom, has read its
    `welcome`. Failures are appended to `errors`; the whole call is bounded in time.
    """
    indices = list(indices)
    # Joins write to the database: as gently as the user set-up.
    sem = asyncio.Semaphore(
        cfg.connect_concurrency if cfg.target == "bare" else cfg.setup_concurrency
    )

    async def connect(i: int) -> None:
        room = i // cfg.members
        node = nodes[i % len(nodes)]
        async with sem:
            try:
                if cfg.target == "bare":
                    path = f"/room/{room}?uid={i + 1}"
                else:
                    ans = await loop.run_in_executor(
                        pool,
                        node.rest.call,
                        "POST",
                        f"/api/rooms/{room_ids[room]}/join",
                        {},
                        users[i].token,
                    )
                    ws_path = ans.get("ws_url") or f"/ws/rooms/{room_ids[room]}/"
                    path = f"{ws_path}?ticket={quote(ans['ticket'], safe='')}"
                _, proto = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: BenchClient(
                            node.host_header,
                            path,
                            stats,
                            i,
                            room,
                            cfg.frame_bytes,
                            cfg.target == "voiceroom",
                        ),
                        node.host,
                        node.port,
                    ),
                    10,
                )
                await asyncio.wait_for(proto.ready, 15)
                conns[i] = proto
            except (
                OSError,
                RestError,
                HandshakeError,
                TimeoutError,
                KeyError,
                ValueError,
            ) as exc:
                errors.append(f"member {i}: {type(exc).__name__}: {exc}")

    await asyncio.wait_for(asyncio.gather(*(connect(i) for i in indices)), 120 + 0.5 * len(indices))


async def run_async(cfg: LoadConfig) -> dict:
    cfg.validate()
    loop = asyncio.get_running_loop()
    nodes = [_Node(u) for u in cfg.urls]
    stats = Stats(cfg.rooms)
    total = cfg.rooms * cfg.members
    stats.room_of = [i // cfg.members for i in range(total)]
    me = psutil.Process()
    t_setup = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=max(cfg.setup_concurrency, 4))
    conns: list[BenchClient | None] = [None] * total
    errors: list[str] = []
    result: dict[str, Any] = {}
    try:
        users: list[BenchUser] = []
        room_ids = list(range(cfg.rooms))
        if cfg.target == "voiceroom":
            users, room_ids = await setup_voiceroom(cfg, nodes, loop, pool)
        _log(cfg, f"connecting {total} sockets to {len(nodes)} node(s) ...")
        await connect_members(
            cfg, nodes, loop, pool, stats, conns, errors, range(total), users, room_ids
        )
        connected = sum(1 for c in conns if c is not None)
        per_room = [0] * cfg.rooms
        for c in conns:
            if c is not None:
                per_room[c.room] += 1
        if errors:
            _log(cfg, f"WARNING: {len(errors)} connection(s) failed; first: {errors[0]}")
        if connected < 2:
            raise RuntimeError(f"only {connected} sockets connected: {errors[:3]}")
        setup_s = time.monotonic() - t_setup
        _log(cfg, f"{connected}/{total} connected in {setup_s:.1f} s; load starts")
        await asyncio.sleep(0.3)  # let join events settle
        # The collector's pauses (milliseconds once the heap holds the set-up objects)
        # would show up as latency: freeze what exists and pause it while measuring.
        gc.collect()
        gc.freeze()
        gc.disable()

        # Timeline: speakers start now, warm-up, measured window, then grace.
        speakers = [
            Speaker(loop, c, stats, cfg.frame_bytes, cfg.fps)
            for c in conns
            if c is not None and c.index % cfg.members < cfg.speakers
        ]
        stalled = [c for c in conns if c is not None and cfg.is_stalled(c.index)]
        stalled_per_room = [0] * cfg.rooms
        for c in stalled:
            stalled_per_room[c.room] += 1
        probe = _Probe(cfg, pool, stalled)
        await probe.sample("load_start")
        # Stalled listeners stop reading before the first frame: their buffers (ours in
        # the kernel, the server's in its transport) fill during the warm-up.
        for c in stalled:
            c.stall()
        start_ns = perf_ns()
        watch_task = None
        stall_timeline: list = []
        if stalled:
            _log(cfg, f"{len(stalled)} listener(s) stopped reading")
            watch_task = loop.create_task(
                _watch_stalled(cfg, pool, stalled, start_ns, stall_timeline)
            )
        stats.w0 = start_ns + int(cfg.warmup * 1e9)
        stats.w1 = stats.w0 + int(cfg.duration * 1e9)
        series_task = None
        snaps: list[dict] = []
        if cfg.interval > 0:
            stats.set_buckets(int(cfg.interval * 1e9), soak.buckets(cfg.duration, cfg.interval))
            series_task = loop.create_task(
                _sample_series(cfg, stats, me, pool, start_ns, stats.w0, snaps)
            )
        lt0 = loop.time() + 0.01
        period = 1.0 / cfg.fps
        for k, sp in enumerate(speakers):  # spread the speakers evenly over one period
            sp.start(lt0 + period * k / len(speakers), stats.w1)

        progress_task = loop.create_task(_progress(cfg, stats, start_ns))
        await asyncio.sleep(max(0.0, (stats.w0 - perf_ns()) / 1e9))
        cpu0 = _sample_cpu(cfg, me)
        t0 = perf_ns()
        await probe.sample("window_start")
        await asyncio.sleep(max(0.0, (stats.w1 - perf_ns()) / 1e9))
        cpu1 = _sample_cpu(cfg, me)
        t1 = perf_ns()
        await probe.sample("window_end")
        for sp in speakers:
            sp.stop()
        await asyncio.sleep(cfg.grace)
        progress_task.cancel()
        if series_task is not None:
            await series_task  # its last snapshot was at the window end
        if watch_task is not None:
            watch_task.cancel()
        if stalled:
            await probe.sample("end")
        result = _report(
            cfg,
            stats,
            conns,
            per_room,
            errors,
            cpu0,
            cpu1,
            (t1 - t0) / 1e9,
            stalled_per_room=stalled_per_room,
        )
        result["probes"] = probe.report()
        if series_task is not None:
            expected_b = [
                sum(
                    stats.sent_b[r][k] * max(0, per_room[r] - 1 - stalled_per_room[r])
                    for r in range(cfg.rooms)
                )
                for k in range(len(stats.recv_b))
            ]
            rows = soak.build_rows(
                snaps, stats.lat, stats.recv_b, expected_b, cfg.warmup, lat_end=len(stats.lat)
            )
            result["timeseries"] = {"interval_s": cfg.interval, "rows": rows}
            result["soak"] = soak.verdict(rows)
        if stalled:
            st = result["stalled"]
            st.update(await _drain_stalled(cfg, stats, stalled))
            # Every frame for a stalled listener should be read after it resumes (buffered
            # somewhere) or counted as dropped_backlog by the server. The rest vanished
            # without a trace (e.g. discarded with its socket, or a drop not counted).
            dropped = result["probes"].get("dropped_backlog_run")
            if dropped is not None:
                st["frames_unaccounted"] = int(
                    st["frames_for_stalled_total"]
                    - st["frames_read_while_stalled"]
                    - st["frames_read_after_resume"]
                    - dropped
                )
            result["stalled"]["timeline_columns"] = [
                "s_after_stall",
                "server_rss_mib",
                "dropped_backlog_total",
                "sockets_local",
                "stalled_client_queued_kib",
            ]
            result["stalled"]["timeline"] = stall_timeline
        result["setup_s"] = round(setup_s, 2)
        result["setup_rest_retries"] = sum(n.rest.retries for n in nodes)
    finally:
        gc.enable()
        gc.unfreeze()
        await teardown(cfg, conns)
        pool.shutdown(wait=False, cancel_futures=True)
    if cfg.json_path:
        write_json(cfg.json_path, result)
    return result


async def _sample_series(
    cfg: LoadConfig, stats: Stats, me: psutil.Process, pool, start_ns: int, w0: int, out: list
) -> None:
    """Snapshots for the time series (bench.soak), at the boundaries `soak.marks` gives:
    every cfg.interval seconds through the warm-up, from the window start (w0) on, and
    at the window end. Cheap on the loop: counters and psutil here, /metrics in a thread;
    percentiles are computed after the run."""
    loop = asyncio.get_running_loop()
    warmup_s = (w0 - start_ns) / 1e9
    for t in soak.marks(warmup_s, cfg.duration, cfg.interval):
        due = start_ns + round(t * 1e9) if t < warmup_s else w0 + round((t - warmup_s) * 1e9)
        await asyncio.sleep(max(0.0, (due - perf_ns()) / 1e9))
        now = perf_ns()
        snap: dict[str, Any] = {
            "t_s": (now - start_ns) / 1e9,
            "due_s": t,
            "recv": stats.recv,
            "gap_frames": stats.gap_frames,
            "lat_n": len(stats.lat),
            "sent": stats.sent,
            "skipped_ticks": stats.skipped_ticks,
            "utc": datetime.now(UTC).isoformat(timespec="seconds"),
            # CPU time the hypervisor gave to other guests (all CPUs): a VM's hidden noise.
            "steal": getattr(psutil.cpu_times(), "steal", None),
        }
        cpu = _sample_cpu(cfg, me)
        server = list(cpu["server"].values())
        snap["cpu_self"] = cpu["self"]
        snap["cpu_server"] = sum(server) if server and None not in server else None
        snap["cpu_redis"] = cpu["redis"]
        snap["machine_busy"] = cpu["machine_busy"]
        rss = servers_rss(cfg.server_pids)
        snap["rss_mib"] = None if rss is None else round(rss / 2**20, 2)
        snap["loadgen_rss_mib"] = round(me.memory_info().rss / 2**20, 2)
        snap["metrics"] = None
        if cfg.want_metrics():
            m = await loop.run_in_executor(pool, scrape_metrics, cfg.urls)
            if m is not None:
                snap["metrics"] = {k: v for k, v in m.items() if k.startswith("voiceroom_")}
        out.append(snap)


class _Probe:
    """Server RSS and /metrics at named moments of the run (window start and end ...)."""

    def __init__(self, cfg: LoadConfig, pool, stalled: list[BenchClient]) -> None:
        self.cfg = cfg
        self.pool = pool
        self.stalled = stalled
        self.rss: dict[str, int | None] = {}
        self.queued: dict[str, int] = {}
        self.metrics: dict[str, dict[str, float] | None] = {}

    async def sample(self, name: str) -> None:
        self.rss[name] = servers_rss(self.cfg.server_pids)
        if self.stalled:
            self.queued[name] = sum(c.queued_bytes() for c in self.stalled)
        if self.cfg.want_metrics():
            loop = asyncio.get_running_loop()
            self.metrics[name] = await loop.run_in_executor(
                self.pool, scrape_metrics, self.cfg.urls
            )

    def delta(self, a: str, b: str) -> dict[str, float] | None:
        m0, m1 = self.metrics.get(a), self.metrics.get(b)
        if m0 is None or m1 is None:
            return None
        return {
            k: m1[k] - m0.get(k, 0.0)
            for k in sorted(m1)
            if k.startswith("voiceroom_voice_") and k.endswith("_total")
        }

    def report(self) -> dict:
        mib = {k: None if v is None else round(v / 2**20, 1) for k, v in self.rss.items()}
        window = self.delta("window_start", "window_end")
        out: dict[str, Any] = {
            "server_rss_mib": mib,
            # Bytes the kernel holds, unread, at the stalled listeners (client side).
            "stalled_client_queued_kib": {k: round(v / 1024) for k, v in self.queued.items()},
            "metrics": None,
            "dropped_backlog_window": None,
            "dropped_backlog_warmup": None,
        }
        if self.cfg.want_metrics():
            warmup = self.delta("load_start", "window_start")
            out["metrics"] = {
                "warmup_delta": warmup,
                "window_delta": window,
                "sockets_local": {
                    k: (m or {}).get("voiceroom_sockets_local") for k, m in self.metrics.items()
                },
            }
            key = "voiceroom_voice_dropped_backlog_total"
            out["dropped_backlog_window"] = None if window is None else window.get(key)
            out["dropped_backlog_warmup"] = None if warmup is None else warmup.get(key)
            if "end" in self.metrics:
                run = self.delta("load_start", "end")
                out["metrics"]["run_delta"] = run
                out["dropped_backlog_run"] = None if run is None else run.get(key)
        return out


async def _watch_stalled(
    cfg: LoadConfig, pool, stalled: list[BenchClient], start_ns: int, timeline: list
) -> None:
    """While listeners are stalled: has the server closed one (the kernel's TCP state,
    every 0.5 s)? And once a second a timeline row: seconds since the stall, the servers'
    RSS (MiB), their dropped_backlog and local sockets (/metrics), what the stalled
    listeners' kernel holds unread (KiB)."""
    loop = asyncio.get_running_loop()
    tick = 0
    while True:
        for c in stalled:
            if c.peer_closed_after_s is None:
                state = c.tcp_state()
                if state not in (0, 1):  # no longer ESTABLISHED: the server closed it
                    c.peer_closed_after_s = round((perf_ns() - start_ns) / 1e9, 1)
                    c.peer_closed_at = datetime.now(UTC).isoformat(timespec="milliseconds")
                    c.peer_closed_state = state
        if tick % 2 == 0:
            t = round((perf_ns() - start_ns) / 1e9, 1)
            rss = servers_rss(cfg.server_pids)
            queued = sum(c.queued_bytes() for c in stalled)
            dropped = sockets = None
            if cfg.want_metrics():
                m = await loop.run_in_executor(pool, scrape_metrics, cfg.urls)
                if m is not None:
                    dropped = m.get("voiceroom_voice_dropped_backlog_total")
                    sockets = m.get("voiceroom_sockets_local")
            mib = None if rss is None else round(rss / 2**20, 1)
            timeline.append([t, mib, dropped, sockets, round(queued / 1024)])
        tick += 1
        await asyncio.sleep(0.5)


async def _drain_stalled(cfg: LoadConfig, stats: Stats, stalled: list[BenchClient]) -> dict:
    """After the report: let the stalled listeners read again, see what reaches them."""
    closed = sum(1 for c in stalled if c.state == CLOSED)
    peer_closed = sorted(
        (c.peer_closed_after_s, c.peer_closed_at, c.peer_closed_state)
        for c in stalled
        if c.peer_closed_after_s is not None
    )
    queued_max = [c.queued_max for c in stalled]
    before = stats.stalled_recv
    for c in stalled:
        c.unstall()
    last, quiet_since = stats.stalled_recv, time.monotonic()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.5:
        await asyncio.sleep(0.1)
        if stats.stalled_recv != last:
            last, quiet_since = stats.stalled_recv, time.monotonic()
    return {
        "frames_read_while_stalled": before,
        "frames_read_after_resume": stats.stalled_recv - before,
        "closed_before_resume": closed,
        # Seen in the kernel while stalled: (seconds after the stall, UTC time, TCP state).
        "server_closed": [list(x) for x in peer_closed],
        "client_queued_max_kib": round(max(queued_max) / 1024) if queued_max else None,
        "closed_after_resume": sum(1 for c in stalled if c.state == CLOSED),
        "close_codes": sorted({c.close_code for c in stalled if c.close_code is not None}),
    }


def write_json(path: str, data: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


async def teardown(cfg: LoadConfig, conns: list[BenchClient | None]) -> None:
    live = [c for c in conns if c is not None and c.state == OPEN]
    for c in live:
        if cfg.target == "voiceroom":
            c.send_text('{"type":"leave"}')
        c.close(1000)
    if live:
        try:
            await asyncio.wait_for(asyncio.gather(*(c.lost for c in live)), 3)
        except TimeoutError:
            pass
    for c in conns:
        if c is not None and c.transport is not None and not c.transport.is_closing():
            c.transport.abort()


def _sample_cpu(cfg: LoadConfig, me: psutil.Process) -> dict:
    t = me.cpu_times()
    sys_t = psutil.cpu_times()
    busy = (
        sys_t.user
        + sys_t.system
        + sum(getattr(sys_t, name, 0.0) for name in ("nice", "irq", "softirq"))
    )
    sample = {"self": t.user + t.system, "server": {}, "redis": None, "machine_busy": busy}
    for pid in cfg.server_pids:
        try:
            sample["server"][pid] = process_cpu(pid)
        except psutil.Error:
            sample["server"][pid] = None
    if cfg.redis_pid:
        try:
            sample["redis"] = process_cpu(cfg.redis_pid)
        except psutil.Error:
            sample["redis"] = None
    return sample


async def _progress(cfg: LoadConfig, stats: Stats, start_ns: int) -> None:
    last_recv, last_sent = stats.recv, stats.sent
    while True:
        await asyncio.sleep(1.0)
        now = perf_ns()
        phase = "warm-up" if now < stats.w0 else ("measure" if now < stats.w1 else "grace")
        recv, sent = stats.recv, stats.sent
        _log(
            cfg,
            f"{(now - start_ns) / 1e9:5.1f}s {phase:8s} deliveries/s {recv - last_recv:7d}"
            f"  sent/s {sent - last_sent:5d}  gaps {stats.gap_frames}",
        )
        last_recv, last_sent = recv, sent


def _report(cfg, stats, conns, per_room, errors, cpu0, cpu1, seconds, stalled_per_room=None):
    # Each frame is expected by every other connected member of its room, except the
    # stalled listeners (they are not reading; what reaches them is not measured).
    stalled_per_room = stalled_per_room or [0] * cfg.rooms
    expected = sum(
        stats.sent_win_room[r] * max(0, per_room[r] - 1 - stalled_per_room[r])
        for r in range(cfg.rooms)
    )
    received = stats.win_recv
    lat = sorted(stats.lat)
    lat_ms = {
        "p50": percentile(lat, 0.50) / 1e6 if lat else None,
        "p95": percentile(lat, 0.95) / 1e6 if lat else None,
        "p99": percentile(lat, 0.99) / 1e6 if lat else None,
        "max": lat[-1] / 1e6 if lat else None,
        "mean": (sum(lat) / len(lat)) / 1e6 if lat else None,
        "n": len(lat),
    }
    deliveries = stats.win_recv_rt

    def per_delivery(cpu_s):
        return cpu_s / deliveries * 1e6 if deliveries else None

    server_cpu = None
    if cfg.server_pids:
        deltas = [
            cpu1["server"][p] - cpu0["server"][p]
            for p in cfg.server_pids
            if cpu0["server"].get(p) is not None and cpu1["server"].get(p) is not None
        ]
        server_cpu = sum(deltas) if deltas else None
    redis_cpu = None
    if cpu0["redis"] is not None and cpu1["redis"] is not None:
        redis_cpu = cpu1["redis"] - cpu0["redis"]
    self_cpu = cpu1["self"] - cpu0["self"]
    self_pct = 100.0 * self_cpu / seconds
    # CPU used by everything else on the machine during the window: interference.
    others = cpu1["machine_busy"] - cpu0["machine_busy"] - self_cpu
    others -= (server_cpu or 0.0) + (redis_cpu or 0.0)
    others_pct = max(0.0, 100.0 * others / seconds)
    warnings = []
    if self_pct > 85:
        warnings.append(
            f"load generator CPU {self_pct:.0f}% of one core (> 85%): it may be the bottleneck"
        )
    if others_pct > 20:
        warnings.append(
            f"other processes used {others_pct:.0f}% of a core during the window: noisy machine"
        )
    if errors:
        warnings.append(f"{len(errors)} of {len(conns)} connections failed")
    if stats.skipped_ticks:
        warnings.append(f"speakers skipped {stats.skipped_ticks} ticks (loop stalls)")
    loss = (1.0 - received / expected) * 100.0 if expected else None

    def r2(v):
        return round(v, 3) if isinstance(v, float) else v

    result = {
        "label": cfg.label,
        "target": cfg.target,
        "urls": cfg.urls,
        "params": {
            "rooms": cfg.rooms,
            "members": cfg.members,
            "speakers": cfg.speakers,
            "fps": cfg.fps,
            "frame_bytes": cfg.frame_bytes,
            "duration": cfg.duration,
            "warmup": cfg.warmup,
            "grace": cfg.grace,
            "stalled": cfg.stalled,
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "loadgen_affinity": sorted(os.sched_getaffinity(0)),
        "measured_s": round(seconds, 3),
        "connections": {
            "wanted": len(conns),
            "connected": sum(1 for c in conns if c is not None),
            "failed": len(errors),
            "errors": errors[:10],
            "server_close_codes": {str(k): v for k, v in stats.close_codes.items()},
        },
        "stalled": {
            "per_room": cfg.stalled,
            "sockets": sum(stalled_per_room),
            # Frames sent in the window into rooms with stalled listeners, times those
            # listeners: what the server had to drop (or buffer) for them.
            "frames_for_stalled_in_window": sum(
                stats.sent_win_room[r] * stalled_per_room[r] for r in range(cfg.rooms)
            ),
            # The same over the whole run (they stall before the first frame).
            "frames_for_stalled_total": sum(
                stats.sent_room[r] * stalled_per_room[r] for r in range(cfg.rooms)
            ),
        },
        "sent_total": stats.sent,
        "sent_in_window": sum(stats.sent_win_room),
        "expected_deliveries": expected,
        "received_in_window": received,
        "deliveries_in_window": deliveries,
        "deliveries_per_s": r2(deliveries / seconds),
        "expected_deliveries_per_s": r2(expected / seconds),
        "loss_pct": r2(loss) if loss is not None else None,
        "gap_events": stats.gap_events,
        "gap_frames": stats.gap_frames,
        "reorders": stats.reorders,
        "self_echo": stats.self_echo,
        "misrouted": stats.misrouted,
        "malformed": stats.malformed,
        "bad_kind": stats.bad_kind,
        "text_frames": stats.text_frames,
        "latency_ms": {k: r2(v) for k, v in lat_ms.items()},
        "server_pids": cfg.server_pids,
        "server_cpu_s": r2(server_cpu),
        "server_cpu_pct": r2(100 * server_cpu / seconds) if server_cpu is not None else None,
        "server_cpu_us_per_delivery": r2(per_delivery(server_cpu))
        if server_cpu is not None
        else None,
        "redis_pid": cfg.redis_pid,
        "redis_cpu_s": r2(redis_cpu),
        "redis_cpu_us_per_delivery": r2(per_delivery(redis_cpu)) if redis_cpu is not None else None,
        "loadgen_cpu_pct": r2(self_pct),
        "loadgen_cpu_us_per_delivery": r2(per_delivery(self_cpu)),
        "other_processes_cpu_pct": r2(others_pct),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "warnings": warnings,
    }
    return result


def summary_line(res: dict) -> str:
    lat = res.get("latency_ms") or {}

    def f(v, fmt="{:.1f}"):
        return "-" if v is None else fmt.format(v)

    line = (
        f"{res.get('target')} {res.get('label', '')}:"
        f" deliveries/s {f(res['deliveries_per_s'], '{:.0f}')}"
        f" (expected {f(res['expected_deliveries_per_s'], '{:.0f}')}),"
        f" loss {f(res['loss_pct'], '{:.3f}')}%, gaps {res['gap_frames']},"
        f" latency ms p50 {f(lat.get('p50'), '{:.2f}')} p95 {f(lat.get('p95'), '{:.2f}')}"
        f" p99 {f(lat.get('p99'), '{:.2f}')} max {f(lat.get('max'), '{:.2f}')},"
        f" server CPU {f(res['server_cpu_us_per_delivery'])} us/delivery,"
        f" redis {f(res['redis_cpu_us_per_delivery'])} us/delivery,"
        f" loadgen CPU {f(res['loadgen_cpu_pct'], '{:.0f}')}%"
        f" ({f(res['loadgen_cpu_us_per_delivery'])} us/delivery)"
    )
    probes = res.get("probes") or {}
    rss = probes.get("server_rss_mib") or {}
    if rss.get("window_start") is not None:
        line += (
            f", server RSS MiB {f(rss.get('load_start'))} (load start)"
            f" {f(rss.get('window_start'))} -> {f(rss.get('window_end'))} (window)"
        )
    stalled = res.get("stalled") or {}
    if stalled.get("sockets"):
        line += (
            f"; {stalled['sockets']} stalled listener(s) (not measured),"
            f" dropped_backlog in window {f(probes.get('dropped_backlog_window'), '{:.0f}')}"
            f" of {stalled['frames_for_stalled_in_window']} frames for them"
        )
    return line


def run(cfg: LoadConfig | None = None, **kwargs) -> dict:
    """Run one load test in a fresh uvloop event loop; returns the result dict."""
    if cfg is None:
        cfg = LoadConfig(**kwargs)
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        res = runner.run(run_async(cfg))
    for w in res.get("warnings", []):
        print(f"WARNING: {w}", file=sys.stderr, flush=True)
    return res


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description="Voice fan-out load generator (see docs/benchmarks.md).",
    )
    p.add_argument("--target", choices=["voiceroom", "bare"], default="voiceroom")
    p.add_argument(
        "--url",
        action="append",
        dest="urls",
        help="node base URL (repeat for several nodes; members go round-robin). "
        "Default http://127.0.0.1:8000",
    )
    p.add_argument("--rooms", type=int, default=10)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--speakers", type=int, default=2)
    p.add_argument("--fps", type=float, default=50.0)
    p.add_argument("--frame-bytes", type=int, default=120)
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--grace", type=float, default=1.0, help="wait for stragglers (s)")
    p.add_argument("--server-pid", type=int, action="append", default=[], dest="server_pids")
    p.add_argument("--redis-pid", type=int, default=None)
    p.add_argument("--json", dest="json_path", default=None, help="write the results here")
    p.add_argument("--label", default="")
    p.add_argument("--setup-concurrency", type=int, default=4)
    p.add_argument("--user-cache", default=None, help="JSON file to reuse bench users")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--stalled",
        type=int,
        default=0,
        help="listeners per room that stop reading when the load starts (not measured)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="> 0: a time series, one row per INTERVAL s (the soak; see bench.soak)",
    )
    p.add_argument(
        "--no-metrics",
        action="store_true",
        help="do not scrape /metrics (never scraped for --target bare)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = LoadConfig(
        target=args.target,
        urls=args.urls or ["http://127.0.0.1:8000"],
        rooms=args.rooms,
        members=args.members,
        speakers=args.speakers,
        fps=args.fps,
        frame_bytes=args.frame_bytes,
        duration=args.duration,
        warmup=args.warmup,
        grace=args.grace,
        server_pids=args.server_pids,
        redis_pid=args.redis_pid,
        json_path=args.json_path,
        label=args.label,
        setup_concurrency=args.setup_concurrency,
        user_cache=args.user_cache,
        progress=not args.quiet,
        stalled=args.stalled,
        metrics=False if args.no_metrics else None,
        interval=args.interval,
    )
    try:
        cfg.validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        res = run(cfg)
    except (RuntimeError, RestError, OSError, TimeoutError) as exc:
        print(f"loadgen failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(summary_line(res))
    if res.get("timeseries"):
        print(soak.table(res["timeseries"]["rows"]))
        print(soak.summary(res["soak"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
