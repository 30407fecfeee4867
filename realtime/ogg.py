"""Ogg Opus muxing without decoding (RFC 3533 pages, RFC 7845 Ogg Opus, RFC 6716 TOC).

The relay carries Opus packets as opaque frames; to store them as a file any player
opens, they only need wrapping: an `OpusHead` page, an `OpusTags` page, then pages of
packets whose granule positions (48 kHz samples) say when each page's audio ends.

Timing comes from the relay, not from the packets: each packet is placed at the wall
time it was relayed. A packet's length in samples is read from its TOC byte (RFC 6716
section 3.1; nothing is decoded); when the speaker was silent (the clock ran ahead of the
samples written by more than `GAP_TOLERANCE`), the gap is filled with empty Opus frames
(0-byte frames: the decoder's packet-loss concealment, which fades to silence), so the
granule position keeps following wall time and a gap in speech stays a gap in the file.

`parse_pages` reads a file back (capture pattern, CRC of every page, granule positions):
the tests use it, and it is what "playable up to the crash" is checked with.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

RATE = 48000
GAP_TOLERANCE = 2880  # 60 ms of samples: jitter below this is not a gap
MAX_FILL_SAMPLES = 5760  # one filler packet carries at most 120 ms (RFC 6716 R5)
PAGE_MAX_SEGMENTS = 255
# The encoder delay libopus (browsers, the mini-program) adds; RFC 7845 asks for the
# encoder's figure, which the server cannot know; players warn about 0.
PRE_SKIP = 312


_REVERSED_BITS = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04c11db7, initial 0, not reflected, no final xor).

    zlib's CRC-32 is the same polynomial, reflected: fed the bytes bit-reversed, with
    its pre- and post-inversion undone, its register bit-reversed is Ogg's CRC. So every
    page costs one C call, not a Python loop per byte (about 120 times faster).
    """
    reflected = zlib.crc32(data.translate(_REVERSED_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int.from_bytes(reflected.to_bytes(4, "little").translate(_REVERSED_BITS), "big")


# Samples per frame at 48 kHz for each TOC configuration (RFC 6716 table 2).
_FRAME_SAMPLES = (
    [480, 960, 1920, 2880] * 3  # SILK NB/MB/WB: 10, 20, 40, 60 ms
    + [480, 960] * 2  # Hybrid SWB/FB: 10, 20 ms
    + [120, 240, 480, 960] * 4  # CELT NB/WB/SWB/FB: 2.5, 5, 10, 20 ms
)


# The clients' audio convention (docs/protocol.md 4.2): a voice frame's payload is one
# codec byte, then the audio. Files hold the audio alone.
AUDIO_PCM16 = 0x01
AUDIO_OPUS = 0x02


def audio_data(payload: bytes, codec: str) -> bytes | None:
    """The audio of one relayed payload for a file of the room's `codec` ("opus" or
    "pcm16"): the payload without its codec byte; None for a payload of another codec
    (or empty), which a file of this codec cannot hold."""
    expected = AUDIO_PCM16 if codec == "pcm16" else AUDIO_OPUS
    if len(payload) < 2 or payload[0] != expected:
        return None
    return payload[1:]


def opus_packet_samples(packet: bytes) -> int:
    """How many 48 kHz samples one Opus packet decodes to, from its TOC byte alone.
    A packet too short to say (not Opus, or damaged) counts as 20 ms."""
    if not packet:
        return 960
    toc = packet[0]
    per_frame = _FRAME_SAMPLES[toc >> 3]
    code = toc & 0x3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            return 960
        frames = packet[1] & 0x3F or 1
    return min(per_frame * frames, MAX_FILL_SAMPLES)


def filler_packet(toc_from: bytes, samples: int) -> tuple[bytes, int]:
    """An Opus packet of empty (0-byte) frames covering about `samples` (at most 120 ms),
    in the configuration of `toc_from`'s TOC; returns it and the samples it covers."""
    config = (toc_from[0] >> 3) if toc_from else 31
    stereo = toc_from[0] & 0x4 if toc_from else 0
    per_frame = _FRAME_SAMPLES[config]
    frames = max(1, min(samples, MAX_FILL_SAMPLES) // per_frame)
    # Code 3, CBR, no padding: TOC, then the frame count; every frame has 0 bytes.
    return bytes([(config << 3) | stereo | 0x3, frames]), frames * per_frame


def opus_head(channels: int = 1, pre_skip: int = 0) -> bytes:
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, RATE, 0, 0)


def opus_tags(vendor: str = "voiceroom", comments: list[str] | None = None) -> bytes:
    v = vendor.encode()
    out = b"OpusTags" + struct.pack("<I", len(v)) + v + struct.pack("<I", len(comments or []))
    for c in comments or []:
        raw = c.encode()
        out += struct.pack("<I", len(raw)) + raw
    return out


def page(
    serial: int, seq: int, granule: int, packets: list[bytes], *, bos=False, eos=False
) -> bytes:
    """One Ogg page holding whole packets (the caller keeps them under 255 segments)."""
    lacing = bytearray()
    for p in packets:
        n = len(p)
        lacing.extend(b"\xff" * (n // 255))
        lacing.append(n % 255)
    flags = (0x02 if bos else 0) | (0x04 if eos else 0)
    header = struct.pack("<4sBBqIII", b"OggS", 0, flags, granule, serial, seq, 0)
    body = bytes([len(lacing)]) + bytes(lacing) + b"".join(packets)
    raw = bytearray(header + body)
    struct.pack_into("<I", raw, 22, ogg_crc(bytes(raw)))
    return bytes(raw)


def _segments(packet: bytes) -> int:
    return len(packet) // 255 + 1


class OggOpusWriter:
    """One Opus track as Ogg pages, written to `out` as they fill.

    `packet(data, at_samples)` places a packet at `at_samples` (48 kHz samples since the
    track's time zero: the relay's clock). A page is cut after `page_packets` packets or
    when `flush()` is called (the recorder flushes every second), so a file cut short by
    a crash ends at a whole page: playable up to it.
    """

    def __init__(
        self,
        out: BinaryIO,
        *,
        serial: int = 1,
        channels: int = 1,
        page_packets: int = 50,
        comments: list[str] | None = None,
    ) -> None:
        self.out = out
        self.serial = serial
        self.seq = 0
        self.samples = 0  # samples written so far (end of the last packet)
        self.page_packets = page_packets
        self._pending: list[bytes] = []
        self._pending_segments = 0
        self._started = False
        self._channels = channels
        self._comments = comments
        self.bytes_written = 0
        self._last = b""

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.bytes_written += len(data)

    def _start(self, first: bytes) -> None:
        self._started = True
        channels = 2 if first and first[0] & 0x4 else self._channels
        self._write(page(self.serial, 0, 0, [opus_head(channels, PRE_SKIP)], bos=True))
        self._write(page(self.serial, 1, 0, [opus_tags(comments=self._comments)]))
        self.seq = 2

    def packet(self, data: bytes, at_samples: int) -> None:
        if not self._started:
            self._start(data)
        ahead = at_samples - self.samples
        if ahead > GAP_TOLERANCE:
            self._fill(ahead, data)
        self._add(data, opus_packet_samples(data))
        self._last = data

    def _fill(self, samples: int, like: bytes) -> None:
        template = self._last or like
        while samples > GAP_TOLERANCE // 2:
            filler, covered = filler_packet(template, samples)
            self._add(filler, covered)
            samples -= covered

    def _add(self, data: bytes, samples: int) -> None:
        segs = _segments(data)
        if self._pending and self._pending_segments + segs > PAGE_MAX_SEGMENTS:
            self._emit()
        self._pending.append(data)
        self._pending_segments += segs
        self.samples += samples
        if len(self._pending) >= self.page_packets:
            self._emit()

    def _emit(self, *, eos: bool = False) -> None:
        if not self._pending and not eos:
            return
        granule = self.samples + PRE_SKIP
        self._write(page(self.serial, self.seq, granule, self._pending, eos=eos))
        self.seq += 1
        self._pending = []
        self._pending_segments = 0

    def flush(self) -> None:
        """Cut a page of whatever is pending (a file is whole up to here)."""
        self._emit()

    def close(self) -> None:
        """The last page, marked end of stream."""
        if not self._started:
            return
        self._emit(eos=True)

    @property
    def duration_s(self) -> float:
        return self.samples / RATE


def ogg_opus_bytes(packets: list[tuple[int, bytes]], *, channels: int = 1) -> bytes:
    """A whole Ogg Opus file of (at_samples, packet) pairs, in order."""
    import io

    buf = io.BytesIO()
    writer = OggOpusWriter(buf, channels=channels)
    for at, data in packets:
        writer.packet(data, at)
    writer.close()
    return buf.getvalue()


# --- reading back ---------------------------------------------------------------------


@dataclass
class Page:
    flags: int
    granule: int
    serial: int
    seq: int
    crc_ok: bool
    packets: list[bytes]
    offset: int


class OggError(ValueError):
    pass


def parse_pages(data: bytes) -> Iterator[Page]:
    """Every whole page of `data`, CRC checked; a cut-off page at the end is ignored (a
    player stops there too). Raises OggError on anything that is not a page."""
    pos = 0
    partial = b""
    while pos < len(data):
        if len(data) - pos < 27:
            return
        if data[pos : pos + 4] != b"OggS":
            raise OggError(f"no capture pattern at {pos}")
        _, _, flags, granule, serial, seq, crc, nsegs = struct.unpack_from("<4sBBqIIIB", data, pos)
        if len(data) - pos < 27 + nsegs:
            return
        lacing = data[pos + 27 : pos + 27 + nsegs]
        size = 27 + nsegs + sum(lacing)
        if len(data) - pos < size:
            return
        raw = bytearray(data[pos : pos + size])
        raw[22:26] = b"\0\0\0\0"
        body = data[pos + 27 + nsegs : pos + size]
        packets, cur, at = [], partial, 0
        for lace in lacing:
            cur += body[at : at + lace]
            at += lace
            if lace < 255:
                packets.append(cur)
                cur = b""
        partial = cur
        yield Page(flags, granule, serial, seq, ogg_crc(bytes(raw)) == crc, packets, pos)
        pos += size


def last_granule(tail: bytes) -> int:
    """The granule position of the last whole page in `tail` (the end of a file that may
    have been cut off): how far the file plays. 0 when no whole audio page is found."""
    pos = tail.rfind(b"OggS")
    while pos >= 0:
        pages = list(parse_pages(tail[pos:])) if _is_page(tail, pos) else []
        if pages and pages[-1].crc_ok:
            return pages[-1].granule
        pos = tail.rfind(b"OggS", 0, pos)
    return 0


def _is_page(data: bytes, pos: int) -> bool:
    try:
        next(parse_pages(data[pos:]))
    except (OggError, StopIteration, struct.error):
        return False
    return True


def wav_bytes(pcm: bytes, *, rate: int = 16000, channels: int = 1) -> bytes:
    """A RIFF WAVE file of 16-bit little-endian PCM."""
    block = channels * 2
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm),
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        rate,
        rate * block,
        block,
        16,
        b"data",
        len(pcm),
    )
    return header + pcm


def pcm_track(frames: list[tuple[float, bytes]], *, rate: int = 16000) -> bytes:
    """PCM16 frames placed at their times (seconds from the first): silence fills gaps."""
    out = bytearray()
    if not frames:
        return b""
    t0 = frames[0][0]
    tolerance = int(0.06 * rate) * 2
    for at, data in frames:
        due = int((at - t0) * rate) * 2
        if due - len(out) > tolerance:
            out.extend(b"\0" * (due - len(out)))
        out.extend(data[: len(data) & ~1])
    return bytes(out)
