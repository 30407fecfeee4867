"""What the runtime's re-check reads of recordings (a lost recording.control made good)."""

from __future__ import annotations

import pytest

from rooms import reaper, services
from tests.factories import RoomFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_recording_controls_names_the_running_recordings_only():
    recording, stopped, quiet = RoomFactory(), RoomFactory(), RoomFactory()
    for room in (recording, stopped):
        services.recording_set(room=room, actor=room.owner, active=True)
    services.recording_set(room=stopped, actor=stopped.owner, active=False)
    controls = services.recording_controls(room_ids=[recording.pk, stopped.pk, quiet.pk])
    assert list(controls) == [recording.pk]
    control = controls[recording.pk]
    assert control["type"] == "recording.control" and control["active"] is True
    assert control == services.recording_active(room_id=recording.pk)


async def test_the_runtime_reads_them_through_the_reaper():
    from channels.db import database_sync_to_async

    room = await database_sync_to_async(RoomFactory)()
    await database_sync_to_async(services.recording_set)(room=room, actor=room.owner, active=True)
    controls = await reaper.recording_check([room.pk])
    assert controls[room.pk]["active"] is True
