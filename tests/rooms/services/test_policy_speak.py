"""rooms.policy.may_speak: the speak rule of docs/protocol.md ("You may not speak")."""

from __future__ import annotations

import pytest

from rooms.policy import may_speak


@pytest.mark.parametrize(
    ("muted", "self_muted", "seat", "seat_count", "seat_muted", "speaks"),
    [
        (False, False, 0, 8, False, True),  # seated on a live seat
        (True, False, 0, 8, False, False),  # muted by a moderator
        (False, True, 0, 8, False, False),  # self-muted
        (False, False, None, 8, False, False),  # no seat in a room with seats
        (False, False, 3, 8, True, False),  # on a muted seat
        (False, False, 5, 4, False, False),  # a seat that seat_count removed
        (False, False, None, 0, False, True),  # a room without seats: everyone
        (True, False, None, 0, False, False),  # ...who is not muted
    ],
)
def test_may_speak(muted, self_muted, seat, seat_count, seat_muted, speaks):
    assert (
        may_speak(
            muted=muted,
            self_muted=self_muted,
            seat=seat,
            seat_count=seat_count,
            seat_muted=seat_muted,
        )
        is speaks
    )
