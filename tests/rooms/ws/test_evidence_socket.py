"""Reports freeze what the socket's node holds; recording writes what the relay relays.

Through the ASGI application (WebsocketCommunicator), with the in-memory channel layer
and, marked `redis`, the Redis pub/sub layer nodes share: the evidence request goes to
the reported member's socket channel and comes back on a reply channel.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.core.files.storage import default_storage

from realtime import runtime
from realtime.ogg import PRE_SKIP, RATE, parse_pages
from rooms import services
from rooms.models import Recording, RecordingTrack, Report
from tests.rooms.realtime import a_member, a_room, connect, owner_ticket

pytestmark = [pytest.mark.django_db(transaction=True)]

PACKET = bytes([0xF8]) + b"\x21" * 59  # one 20 ms Opus (CELT) packet
# What clients send (docs/protocol.md 4.2): the codec byte (0x02, Opus), then the packet.
# Evidence and recordings hold the packet alone.
WIRE = b"\x02" + PACKET


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


async def test_report_keeps_the_reported_members_voice_and_chat(channel_layer):
    room = await a_room()
    a_user, a_ticket = await a_member(room)
    b_user, b_ticket = await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    b = await connect(room.pk, b_ticket, b_user.pk)
    await a.event_of("participant.joined")
    for i in range(25):  # half a second of voice
        await a.voice(b"\x02" + PACKET[:1] + bytes([i]) + PACKET[2:])
    assert len(await b.frames()) == 25
    await a.send(type="chat", text="you will regret this")
    await b.event_of("chat")
    report = await database_sync_to_async(services.report_create)(
        room=room, reporter=b_user, user_id=a_user.pk, reason="threats"
    )
    assert 0.45 <= report.evidence_seconds <= 1.0
    assert [line["text"] for line in report.chat] == ["you will regret this"]
    assert report.evidence_type == "audio/ogg"
    data = await database_sync_to_async(lambda: report.evidence.open("rb").read())()
    pages = list(parse_pages(data))
    assert all(p.crc_ok for p in pages)
    packets = [pk for p in pages[2:] for pk in p.packets]
    assert packets == [PACKET[:1] + bytes([i]) + PACKET[2:] for i in range(25)]
    # B's own voice and chat are not A's evidence.
    assert runtime.current().tap.evidence.snapshot(room.pk, b_user.pk).voice == []
    await a.disconnect()
    await b.disconnect()


async def test_reported_member_who_left_the_socket_still_has_local_evidence():
    room = await a_room()
    a_user, a_ticket = await a_member(room)
    b_user, b_ticket = await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    b = await connect(room.pk, b_ticket, b_user.pk)
    await a.event_of("participant.joined")
    for _ in range(10):
        await a.voice(WIRE)
    await b.frames()
    await a.disconnect()  # in the resume window: no socket to ask; this node holds it
    report = await database_sync_to_async(services.report_create)(
        room=room, reporter=b_user, user_id=a_user.pk, reason="x"
    )
    assert report.evidence_seconds > 0.15
    await b.disconnect()


async def test_recording_writes_a_track_per_speaker_and_members_see_recording(channel_layer):
    room = await a_room()
    owner = await connect(room.pk, await owner_ticket(room), room.owner_id)
    a_user, a_ticket = await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    state = await database_sync_to_async(services.recording_set)(
        room=room, actor=room.owner, active=True
    )
    assert state["active"] is True
    updated = await a.event_where("room.updated", lambda e: e["room"]["recording"])
    assert updated["room"]["recording"] is True
    for _ in range(50):
        await a.voice(WIRE)
    await owner.frames()
    await asyncio.sleep(0.1)
    state = await database_sync_to_async(services.recording_set)(
        room=room, actor=room.owner, active=False
    )
    await a.event_where("room.updated", lambda e: not e["room"]["recording"])

    def finished():
        return list(RecordingTrack.objects.filter(finished=True))

    for _ in range(50):
        tracks = await database_sync_to_async(finished)()
        if tracks:
            break
        await asyncio.sleep(0.1)
    assert [t.user_id for t in tracks] == [a_user.pk]
    track = tracks[0]
    rec = await database_sync_to_async(Recording.objects.get)()
    assert track.recording_id == rec.pk and rec.ended_at is not None
    data = await database_sync_to_async(lambda: default_storage.open(track.file.name).read())()
    pages = list(parse_pages(data))
    assert all(p.crc_ok for p in pages) and pages[-1].flags & 0x04
    assert sum(pk == PACKET for p in pages[2:] for pk in p.packets) == 50
    assert track.bytes == len(data)
    # The track starts at the recording's start: its length covers the lead-in.
    assert track.duration_s >= 1.0 and pages[-1].granule - PRE_SKIP >= RATE
    await a.disconnect()
    await owner.disconnect()


async def test_a_node_whose_socket_arrives_during_a_recording_records_it():
    room = await a_room()
    await database_sync_to_async(services.recording_set)(room=room, actor=room.owner, active=True)
    a_user, a_ticket = await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    assert a.welcome["room"]["recording"] is True
    assert runtime.current().tap.recordings.active[room.pk].recording_id > 0
    await a.disconnect()
    await database_sync_to_async(services.recording_set)(room=room, actor=room.owner, active=False)


async def test_report_rows_are_not_made_for_evidence_requests_alone():
    # Asking for evidence is read-only: only report_create writes a Report.
    assert await database_sync_to_async(Report.objects.count)() == 0
