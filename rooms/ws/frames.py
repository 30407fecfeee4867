"""The wire protocol: client frame validation; the voice header and the limits are in
realtime/limits.py (re-exported here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from realtime.limits import (  # noqa: F401 (re-exported: the wire's limits live in realtime)
    ABUSE_BUDGET,
    ABUSE_REFILL,
    COST_BAD_FRAME,
    COST_TEXT_OVER_RATE,
    COST_VOICE_OVER_RATE,
    HEADER,
    HEADER_SIZE,
    MAX_CHAT_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_TEXT_FRAME_BYTES,
    MAX_VOICE_BYTES,
    TEXT_BURST,
    TEXT_RATE,
    VOICE_BURST,
    VOICE_RATE,
    VOICE_ROOM,
    VOICE_WHISPER,
    Bucket,
    voice_header,
)
from voiceroom.text import INVALID_TEXT_DETAIL, all_utf8_text, is_utf8_text


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
