"""Client text frames: how they are read, and ONE table, `FRAMES`, of what each type is.

    FRAMES[type] = Frame(validate, handle, guards)

- `validate(data) -> clean data`, here: the frame's fields checked and copied (or
  FrameError); the envelope (size, UTF-8, JSON object, `type`) is `parse_text_frame`'s;
- `guards`: async checks on the socket before the handler runs (rooms/ws/guards.py);
- `handle(socket, clean data)`: the act (rooms/ws/handlers.py), calling a service, the
  relay or rooms.events.

The consumer (rooms/ws/consumer.py) only looks a frame up here and runs it. To add a
frame type: a validator below (or reuse one), a handler in rooms/ws/handlers.py (or
`handlers.service("<service name>")` when the frame's fields are the service's
arguments), and one line in FRAMES. docs/protocol.md documents it for clients.

Voice (binary frames) never comes here: the relay takes it (realtime/relay.py); its
header and every limit are in realtime/limits.py (re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
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
from rooms.ws import guards, handlers
from rooms.ws.errors import FrameError
from rooms.ws.handlers import Handler, Socket
from voiceroom.text import INVALID_TEXT_DETAIL, all_utf8_text, is_utf8_text


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


# -- validators: the frame's JSON object -> the handler's data --------------------------

Data = dict[str, Any]


def _nothing(data: Data) -> Data:
    return {}


def _chat(data: Data) -> Data:
    return {"text": _text(data)}


def _whisper(data: Data) -> Data:
    return {"to": _int(data, "to"), "text": _text(data)}


def _muted(data: Data) -> Data:
    return {"muted": _bool(data, "muted")}


def _voice_target(data: Data) -> Data:
    if "to" not in data:
        raise FrameError("invalid_message", "'to' is required (a user id or null).")
    return {"to": _int(data, "to", nullable=True)}


def _any_seat(data: Data) -> Data:
    """An optional seat `index` (absent or null: the first free one)."""
    return {"index": _int(data, "index", required=False, nullable=True)}


def _user(data: Data) -> Data:
    return {"user_id": _int(data, "user_id")}


def _user_any_seat(data: Data) -> Data:
    return {
        "user_id": _int(data, "user_id"),
        "index": _int(data, "index", required=False, nullable=True),
    }


def _seat_lock(data: Data) -> Data:
    return {"index": _int(data, "index"), "locked": _bool(data, "locked")}


def _seat_mute(data: Data) -> Data:
    return {"index": _int(data, "index"), "muted": _bool(data, "muted")}


def _moderate(data: Data) -> Data:
    action = data.get("action")
    if action not in MODERATE_ACTIONS:
        raise FrameError(
            "invalid_message", f"'action' must be one of {', '.join(MODERATE_ACTIONS)}."
        )
    clean: Data = {"action": action}
    if action not in ROOM_ACTIONS:
        clean["user_id"] = _int(data, "user_id")
    if isinstance(data.get("reason"), str):
        clean["reason"] = data["reason"][:200]
    return clean


# -- the table -----------------------------------------------------------------------------

Guard = Callable[[Socket, Data], Awaitable[None]]


@dataclass(frozen=True)
class Frame:
    validate: Callable[[Data], Data]
    handle: Handler
    guards: tuple[Guard, ...] = ()

    async def run(self, socket: Socket, data: Data) -> None:
        for guard in self.guards:
            await guard(socket, data)
        await self.handle(socket, data)


FRAMES: dict[str, Frame] = {
    "ping": Frame(_nothing, handlers.ping),
    "chat": Frame(_chat, handlers.chat),
    "whisper": Frame(_whisper, handlers.whisper, (guards.target_in_room,)),
    "voice.target": Frame(_voice_target, handlers.voice_target, (guards.target_in_room,)),
    "mute.self": Frame(_muted, handlers.mute_self),
    "leave": Frame(_nothing, handlers.leave),
    "seat.take": Frame(_any_seat, handlers.service("seat_take")),
    "seat.leave": Frame(_nothing, handlers.service("seat_leave")),
    "seat.lock": Frame(_seat_lock, handlers.service("seat_lock", by="actor")),
    "seat.mute": Frame(_seat_mute, handlers.service("seat_mute", by="actor")),
    "seat.request": Frame(_any_seat, handlers.service("seat_request_create")),
    "seat.request.cancel": Frame(_nothing, handlers.service("seat_request_cancel")),
    "seat.request.accept": Frame(
        _user_any_seat, handlers.service("seat_request_accept", by="actor")
    ),
    "seat.request.refuse": Frame(_user, handlers.service("seat_request_refuse", by="actor")),
    "moderate": Frame(_moderate, handlers.moderate),
}


# -- reading a frame -----------------------------------------------------------------------


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
    frame = FRAMES.get(kind)
    if frame is None:
        raise FrameError("unknown_type", f"Unknown message type {kind[:40]!r}.")
    return ClientMessage(kind, frame.validate(data))


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)
