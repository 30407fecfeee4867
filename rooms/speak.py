"""The speak rule, once: whether a participant's voice frames are relayed.

Used by the room consumer (from the welcome and the events that follow) and by the
speak re-check (rooms/reaper.py: `speak_states`, from the database and presence).
"""

from __future__ import annotations


def may_speak(
    *, muted: bool, self_muted: bool, seat: int | None, seat_count: int, seat_muted: bool
) -> bool:
    """Not muted by a moderator nor by themselves; and, in a room with seats, on a seat
    that exists and is not muted (a room without seats lets everyone speak)."""
    if muted or self_muted:
        return False
    if seat_count == 0:
        return True
    return seat is not None and seat < seat_count and not seat_muted
