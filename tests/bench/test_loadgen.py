"""The load generator: its RFC 6455 client pieces, and a short run against the bare relay."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
import subprocess
import sys
import time

import pytest

from bench import loadgen, wsclient
from bench.client import PAYLOAD_MIN, BenchClient, Stats
from bench.wsclient import OPEN, WSClientProtocol
from tests.bench.conftest import ROOT


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class Recorder(WSClientProtocol):
    def __init__(self) -> None:
        super().__init__("127.0.0.1:1", "/")
        self.transport = FakeTransport()
        self.frames: list[tuple[str, bytes]] = []
        self.closes: list[tuple[int, str]] = []

    def on_binary(self, data, start, end, now):
        self.frames.append(("binary", bytes(data[start:end])))

    def on_text(self, payload):
        self.frames.append(("text", payload))

    def on_close_frame(self, code, reason):
        self.closes.append((code, reason))


def server_frame(payload: bytes, opcode: int = 2, fin: bool = True) -> bytes:
    """An unmasked server-to-client frame."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes((b0, n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, 126, n)
    else:
        head = struct.pack("!BBQ", b0, 127, n)
    return head + payload


def unmask_client_frames(raw: bytes) -> list[tuple[int, bytes]]:
    """Parse masked client-to-server frames (what the load generator writes)."""
    out, pos = [], 0
    while pos < len(raw):
        b0, b1 = raw[pos], raw[pos + 1]
        assert b1 & 0x80, "client frames must be masked"
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            n, pos = struct.unpack_from("!H", raw, pos)[0], pos + 2
        elif n == 127:
            n, pos = struct.unpack_from("!Q", raw, pos)[0], pos + 8
        key, pos = raw[pos : pos + 4], pos + 4
        body = bytes(b ^ key[i % 4] for i, b in enumerate(raw[pos : pos + n]))
        out.append((b0 & 0x0F, body))
        pos += n
    return out


def opened() -> Recorder:
    proto = Recorder()
    proto.state = OPEN
    return proto


PAYLOADS = [b"", b"x", bytes(range(125)), bytes(126), bytes(range(256)) * 2, b"z" * 70_000]


def test_frames_split_at_every_byte():
    stream = b"".join(server_frame(p) for p in PAYLOADS)
    proto = opened()
    for i in range(len(stream)):
        proto.data_received(stream[i : i + 1])
    assert proto.frames == [("binary", p) for p in PAYLOADS]
    assert not proto._buf


def test_frames_split_at_random_points_and_many_in_one_chunk():
    rng = random.Random(7)
    frames = [server_frame(p) for p in PAYLOADS * 3]
    frames.insert(2, server_frame(b'{"type":"chat"}', opcode=1))
    stream = b"".join(frames)
    for _ in range(20):
        proto = opened()
        pos = 0
        while pos < len(stream):
            step = rng.choice([1, 2, 3, 9, 100, 5000, 100_000])
            proto.data_received(stream[pos : pos + step])
            pos += step
        assert [p for _, p in proto.frames] == (
            PAYLOADS[:2] + [b'{"type":"chat"}'] + PAYLOADS[2:] + PAYLOADS * 2
        )
    proto = opened()
    proto.data_received(stream)  # everything in one read
    assert len(proto.frames) == len(frames)


def test_length_encodings():
    proto = opened()
    for n in (125, 126, 65535, 65536, 100_000):
        proto.data_received(server_frame(b"a" * n))
    assert [len(p) for _, p in proto.frames] == [125, 126, 65535, 65536, 100_000]
    # 16-bit and 64-bit length fields really were used
    assert server_frame(b"a" * 126)[1] == 126
    assert server_frame(b"a" * 65536)[1] == 127


def test_fragmented_message_with_interleaved_ping():
    proto = opened()
    stream = (
        server_frame(b"hel", opcode=2, fin=False)
        + server_frame(b"ping!", opcode=9)
        + server_frame(b"lo", opcode=0, fin=False)
        + server_frame(b"!", opcode=0, fin=True)
    )
    proto.data_received(stream[:4])
    proto.data_received(stream[4:])
    assert proto.frames == [("binary", b"hello!")]
    assert unmask_client_frames(bytes(proto.transport.written)) == [(10, b"ping!")]


def test_close_frame_is_answered_and_closes():
    proto = opened()
    proto.data_received(server_frame(struct.pack("!H", 4001) + b"bad ticket", opcode=8))
    assert proto.closes == [(4001, "bad ticket")]
    assert proto.close_code == 4001
    assert unmask_client_frames(bytes(proto.transport.written)) == [(8, struct.pack("!H", 4001))]
    assert proto.transport.closed


def test_masked_sends_round_trip():
    proto = opened()
    payloads = [b"", b"abc", bytes(range(120)), b"q" * 300, b"r" * 70_000]
    for p in payloads:
        proto.send_binary(p)
    proto.send_text('{"type":"leave"}')
    frames = unmask_client_frames(bytes(proto.transport.written))
    assert frames == [(2, p) for p in payloads] + [(1, b'{"type":"leave"}')]


def test_handshake_then_frames_in_the_same_read():
    proto = Recorder()
    proto.connection_made(proto.transport)
    request = bytes(proto.transport.written).decode()
    assert request.startswith("GET / HTTP/1.1\r\n") and "Upgrade: websocket" in request
    key = next(
        line.split(": ", 1)[1] for line in request.split("\r\n") if line.startswith("Sec-Web")
    )
    accept = base64.b64encode(hashlib.sha1(key.encode() + wsclient.WS_GUID).digest()).decode()
    answer = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()
    stream = answer + server_frame(b'{"type":"welcome"}', opcode=1) + server_frame(b"\x01" * 30)
    proto.data_received(stream[:20])
    proto.data_received(stream[20:-5])
    proto.data_received(stream[-5:])
    assert proto.state == OPEN
    assert proto.frames == [("text", b'{"type":"welcome"}'), ("binary", b"\x01" * 30)]


def test_refused_upgrade_is_an_error():
    proto = Recorder()
    proto.data_received(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    assert proto.state != OPEN
    assert "403" in proto.error
    assert proto.transport.closed


def test_voice_frames_are_counted_and_checked():
    stats = Stats(rooms=1)
    stats.room_of = [0, 0, 0]
    stats.w0, stats.w1 = 0, 1 << 62
    client = BenchClient("h:1", "/", stats, 0, 0, 120, want_welcome=False)
    client.state = OPEN
    client.transport = FakeTransport()
    pad = bytes(120 - PAYLOAD_MIN)

    def voice(uid, seq, sidx):
        ts = time.perf_counter_ns()
        payload = struct.pack("!BqI", 2, ts, sidx) + pad  # codec byte, send time, index
        return server_frame(struct.pack("!BII", 1, uid, seq) + payload)

    client.data_received(voice(2, 1, 1) + voice(2, 2, 1) + voice(2, 5, 1) + voice(3, 9, 2))
    client.data_received(voice(1, 1, 0))  # its own frame coming back: an error
    client.data_received(server_frame(b'{"type":"participant.joined"}', opcode=1))
    assert stats.recv == 5
    assert stats.win_recv == 5 and len(stats.lat) == 5
    assert stats.gap_events == 1 and stats.gap_frames == 2
    assert stats.self_echo == 1 and stats.misrouted == 0 and stats.malformed == 0
    assert stats.text_frames == 1


@pytest.mark.processes
def test_loadgen_against_bare_relay(bare_relay, tmp_path):
    port, pid = bare_relay
    out = tmp_path / "res.json"
    res = loadgen.run(
        target="bare",
        urls=[f"http://127.0.0.1:{port}"],
        rooms=2,
        members=4,
        speakers=1,
        fps=50,
        frame_bytes=120,
        duration=2.0,
        warmup=0.5,
        grace=0.5,
        server_pids=[pid],
        json_path=str(out),
        progress=False,
    )
    expected_rate = 2 * 1 * 3 * 50  # rooms x speakers x (members - 1) x fps
    assert res["connections"]["connected"] == 8
    assert res["sent_in_window"] == pytest.approx(2 * 50 * 2.0, abs=4)
    assert res["expected_deliveries"] == res["sent_in_window"] * 3
    assert res["deliveries_per_s"] == pytest.approx(expected_rate, rel=0.1)
    assert res["loss_pct"] == 0
    assert res["gap_frames"] == 0
    assert res["self_echo"] == res["misrouted"] == res["malformed"] == res["bad_kind"] == 0
    lat = res["latency_ms"]
    assert lat["n"] == res["received_in_window"] > 0
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"] < 1000
    assert res["server_cpu_us_per_delivery"] > 0
    # The kernel's share (system time) is part of the server's CPU, not beside it.
    assert 0 <= res["server_sys_us_per_delivery"] <= res["server_cpu_us_per_delivery"]
    assert res["loadgen_cpu_pct"] >= 0
    saved = json.loads(out.read_text())
    assert saved["deliveries_per_s"] == res["deliveries_per_s"]
    for key in ("date", "hostname", "python", "cpu_model", "params"):
        assert saved[key]


@pytest.mark.processes
def test_python_m_bench_loadgen_runs_as_documented(bare_relay, tmp_path):
    """`python -m bench.loadgen` (docs/benchmarks.md; bench.run starts it this way) still
    runs a load test, prints its summary line and writes the JSON, now that the parts
    live in modules of their own."""
    port, pid = bare_relay
    out = tmp_path / "res.json"
    argv = [sys.executable, "-m", "bench.loadgen", "--target", "bare"]
    argv += ["--url", f"http://127.0.0.1:{port}", "--server-pid", str(pid), "--quiet"]
    argv += ["--rooms", "1", "--members", "3", "--speakers", "1", "--duration", "1"]
    argv += ["--warmup", "0.3", "--grace", "0.3", "--json", str(out), "--label", "cli"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bare cli: deliveries/s "), done.stdout
    assert " loss 0.000%, gaps 0," in done.stdout, done.stdout
    saved = json.loads(out.read_text())
    assert saved["label"] == "cli" and saved["connections"]["connected"] == 3
