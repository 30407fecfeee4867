"""The relay's mute gate holds even when the event that should close it is lost.

`participant.updated` / `seat.updated` / `room.updated` are best effort (a channel layer
at capacity drops them); the realtime runtime re-reads who may speak every
VOICEROOM_SPEAK_RECHECK_S (rooms/reaper.py: speak_states), so a muted member's voice
stops within that period plus one read whatever happened to the event.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.db import database_sync_to_async

from realtime import runtime
from rooms import events, services
from tests.rooms.realtime import a_member, a_room, connect

pytestmark = [pytest.mark.django_db(transaction=True)]

RECHECK_S = 0.5


@pytest.fixture
def recheck(settings):
    """A fresh runtime that re-reads the speak state every RECHECK_S."""
    settings.VOICEROOM_SPEAK_RECHECK_S = RECHECK_S
    runtime.install(runtime.Runtime.from_settings())


async def _heard(speaker, listener) -> bool:
    await speaker.voice(b"hello")
    return bool(await listener.frames(timeout=0.2))


async def _silenced_within(speaker, listener, bound_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        if not await _heard(speaker, listener):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return None


async def test_a_moderator_mute_whose_event_is_lost_still_stops_the_voice(recheck, monkeypatch):
    room = await a_room()
    a_user, a_ticket = await a_member(room)
    b_user, b_ticket = await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    b = await connect(room.pk, b_ticket, b_user.pk)
    await a.event_of("participant.joined")
    assert await _heard(a, b)  # speaking before the mute

    monkeypatch.setattr(events, "participant_updated", lambda *args, **kwargs: None)  # lost
    await database_sync_to_async(services.member_mute)(
        room=room, actor=room.owner, user_id=a.user_id, muted=True
    )
    took = await _silenced_within(a, b, 3 * RECHECK_S + 1.0)
    assert took is not None, "the muted member is still heard"
    assert await b.frames() == []  # and stays silent
    await a.disconnect()
    await b.disconnect()


async def test_a_seat_mute_whose_event_is_lost_still_stops_the_voice(recheck, monkeypatch):
    room = await a_room(seat_count=2)
    a_user, a_ticket = await a_member(room)
    b_user, b_ticket = await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    b = await connect(room.pk, b_ticket, b_user.pk)
    await a.event_of("participant.joined")
    await a.send(type="seat.take", index=0)
    await a.event_where("participant.updated", lambda e: e["participant"]["seat"] == 0)
    assert await _heard(a, b)

    monkeypatch.setattr(events, "seat_updated", lambda *args, **kwargs: None)  # lost
    await database_sync_to_async(services.seat_mute)(
        room=room, actor=room.owner, index=0, muted=True
    )
    took = await _silenced_within(a, b, 3 * RECHECK_S + 1.0)
    assert took is not None, "the member on a muted seat is still heard"
    await a.disconnect()
    await b.disconnect()


async def test_the_recheck_gives_the_voice_back_after_a_lost_unmute(recheck, monkeypatch):
    room = await a_room()
    a_user, a_ticket = await a_member(room)
    b_user, b_ticket = await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    b = await connect(room.pk, b_ticket, b_user.pk)
    await a.event_of("participant.joined")
    await database_sync_to_async(services.member_mute)(
        room=room, actor=room.owner, user_id=a.user_id, muted=True
    )
    await a.event_of("participant.updated")
    assert not await _heard(a, b)

    monkeypatch.setattr(events, "participant_updated", lambda *args, **kwargs: None)
    await database_sync_to_async(services.member_mute)(
        room=room, actor=room.owner, user_id=a.user_id, muted=False
    )
    await asyncio.sleep(3 * RECHECK_S)
    assert await _heard(a, b)
    await a.disconnect()
    await b.disconnect()
