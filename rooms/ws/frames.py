"""The wire protocol: voice frame header, client frame validation, limits.

Voice header (server to client), then the payload unchanged:
  byte 0     kind: 1 room voice, 2 whisper voice
  bytes 1-4  sender user id, uint32 big-endian
  bytes 5-8  sequence, uint32 big-endian, per sender, +1 per relayed frame
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from voiceroom.text import INVALID_TEXT_DETAIL, all_utf8_text, is_utf8_text

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


class FrameError(Exception):
    """A client frame was refused; the socket stays open and gets an `error` frame."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ClientMessage:
    type: str
    data: dict[str, Any]


def _int(data: dict, key: str, *, required: bool = True, nullable: bool = False) -> int | None:
    if key not in data:
        if required:
            raise FrameError("invalid_message", f"'{key}' is required.")
        return None
    value = data[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise FrameError("invalid_message", f"'{key}' must be a non-negative integer.")
    return value


def _bool(data: dict, key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise FrameError("invalid_message", f"'{key}' must be true or false.")
    return value


def _text(data: dict) -> str:
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FrameError("invalid_message", "'text' must be a non-empty string.")
    if len(text) > MAX_CHAT_CHARS:
        raise FrameError("text_too_long", f"'text' is limited to {MAX_CHAT_CHARS} characters.")
    return text


MODERATE_ACTIONS = ("mute", "unmute", "kick", "ban", "seat.remove", "mute_all", "unmute_all")
# Actions on the whole room: no `user_id`.
ROOM_ACTIONS = ("mute_all", "unmute_all")


def _too_large() -> FrameError:
    return FrameError(
        "frame_too_large", f"Text frames are limited to {MAX_TEXT_FRAME_BYTES} bytes."
    )


def parse_text_frame(raw: str) -> ClientMessage:
    """Validate a client text frame into a ClientMessage, or raise FrameError."""
    if len(raw) > MAX_TEXT_FRAME_BYTES:
        raise _too_large()
    if not is_utf8_text(raw):
        # Only an in-process caller can pass this: servers decode frames from UTF-8.
        raise FrameError("invalid", INVALID_TEXT_DETAIL)
    if len(raw.encode("utf-8")) > MAX_TEXT_FRAME_BYTES:
        raise _too_large()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise FrameError("malformed_json", "Text frames must be JSON objects.") from None
    # A `\uXXXX` escape is the only way JSON text can produce a lone surrogate, so the
    # walk over the document runs only for frames that hold one.
    if "\\u" in raw and not all_utf8_text(data):
        raise FrameError("invalid", INVALID_TEXT_DETAIL)
    if not isinstance(data, dict):
        raise FrameError("malformed_json", "Text frames must be JSON objects.")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise FrameError("invalid_message", "'type' is required.")
    clean: dict[str, Any]
    if kind in ("ping", "leave", "seat.leave"):
        clean = {}
    elif kind == "chat":
        clean = {"text": _text(data)}
    elif kind == "whisper":
        clean = {"to": _int(data, "to"), "text": _text(data)}
    elif kind == "mute.self":
        clean = {"muted": _bool(data, "muted")}
    elif kind == "voice.target":
        if "to" not in data:
            raise FrameError("invalid_message", "'to' is required (a user id or null).")
        clean = {"to": _int(data, "to", nullable=True)}
    elif kind == "seat.take":
        clean = {"index": _int(data, "index", required=False, nullable=True)}
    elif kind == "moderate":
        action = data.get("action")
        if action not in MODERATE_ACTIONS:
            raise FrameError(
                "invalid_message", f"'action' must be one of {', '.join(MODERATE_ACTIONS)}."
            )
        if action in ROOM_ACTIONS:
            clean = {"action": action}
        else:
            clean = {"action": action, "user_id": _int(data, "user_id")}
        if isinstance(data.get("reason"), str):
            clean["reason"] = data["reason"][:200]
    elif kind == "seat.request":
        clean = {"index": _int(data, "index", required=False, nullable=True)}
    elif kind == "seat.request.cancel":
        clean = {}
    elif kind == "seat.request.accept":
        clean = {
            "user_id": _int(data, "user_id"),
            "index": _int(data, "index", required=False, nullable=True),
        }
    elif kind == "seat.request.refuse":
        clean = {"user_id": _int(data, "user_id")}
    elif kind == "seat.lock":
        clean = {"index": _int(data, "index"), "locked": _bool(data, "locked")}
    elif kind == "seat.mute":
        clean = {"index": _int(data, "index"), "muted": _bool(data, "muted")}
    else:
        raise FrameError("unknown_type", f"Unknown message type {kind[:40]!r}.")
    return ClientMessage(kind, clean)


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)
