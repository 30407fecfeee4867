"""Text that clients send must be text every server, layer and database can carry.

JSON lets a string hold a lone surrogate escape (`"\\ud800"`), and Python's json module
accepts it: the result is a `str` that cannot be encoded as UTF-8. Nothing notices
until the text leaves the process: a WebSocket server cannot send it (the receiving
socket fails, once per receiver), the Redis channel layer cannot pack it (the sender's
handler raises), MySQL's utf8mb4 cannot store it. So it is refused where JSON enters,
once, for every string in the document (keys included): the socket's frame parser
(rooms/ws/frames.py) and the REST JSON parser (voiceroom/parsers.py).
"""

from __future__ import annotations

from typing import Any

INVALID_TEXT_DETAIL = (
    "Text must be valid Unicode: a lone surrogate escape such as \\ud800 is not a character."
)


def is_utf8_text(value: str) -> bool:
    """True when `value` can be encoded as UTF-8 (it holds no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def all_utf8_text(data: Any) -> bool:
    """True when every string in a parsed JSON document (keys and values) is UTF-8 text.

    Iterative, so a document nested as deeply as json.loads allows cannot exhaust the
    stack here.
    """
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not is_utf8_text(item):
                return False
        elif isinstance(item, dict):
            for key, value in item.items():
                if isinstance(key, str) and not is_utf8_text(key):
                    return False
                pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)
    return True
