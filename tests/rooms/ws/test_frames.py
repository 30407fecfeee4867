"""rooms.ws.frames.FRAMES is the one table of client frames: what it holds is what the
parser accepts, what the fuzzer sends and what docs/protocol.md documents."""

from __future__ import annotations

import re

import pytest

from rooms.ws.errors import FrameError
from rooms.ws.frames import FRAMES, parse_text_frame
from tests.live import ROOT
from tests.rooms.ws.test_consumer_fuzz import FRAME_TYPES


def test_the_fuzzer_sends_every_frame_of_the_table():
    assert set(FRAME_TYPES) == set(FRAMES)


def test_every_frame_of_the_table_is_documented_for_clients():
    protocol = (ROOT / "docs/protocol.md").read_text()
    documented = set(re.findall(r'"type":\s*"([a-z_.]+)"', protocol))
    assert set(FRAMES) - documented == set()


def test_a_type_outside_the_table_is_refused_as_unknown():
    with pytest.raises(FrameError) as refused:
        parse_text_frame('{"type": "seat.swap"}')
    assert refused.value.code == "unknown_type"


@pytest.mark.parametrize(
    ("raw", "data"),
    [
        ('{"type": "seat.take"}', {"index": None}),
        ('{"type": "whisper", "to": 7, "text": "hi", "extra": 1}', {"to": 7, "text": "hi"}),
        ('{"type": "moderate", "action": "mute_all", "user_id": 3}', {"action": "mute_all"}),
        (
            '{"type": "moderate", "action": "ban", "user_id": 3, "reason": "spam"}',
            {"action": "ban", "user_id": 3, "reason": "spam"},
        ),
    ],
)
def test_the_handler_gets_only_what_the_frames_validator_returns(raw, data):
    assert parse_text_frame(raw).data == data
