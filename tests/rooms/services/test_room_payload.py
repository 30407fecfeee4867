"""The room payload of `room.updated` is built after commit, outside the row lock.

Its online count is a presence round trip (Redis in production). Built inside the
transaction that holds the room's row lock (as it was, through DRF's RoomSerializer),
every change of a room held the lock for that round trip too.
"""

from __future__ import annotations

import pytest

from realtime import presence
from rooms import events, services
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    messages: list[dict] = []

    async def capture(group, message):
        messages.append(message)

    monkeypatch.setattr(events, "agroup_send", capture)
    return messages


@pytest.fixture
def counted(monkeypatch):
    """Records each presence count (the Redis round trip of online_count)."""
    calls: list[list[int]] = []
    store = presence.store()
    real = store.counts

    def counts(room_ids):
        calls.append(list(room_ids))
        return real(room_ids)

    monkeypatch.setattr(store, "counts", counts)
    return calls


@pytest.mark.parametrize(
    "change",
    [
        lambda room: services.room_update(room=room, actor=room.owner, name="Renamed"),
        lambda room: services.room_close(room=room, actor=room.owner),
    ],
    ids=["update", "close"],
)
def test_room_updated_counts_who_is_online_only_after_commit(
    change, sent, counted, django_capture_on_commit_callbacks
):
    room = RoomFactory()
    user = UserFactory()
    services.member_join(room=room, user=user)
    presence.store().attach(room.pk, user.pk, node="n1", channel="c1")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        change(room)
        assert counted == []  # nothing read presence while the row lock was held

    for callback in callbacks:
        callback()
    [updated] = [m for m in sent if m["type"] == "room.updated"]
    assert counted == [[room.pk]]
    assert updated["room"]["id"] == room.pk
    assert updated["room"]["online_count"] == (1 if updated["room"]["status"] == "open" else 0)
