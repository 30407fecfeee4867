"""Evidence rings and recorders, fed through the relay's frame tap (no database)."""

from __future__ import annotations

import io
import time
import tracemalloc

from realtime import evidence as ev
from realtime import recording
from realtime.ogg import PRE_SKIP, RATE, parse_pages
from realtime.relay import Endpoint, Relay
from realtime.tap import FrameTap

PACKET = bytes([0xF8]) + b"\x55" * 79  # 20 ms CELT, 80 bytes: 32 kbit/s
# What clients send (docs/protocol.md 4.2): the codec byte (0x02, Opus), then the packet.
WIRE = b"\x02" + PACKET


class Sink:
    async def send(self, message):
        pass


def _relay_with_tap() -> tuple[Relay, FrameTap, Endpoint, Endpoint]:
    relay, tap = Relay(), FrameTap()
    relay.tap = tap
    eps = []
    for uid in (1, 2):
        ep = Endpoint(room_id=5, user_id=uid, send=Sink().send)
        ep.can_speak = True
        relay.add(ep)
        eps.append(ep)
    return relay, tap, eps[0], eps[1]


async def test_relayed_frames_reach_the_ring_and_muted_ones_do_not():
    relay, tap, a, b = _relay_with_tap()
    relay.voice_in(a, b"one")
    b.can_speak = False
    relay.voice_in(b, b"muted")
    snap = tap.evidence.snapshot(5, 1)
    assert [p for _, p in snap.voice] == [b"one"]
    assert tap.evidence.snapshot(5, 2).voice == []


def test_ring_keeps_30_seconds_only():
    e = ev.Evidence()
    now = time.monotonic()
    for i in range(50 * 40):  # 40 s of 20 ms frames, the last one now
        e.frame(1, 9, PACKET, now - 40 + i * 0.02)
    snap = e.snapshot(1, 9)
    span = snap.voice[-1][0] - snap.voice[0][0]
    assert 29.5 < span <= 30.0
    assert len(snap.voice) <= 30 * 50 + 1


def test_ring_bytes_are_capped_whatever_the_speaker_sends():
    e = ev.Evidence()
    now = time.monotonic()
    for i in range(3000):
        e.frame(1, 9, b"x" * 4096, now - 29 + i * 0.0001)
    assert e.ring_bytes(1, 9) <= ev.VOICE_MAX_BYTES


def test_memory_per_speaker_for_30_seconds_of_opus():
    e = ev.Evidence()
    now = time.monotonic()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    for i in range(1500):
        e.frame(1, 9, PACKET[:1] + bytes([i % 256]) + PACKET[2:], now - 30 + i * 0.02)
    used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
    tracemalloc.stop()
    # 120 KB of payload; the ring's tuples and floats add their share (docs/evidence.md).
    print("evidence ring bytes for 30 s of 32 kbit/s Opus:", used)
    assert 120_000 < used < 400_000, used


def test_chat_keeps_five_minutes():
    e = ev.Evidence()
    wall = time.time()
    e.said(1, 9, "old", wall - 400)
    e.said(1, 9, "recent", wall - 10)
    assert [t for _, t in e.snapshot(1, 9).chat] == ["recent"]


def test_pack_round_trip():
    snap = ev.Snapshot(voice=[(1.5, b"\x00\xff"), (2.0, b"")], chat=[(3.0, "héllo")], taken_at=4.0)
    assert ev.unpack(ev.pack(snap)) == snap


class MemoryStore:
    def __init__(self):
        self.files: dict[tuple[int, int, int], io.BytesIO] = {}
        self.closed: dict[tuple[int, int, int], tuple[int, float]] = {}

    def open(self, room_id, recording_id, user_id, codec):
        out = self.files[(room_id, recording_id, user_id)] = io.BytesIO()
        return out

    def close(self, room_id, recording_id, user_id, out, size, dur):
        self.closed[(room_id, recording_id, user_id)] = (size, dur)


async def test_recording_writes_one_track_per_speaker_with_gaps_kept(monkeypatch):
    store = MemoryStore()
    monkeypatch.setattr(recording, "_store", store)
    relay, tap, a, b = _relay_with_tap()
    recs = tap.recordings
    recs.start(5, 77, time.time(), "opus")
    try:
        rec = recs.active[5]
        # Speaker 1: 1 s of speech at the start, then 1 s more starting at 3 s.
        for start in (0, 3):
            for i in range(50):
                rec.take(1, WIRE, rec.t0 + start + i * 0.02)
        rec.take(1, PACKET, rec.t0 + 4.5)  # no codec byte: not Opus by the convention
        relay.voice_in(b, WIRE)  # through the tap, now
        recs.stop(5)
    finally:
        recs.shutdown()
    assert set(store.closed) == {(5, 77, 1), (5, 77, 2)}
    pages = list(parse_pages(store.files[(5, 77, 1)].getvalue()))
    assert all(p.crc_ok for p in pages)
    assert abs(pages[-1].granule - PRE_SKIP - 4 * RATE) <= 960
    # The file holds the Opus packets without the codec byte (and the gap's fillers).
    assert sum(pk == PACKET for p in pages[2:] for pk in p.packets) == 100
    size, dur = store.closed[(5, 77, 1)]
    assert size == len(store.files[(5, 77, 1)].getvalue()) and abs(dur - 4.0) < 0.03


async def test_whisper_voice_is_evidence_but_not_recorded(monkeypatch):
    store = MemoryStore()
    monkeypatch.setattr(recording, "_store", store)
    relay, tap, a, b = _relay_with_tap()
    tap.recordings.start(5, 1, time.time(), "opus")
    a.target = 2
    relay.voice_in(a, PACKET)
    assert len(tap.recordings.active[5].queue) == 0
    assert len(tap.evidence.snapshot(5, 1).voice) == 1
    tap.recordings.shutdown()


def test_recorder_queue_is_bounded(monkeypatch):
    monkeypatch.setattr(recording, "RECORD_QUEUE_FRAMES", 10)
    rec = recording.Recorder(1, 1, time.time(), "opus")
    for _ in range(15):
        rec.take(1, PACKET, time.monotonic())
    assert len(rec.queue) == 10 and rec.dropped == 5


def test_pcm16_rooms_record_wav_with_gaps_kept(monkeypatch):
    store = MemoryStore()
    monkeypatch.setattr(recording, "_store", store)
    rec = recording.Recorder(3, 9, time.time(), "pcm16")
    pcm = b"\x01\x00" * 320  # 20 ms at 16 kHz
    frame = b"\x01" + pcm  # the codec byte (0x01, PCM16) first, as clients send it
    for start in (0, 2):
        for i in range(50):
            rec.take(4, frame, rec.t0 + start + i * 0.02)
    rec.finish()
    data = store.files[(3, 9, 4)].getvalue()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    samples = int.from_bytes(data[40:44], "little") // 2
    assert abs(samples - 3 * 16000) <= 320  # 1 s, 1 s of silence, 1 s
    assert data[44 : 44 + len(pcm)] == pcm  # the samples, without the codec byte
    assert store.closed[(3, 9, 4)][1] == samples / 16000
