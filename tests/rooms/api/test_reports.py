"""REST: reports (contract v1.1 "Reports and evidence") and recording's switch and list."""

from __future__ import annotations

import pytest

from rooms import services
from rooms.models import Report
from tests.factories import RoomFactory, UserFactory, operator
from tests.rooms.api.test_views import USER_KEYS, assert_error, client_for, room_url
from tests.throttling import set_rates

pytestmark = pytest.mark.django_db

REPORT_KEYS = {"id", "room", "reported", "reporter", "reason", "created_at", "evidence_seconds"}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _room_with(*names):
    room = RoomFactory()
    users = [UserFactory(username=n) for n in names]
    for u in users:
        services.member_join(room=room, user=u)
    return room, users


def test_a_member_reports_another_and_gets_the_report():
    room, (alice, bob) = _room_with("alice", "bob")
    r = client_for(alice).post(
        room_url(room, "reports"), {"user_id": bob.pk, "reason": "shouting"}, format="json"
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert set(body) == REPORT_KEYS
    assert body["room"] == room.pk and body["reason"] == "shouting"
    assert set(body["reported"]) == USER_KEYS and body["reported"]["id"] == bob.pk
    assert body["reporter"]["id"] == alice.pk
    assert body["evidence_seconds"] == 0  # bob never spoke
    assert Report.objects.get(pk=body["id"]).status == "open"


def test_reporting_a_user_who_is_not_a_member_is_404():
    room, (alice,) = _room_with("alice")
    stranger = UserFactory()
    r = client_for(alice).post(
        room_url(room, "reports"), {"user_id": stranger.pk, "reason": "x"}, format="json"
    )
    assert_error(r, 404, "not_found")


def test_only_members_report():
    room, (alice,) = _room_with("alice")
    r = client_for(UserFactory()).post(
        room_url(room, "reports"), {"user_id": alice.pk, "reason": "x"}, format="json"
    )
    assert_error(r, 403, "forbidden")


@pytest.mark.parametrize("reason", ["", "x" * 501])
def test_reason_is_1_to_500_chars(reason):
    room, (alice, bob) = _room_with("alice", "bob")
    r = client_for(alice).post(
        room_url(room, "reports"), {"user_id": bob.pk, "reason": reason}, format="json"
    )
    assert_error(r, 400, "invalid")


def test_past_10_reports_a_minute_is_429(settings):
    settings.VOICEROOM_THROTTLES = True
    set_rates(settings, report="10/min")
    room, (alice, bob) = _room_with("alice", "bob")
    client = client_for(alice)
    for _ in range(10):
        r = client.post(
            room_url(room, "reports"), {"user_id": bob.pk, "reason": "x"}, format="json"
        )
        assert r.status_code == 201
    r = client.post(room_url(room, "reports"), {"user_id": bob.pk, "reason": "x"}, format="json")
    assert_error(r, 429, "throttled")
    assert "Retry-After" in r.headers


def test_owner_and_staff_list_reports_newest_first_members_do_not():
    room, (alice, bob) = _room_with("alice", "bob")
    first = services.report_create(room=room, reporter=alice, user_id=bob.pk, reason="one")
    second = services.report_create(room=room, reporter=bob, user_id=alice.pk, reason="two")
    for viewer in (room.owner, operator()):
        r = client_for(viewer).get(room_url(room, "reports"))
        assert r.status_code == 200, r.content
        assert [x["id"] for x in r.json()] == [second.pk, first.pk]
    assert_error(client_for(alice).get(room_url(room, "reports")), 403, "forbidden")


def test_recording_switch_shows_in_the_room_and_lists_recordings():
    room, (alice,) = _room_with("alice")
    owner = client_for(room.owner)
    r = owner.post(room_url(room, "recording"), {"active": True}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["active"] is True and r.json()["started_at"]
    assert owner.get(room_url(room)).json()["recording"] is True
    r = owner.post(room_url(room, "recording"), {"active": False}, format="json")
    assert r.json()["active"] is False
    assert owner.get(room_url(room)).json()["recording"] is False
    listed = owner.get(room_url(room, "recordings")).json()
    assert len(listed) == 1 and listed[0]["ended_at"] and listed[0]["tracks"] == []
    assert set(listed[0]) == {"id", "started_at", "ended_at", "tracks"}


def test_closing_the_room_ends_its_recording():
    from rooms.models import Recording

    room, (alice,) = _room_with("alice")
    owner = client_for(room.owner)
    assert owner.post(room_url(room, "recording"), {"active": True}, format="json").json()["active"]
    services.room_close(room=room, actor=room.owner)
    room.refresh_from_db()
    assert room.recording is False
    (recording,) = Recording.objects.filter(room=room)
    assert recording.ended_at is not None
    listed = owner.get(room_url(room, "recordings")).json()
    assert listed[0]["ended_at"]


def test_members_may_not_record_or_list_recordings():
    room, (alice,) = _room_with("alice")
    client = client_for(alice)
    assert_error(
        client.post(room_url(room, "recording"), {"active": True}, format="json"), 403, "forbidden"
    )
    assert_error(client.get(room_url(room, "recordings")), 403, "forbidden")


def test_unknown_room_is_404():
    client = client_for(UserFactory())
    for path in ("reports", "recordings"):
        assert_error(client.get(f"/api/rooms/999999/{path}"), 404, "not_found")
