"""What a socket may send and how voice looks on the wire: sizes, rates, the voice header.

The relay (realtime/relay.py) and the servers' limits (realtime/servers/) need these,
and realtime imports nothing from rooms' faces; rooms/ws/frames.py re-exports them for
the consumer's text frames.

Voice header (server to client), then the payload unchanged:
  byte 0     kind: 1 room voice, 2 whisper voice
  bytes 1-4  sender user id, uint32 big-endian
  bytes 5-8  sequence, uint32 big-endian, per sender, +1 per relayed frame
"""

from __future__ import annotations

import struct

VOICE_ROOM = 1
VOICE_WHISPER = 2
HEADER = struct.Struct(">BII")
HEADER_SIZE = HEADER.size  # 9
MAX_VOICE_BYTES = 4096
MAX_TEXT_FRAME_BYTES = 8192
MAX_CHAT_CHARS = 500
# The largest WebSocket message a server takes in: a larger one closes its socket with
# 1009 before its payload is buffered (uvicorn `--ws-max-size`, daphne through
# realtime/servers/daphne.py; every documented command, checked by tests/voiceroom/
# test_server_commands.py). The largest frame with a use is a whisper of 500 characters
# outside the BMP, each a 12-byte JSON escape (`\ud83d\ude00`), to the largest user id:
# 6044 bytes. Text frames up to MAX_TEXT_FRAME_BYTES are read (room for whitespace,
# a long ban reason that is cut); voice frames are at most 4096 bytes. 1 KiB more
# than that, so a client slightly over a limit gets its `frame_too_large` error and
# keeps its socket, and no message a node buffers is over 9 KiB (uvicorn: 16 MiB).
MAX_MESSAGE_BYTES = MAX_TEXT_FRAME_BYTES + 1024  # 9216

# Voice: 100 frames/s sustained per socket (twice a 50 fps codec), bursts up to 50 more.
VOICE_RATE, VOICE_BURST = 100.0, 150.0
# Text frames: 20/s sustained, bursts up to 40.
TEXT_RATE, TEXT_BURST = 20.0, 40.0
# Abuse budget: every refused frame costs points; at zero the socket is closed with 4008.
ABUSE_BUDGET, ABUSE_REFILL = 500.0, 50.0
COST_VOICE_OVER_RATE = 1.0
COST_BAD_FRAME = 25.0
COST_TEXT_OVER_RATE = 5.0


def voice_header(kind: int, sender_id: int, seq: int) -> bytes:
    return HEADER.pack(kind, sender_id & 0xFFFFFFFF, seq & 0xFFFFFFFF)


class Bucket:
    """A token bucket: `take()` is true while the sustained rate and burst allow."""

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        tokens = self.tokens + (now - self.last) * self.rate
        if tokens > self.capacity:
            tokens = self.capacity
        self.last = now
        if tokens >= cost:
            self.tokens = tokens - cost
            return True
        self.tokens = tokens
        return False


def voice_size_ok(size: int) -> bool:
    """The one rule for a voice frame's size (1 to MAX_VOICE_BYTES bytes): the relay
    refuses the rest, and the server's direct hand-off leaves them to the usual path,
    which answers them with an error."""
    return 0 < size <= MAX_VOICE_BYTES
