"""The speak rule agrees between the server and the clients.

tests/clients/speak_cases.json is one table of cases; clients/js/test/speak.test.mjs
checks the SDK's `maySpeak` against it (the demo page and the mini-program use that
function), and this file checks the server's rule against the same table.
"""

from __future__ import annotations

import json

import pytest

from rooms.policy import may_speak
from rooms.ws.guards import SpeakState
from tests.live import ROOT

CASES = json.loads((ROOT / "tests/clients/speak_cases.json").read_text())["cases"]
IDS = [case["name"] for case in CASES]


def wire(case: dict) -> dict:
    """The case as a welcome carries it: you, room, seats."""
    return {
        "room": {"id": 1, "seat_count": case["seat_count"]},
        "you": {
            "user_id": 1,
            "role": "member",
            "muted": case["muted"],
            "self_muted": case["self_muted"],
            "seat": case["seat"],
            "connected": True,
        },
        "seats": [
            {
                "index": index,
                "user_id": 1 if index == case["seat"] else None,
                "locked": False,
                "muted": index in case["muted_seats"],
            }
            for index in range(case["seat_count"])
        ],
    }


def test_the_table_covers_every_reason():
    answers = {case["may_speak"] for case in CASES}
    assert answers == {True, False}
    assert {case["seat_count"] == 0 for case in CASES} == {True, False}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_consumers_speak_state_agrees(case):
    """The gate the server applies to voice (rooms/ws/guards.py), fed a welcome."""
    view = wire(case)
    state = SpeakState(view["you"], view["room"]["seat_count"], view["seats"])
    assert state.can_speak() is case["may_speak"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_policy_may_speak_agrees(case):
    """The server's rule itself (rooms.policy.may_speak), fed from what a welcome carries."""
    view = wire(case)
    you, seats = view["you"], view["seats"]
    seat = you["seat"]
    answer = may_speak(
        muted=you["muted"],
        self_muted=you["self_muted"],
        seat=seat,
        seat_count=view["room"]["seat_count"],
        seat_muted=seat is not None and seat < len(seats) and seats[seat]["muted"],
    )
    assert answer is case["may_speak"]
