"""A room member of the load generator: counts and times the voice frames it receives,
and the speaker that sends them on an absolute schedule.

Speakers send binary frames of `frame_bytes`; the payload starts with the clients' codec
byte (0x02, Opus: docs/protocol.md 4.2, so a recorded room's writer muxes every frame as
it would a real client's), then the send time (perf_counter ns, big-endian int64) and the
speaker's index (uint32), padded with zeros.
Listeners parse the server's 9-byte header (kind, sender id, sequence), read the send time
back and record the latency; they check the sequence per sender for gaps.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import socket
import struct
import sys
import termios
from array import array

from bench.wsclient import OPEN, HandshakeError, WSClientProtocol, perf_ns

# Server -> client voice frame: header (kind, sender id, seq) + our payload (codec, ts,
# index).
VOICE = struct.Struct("!BIIBqI")
PAYLOAD_HEAD = struct.Struct("!BqI")
PAYLOAD_MIN = PAYLOAD_HEAD.size  # 13
AUDIO_OPUS = 0x02
HEADER_SIZE = 9


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
        kind, uid, seq, _codec, ts, sidx = VOICE.unpack_from(data, start)
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
            conn.send_binary(PAYLOAD_HEAD.pack(AUDIO_OPUS, now, self.index) + self.pad)
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
