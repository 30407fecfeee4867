"""The admin's Live page: live rooms by participants, their nodes, who may speak."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import User
from realtime import presence
from rooms import live, services
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

PAGE = reverse("admin:rooms_room_live_rooms")
DATA = reverse("admin:rooms_room_live_data")


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_superuser(username="root", password="pw-long-1x"))
    return client


def join(room, user, node: str, *, seat: int | None = None) -> None:
    services.member_join(room=room, user=user)
    presence.store().attach(room.pk, user.pk, node=node, channel=f"c{user.pk}")
    if seat is not None:
        services.seat_take(room=room, user=user, index=seat)


def test_live_rooms_busiest_first_with_nodes_and_speakers():
    quiet, busy, empty = RoomFactory(name="quiet"), RoomFactory(name="busy"), RoomFactory()
    ann, bea, cat = UserFactory(username="ann"), UserFactory(username="bea"), UserFactory()
    join(quiet, ann, "n1")
    join(busy, bea, "n1", seat=0)
    join(busy, cat, "n2")
    presence.store().attach(busy.pk, busy.owner_id, node="n2", channel="owner")
    rows = live.live_rooms()
    assert [r["name"] for r in rows] == ["busy", "quiet"]  # the empty room is not live
    top = rows[0]
    assert top["participants"] == 3 and top["resuming"] == 0
    assert top["nodes"] == {"n1": 1, "n2": 2}
    # Seats exist (8): only the seated, unmuted member may speak.
    assert top["speakers"] == ["bea"]
    assert empty.pk not in {r["id"] for r in rows}


def test_a_dropped_socket_counts_as_resuming_and_not_speaking():
    room = RoomFactory(seat_count=0)
    ann = UserFactory(username="ann")
    join(room, ann, "n1")
    presence.store().detach(room.pk, ann.pk, f"c{ann.pk}", seq=0)
    (row,) = live.live_rooms()
    assert (row["participants"], row["resuming"], row["speakers"]) == (1, 1, [])


def test_recording_state_and_open_reports_are_shown(staff_client, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    room = RoomFactory()
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    join(room, ann, "n1")
    join(room, bob, "n1")
    (row,) = live.live_rooms()
    assert (row["recording"], row["open_reports"]) == (False, 0)
    services.recording_set(room=room, actor=room.owner, active=True)
    services.report_create(room=room, reporter=ann, user_id=bob.pk, reason="shouting")
    (row,) = live.live_rooms()
    assert (row["recording"], row["open_reports"]) == (True, 1)
    page = staff_client.get(PAGE).content.decode()
    assert 'id="col-recording"' in page and 'id="col-reports"' in page
    assert '<span class="rec-on">recording</span>' in page


def test_the_page_and_its_data(staff_client):
    room = RoomFactory(name="<b>talk</b>")
    join(room, UserFactory(), "node-x")
    page = staff_client.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "&lt;b&gt;talk&lt;/b&gt;" in html and "node-x: 1" in html
    data = staff_client.get(DATA).json()
    assert [r["name"] for r in data["rooms"]] == ["<b>talk</b>"]
    assert data["error"] == ""
    rooms_page = staff_client.get(reverse("admin:rooms_room_changelist")).content.decode()
    assert PAGE in rooms_page


def test_staff_without_the_view_permission_is_refused(client):
    user = User.objects.create_user(username="s", password="pw-long-1x", is_staff=True)
    client.force_login(user)
    assert client.get(PAGE).status_code == 403
    assert client.get(DATA).status_code == 403
