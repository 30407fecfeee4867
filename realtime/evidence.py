"""Evidence for reports: each speaker's last 30 s of relayed voice, each member's last
5 minutes of chat, kept by the node whose socket the member's voice and chat came in on.

Bounded in memory, whatever a speaker sends:
- voice: a ring of (monotonic time, payload) per (room, speaker); frames older
  than VOICE_WINDOW_S are dropped as new ones arrive, and so are the oldest once the
  payload bytes pass VOICE_MAX_BYTES. The relay refuses frames over 4096 bytes and over
  100 frames/s sustained (realtime/limits.py), so a ring holds at most 3,000 frames;
  VOICE_MAX_BYTES (1 MiB) caps the payload a speaker can pin at once. Measured cost for
  32 kbit/s Opus in 20 ms packets (docs/evidence.md): about 290 KB per speaker.
- chat: a ring of (wall time, text) per (room, member), older than CHAT_WINDOW_S
  dropped, at most CHAT_MAX_MESSAGES (the text rate limit allows fewer in 5 minutes).
Rings of speakers who went quiet are swept by `sweep()` (the runtime calls it).

`snapshot()` freezes one member's evidence; `pack`/`unpack` turn it into bytes that
cross the channel layer when the member's socket is on another node (rooms asks that
node through the socket's channel: rooms/ws/consumer.py `evidence_request`).
"""

from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass, field

VOICE_WINDOW_S = 30.0
VOICE_MAX_BYTES = 1 << 20
CHAT_WINDOW_S = 300.0
CHAT_MAX_MESSAGES = 600


class VoiceRing:
    __slots__ = ("bytes", "frames")

    def __init__(self) -> None:
        self.frames: deque[tuple[float, bytes]] = deque()
        self.bytes = 0

    def add(self, now: float, payload: bytes) -> None:
        frames = self.frames
        frames.append((now, payload))
        self.bytes += len(payload)
        horizon = now - VOICE_WINDOW_S
        while frames and (frames[0][0] < horizon or self.bytes > VOICE_MAX_BYTES):
            self.bytes -= len(frames.popleft()[1])

    def expire(self, now: float) -> None:
        horizon = now - VOICE_WINDOW_S
        frames = self.frames
        while frames and frames[0][0] < horizon:
            self.bytes -= len(frames.popleft()[1])


@dataclass
class Snapshot:
    """One member's evidence at the moment of a report."""

    voice: list[tuple[float, bytes]] = field(default_factory=list)  # (wall time, payload)
    chat: list[tuple[float, str]] = field(default_factory=list)  # (wall time, text)
    taken_at: float = 0.0  # wall time


class Evidence:
    def __init__(self) -> None:
        self.voice: dict[int, dict[int, VoiceRing]] = {}  # room -> speaker -> ring
        self.chat: dict[tuple[int, int], deque[tuple[float, str]]] = {}

    def frame(self, room_id: int, user_id: int, payload: bytes, now: float) -> None:
        """The relay's tap: one relayed frame (hot path: two dict lookups, one append)."""
        room = self.voice.get(room_id)
        if room is None:
            room = self.voice[room_id] = {}
        ring = room.get(user_id)
        if ring is None:
            ring = room[user_id] = VoiceRing()
        ring.add(now, payload)

    def said(self, room_id: int, user_id: int, text: str, wall: float | None = None) -> None:
        log = self.chat.get((room_id, user_id))
        if log is None:
            log = self.chat[(room_id, user_id)] = deque(maxlen=CHAT_MAX_MESSAGES)
        wall = time.time() if wall is None else wall
        log.append((wall, text))
        while log and log[0][0] < wall - CHAT_WINDOW_S:
            log.popleft()

    def snapshot(self, room_id: int, user_id: int) -> Snapshot:
        now, wall = time.monotonic(), time.time()
        snap = Snapshot(taken_at=wall)
        ring = self.voice.get(room_id, {}).get(user_id)
        if ring is not None:
            to_wall = wall - now  # the relay's monotonic clock to wall time
            for at, payload in _copy(ring.frames):
                if at >= now - VOICE_WINDOW_S:
                    snap.voice.append((at + to_wall, payload))
        log = self.chat.get((room_id, user_id))
        if log is not None:
            snap.chat = [(w, t) for w, t in _copy(log) if w >= wall - CHAT_WINDOW_S]
        return snap

    def sweep(self) -> None:
        """Forget rings with nothing left in their window."""
        now, wall = time.monotonic(), time.time()
        for room_id, room in list(self.voice.items()):
            for user_id, ring in list(room.items()):
                ring.expire(now)
                if not ring.frames:
                    del room[user_id]
            if not room:
                del self.voice[room_id]
        for key, log in list(self.chat.items()):
            while log and log[0][0] < wall - CHAT_WINDOW_S:
                log.popleft()
            if not log:
                del self.chat[key]

    def ring_bytes(self, room_id: int, user_id: int) -> int:
        ring = self.voice.get(room_id, {}).get(user_id)
        return ring.bytes if ring is not None else 0


def _copy(items: deque) -> list:
    # Read from a request thread while the event loop appends: a deque copy is one C call
    # under the GIL; retry in the unlikely case it saw a mutation.
    for _ in range(5):
        try:
            return list(items.copy())
        except RuntimeError:
            continue
    return []


_VOICE = struct.Struct(">dH")
_CHAT = struct.Struct(">dI")
_HEAD = struct.Struct(">dII")


def pack(snap: Snapshot) -> bytes:
    """A snapshot as bytes (what the channel layer carries between nodes)."""
    parts = [_HEAD.pack(snap.taken_at, len(snap.voice), len(snap.chat))]
    for wall, payload in snap.voice:
        parts.append(_VOICE.pack(wall, len(payload)))
        parts.append(payload)
    for wall, text in snap.chat:
        raw = text.encode()
        parts.append(_CHAT.pack(wall, len(raw)))
        parts.append(raw)
    return b"".join(parts)


def unpack(data: bytes) -> Snapshot:
    taken_at, nvoice, nchat = _HEAD.unpack_from(data, 0)
    pos = _HEAD.size
    snap = Snapshot(taken_at=taken_at)
    for _ in range(nvoice):
        wall, size = _VOICE.unpack_from(data, pos)
        pos += _VOICE.size
        snap.voice.append((wall, data[pos : pos + size]))
        pos += size
    for _ in range(nchat):
        wall, size = _CHAT.unpack_from(data, pos)
        pos += _CHAT.size
        snap.chat.append((wall, data[pos : pos + size].decode()))
        pos += size
    return snap
