import pytest

from realtime import presence
from rooms import selectors, services
from tests.factories import RoomFactory, UserFactory, operator
from voiceroom.errors import ApplicationError

pytestmark = pytest.mark.django_db


def join(room, user=None):
    user = user or UserFactory()
    services.member_join(room=room, user=user)
    return user


def connect(room, user, channel="c"):
    return presence.store().attach(room.pk, user.pk, node="n", channel=channel)


def test_room_get_finds_by_id_or_numeric_string():
    room = RoomFactory()

    assert selectors.room_get(room_id=room.pk) == room
    assert selectors.room_get(room_id=str(room.pk)) == room


@pytest.mark.parametrize("room_id", [0, 10**6, "abc", "", None, "1.5", 10**30])
def test_room_get_unknown_is_not_found(room_id):
    RoomFactory()

    with pytest.raises(ApplicationError) as caught:
        selectors.room_get(room_id=room_id)
    assert caught.value.code == "not_found"
    assert caught.value.status_code == 404


def test_room_list_is_newest_first_and_filters_by_status():
    old, new = RoomFactory(), RoomFactory()
    closed = RoomFactory()
    services.room_close(room=closed, actor=closed.owner)

    assert list(selectors.room_list()) == [closed, new, old]
    assert list(selectors.room_list(status="open")) == [new, old]
    assert list(selectors.room_list(status="closed")) == [closed]


def test_member_list_has_present_and_banned_members_not_those_who_left():
    room = RoomFactory()
    present, left, banned = join(room), join(room), join(room)
    services.member_leave(room=room, user=left)
    services.member_ban(room=room, actor=room.owner, user_id=banned.pk)

    listed = [m.user for m in selectors.member_list(room_id=room.pk)]

    assert listed == [room.owner, present, banned]


def test_member_list_visible_to_active_members_and_staff_only():
    room = RoomFactory()
    member, left = join(room), join(room)
    services.member_leave(room=room, user=left)

    assert len(selectors.member_list_visible(room=room, viewer=member)) == 2
    staff = operator()
    assert len(selectors.member_list_visible(room=room, viewer=staff)) == 2
    for outsider in (left, UserFactory()):
        with pytest.raises(ApplicationError) as caught:
            selectors.member_list_visible(room=room, viewer=outsider)
        assert caught.value.code == "forbidden"


def test_membership_get_unknown_or_garbage_is_not_found():
    room = RoomFactory()

    assert selectors.membership_get(room_id=room.pk, user_id=room.owner_id).user == room.owner
    for user_id in (UserFactory().pk, "x", None):
        with pytest.raises(ApplicationError):
            selectors.membership_get(room_id=room.pk, user_id=user_id)


def test_online_counts_and_ids_come_from_presence():
    busy, quiet = RoomFactory(), RoomFactory()
    first, second = join(busy), join(busy)
    connect(busy, first)
    connect(busy, second)
    presence.store().detach(busy.pk, second.pk, "c", seq=0)  # inside its resume window

    assert selectors.online_counts(room_ids=[busy.pk, quiet.pk]) == {busy.pk: 2, quiet.pk: 0}
    assert selectors.online_count(room_id=busy.pk) == 2
    assert selectors.online_user_ids(room_id=busy.pk) == {first.pk, second.pk}


def test_participant_list_shows_connection_state_and_member_state():
    room = RoomFactory()
    user = join(room)
    services.member_mute(room=room, actor=room.owner, user_id=user.pk, muted=True)
    services.seat_take(room=room, user=user, index=1)
    connect(room, user)
    presence.store().detach(room.pk, user.pk, "c", seq=0)

    (participant,) = selectors.participant_list(room_id=room.pk)

    assert participant == {
        "user_id": user.pk,
        "username": user.username,
        "display_name": user.display_name,
        "role": "member",
        "muted": True,
        "self_muted": False,
        "seat": 1,
        "connected": False,
    }
