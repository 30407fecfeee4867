"""The Ogg Opus muxer: pages with valid CRCs, OpusHead/OpusTags, granules from wall time."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.ogg import (
    PRE_SKIP,
    RATE,
    OggOpusWriter,
    ogg_crc,
    ogg_opus_bytes,
    opus_packet_samples,
    parse_pages,
    wav_bytes,
)

# TOC 0xF8: CELT fullband 20 ms, mono, one frame (what browsers' encoders send).
PACKET = bytes([0xF8]) + bytes(range(60))


def _crc_by_the_book(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
            crc &= 0xFFFFFFFF
    return crc


def test_crc_matches_the_reference_value():
    # The Ogg CRC of "123456789" (polynomial 0x04c11db7, init 0, no reflection, no xorout).
    assert ogg_crc(b"123456789") == 0x89A1897F


@given(st.binary(max_size=2000))
def test_crc_matches_the_bitwise_definition(data):
    assert ogg_crc(data) == _crc_by_the_book(data)


def test_packet_lengths_come_from_the_toc():
    assert opus_packet_samples(bytes([0xF8, 1])) == 960  # CELT 20 ms
    assert opus_packet_samples(bytes([0x08 | 0x3, 3])) == 3 * 960  # SILK 20 ms x3
    assert opus_packet_samples(bytes([(18 << 3) | 1, 0])) == 2 * 480  # CELT 10 ms x2
    assert opus_packet_samples(b"") == 960


def test_file_has_head_tags_and_monotonic_granules():
    packets = [(i * 960, PACKET) for i in range(120)]
    data = ogg_opus_bytes(packets)
    pages = list(parse_pages(data))
    assert all(p.crc_ok for p in pages)
    assert pages[0].packets[0].startswith(b"OpusHead") and pages[0].flags & 0x02
    assert pages[1].packets[0].startswith(b"OpusTags")
    assert pages[-1].flags & 0x04
    granules = [p.granule for p in pages[2:]]
    assert granules == sorted(granules)
    assert granules[-1] == 120 * 960 + PRE_SKIP
    assert [p.seq for p in pages] == list(range(len(pages)))
    assert sum(len(p.packets) for p in pages[2:]) == 120


def test_a_silence_keeps_its_length():
    # 1 s of speech, 3 s of silence, 1 s of speech: the file lasts 5 s, not 2 s.
    packets = [(i * 960, PACKET) for i in range(50)]
    packets += [(4 * RATE + i * 960, PACKET) for i in range(50)]
    pages = list(parse_pages(ogg_opus_bytes(packets)))
    assert abs(pages[-1].granule - PRE_SKIP - 5 * RATE) <= 960
    payloads = [pk for p in pages[2:] for pk in p.packets]
    assert payloads.count(PACKET) == 100
    assert len(payloads) > 100  # fillers stand for the silence


def test_cut_file_is_whole_up_to_the_last_flushed_page():
    buf = io.BytesIO()
    w = OggOpusWriter(buf)
    for i in range(40):
        w.packet(PACKET, i * 960)
        if i % 10 == 9:
            w.flush()
    cut = buf.getvalue()[:-7]  # a crash in the middle of the last page
    pages = list(parse_pages(cut))
    assert all(p.crc_ok for p in pages)
    assert pages[-1].granule == 30 * 960 + PRE_SKIP


@pytest.mark.skipif(shutil.which("opusinfo") is None, reason="opusinfo (opus-tools) not installed")
def test_opusinfo_accepts_the_file(tmp_path):
    path = tmp_path / "t.opus"
    packets = [(i * 960, PACKET) for i in range(100)] + [(200 * 960, PACKET)]
    path.write_bytes(ogg_opus_bytes(packets))
    out = subprocess.run(["opusinfo", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARNING" not in out.stdout and "ERROR" not in out.stdout, out.stdout


@given(st.lists(st.tuples(st.integers(0, 500), st.binary(min_size=1, max_size=700)), max_size=60))
def test_any_packets_give_pages_that_parse_back(items):
    at, packets = 0, []
    for step, raw in items:
        at += step * 48
        packets.append((at, raw))
    pages = list(parse_pages(ogg_opus_bytes(packets)))
    assert all(p.crc_ok for p in pages)
    granules = [p.granule for p in pages]
    assert granules == sorted(granules)
    got = [pk for p in pages[2:] for pk in p.packets]
    real = [pk for pk in got if pk in {raw for _, raw in packets}]
    assert len(real) >= len(packets)


def test_wav_header():
    data = wav_bytes(b"\x01\x00" * 16000, rate=16000)
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    assert int.from_bytes(data[40:44], "little") == 32000
