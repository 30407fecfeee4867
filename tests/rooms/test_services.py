import contextlib
import types

import pytest
from django.core import signing

from realtime import presence
from rooms import services
from rooms.models import Membership, ModerationAction, Room, Seat
from tests.factories import RoomFactory, UserFactory, operator
from voiceroom.errors import ApplicationError

pytestmark = pytest.mark.django_db

Action = ModerationAction.Action


def join(room, user=None, **kwargs):
    user = user or UserFactory()
    services.member_join(room=room, user=user, **kwargs)
    return user


def admin_of(room):
    user = join(room)
    services.member_set_role(room=room, actor=room.owner, user_id=user.pk, role="admin")
    return user


def membership(room, user) -> Membership:
    return Membership.objects.get(room=room, user=user)


def audit(room, action):
    return list(ModerationAction.objects.filter(room=room, action=action))


@contextlib.contextmanager
def refused(code: str):
    """Expect an ApplicationError with this code."""
    with pytest.raises(ApplicationError) as caught:
        yield caught
    assert caught.value.code == code, caught.value.detail


# --- rooms ---------------------------------------------------------------------------------


def test_room_create_makes_owner_member_seats_and_audit_row():
    owner = UserFactory()

    room = services.room_create(owner=owner, name="Lounge", topic="music", seat_count=3)

    stored = Room.objects.get(pk=room.pk)
    assert (stored.name, stored.topic, stored.capacity, stored.seat_count) == (
        "Lounge",
        "music",
        50,
        3,
    )
    assert stored.status == Room.Status.OPEN
    mine = membership(room, owner)
    assert mine.role == Membership.Role.OWNER and mine.active
    assert list(Seat.objects.filter(room=room).values_list("index", flat=True)) == [0, 1, 2]
    assert [a.actor for a in audit(room, Action.ROOM_CREATE)] == [owner]


def test_room_create_with_password_is_private_and_hashes_it():
    room = RoomFactory(password="s3cret")

    assert room.is_private
    assert "s3cret" not in room.password_hash
    assert room.check_password("s3cret") and not room.check_password("nope")


@pytest.mark.parametrize(
    "kwargs", [{"capacity": 1}, {"capacity": 501}, {"seat_count": 21}, {"seat_count": -1}]
)
def test_room_create_refuses_out_of_range_numbers(kwargs):
    with refused("invalid"):
        services.room_create(owner=UserFactory(), name="x", **kwargs)
    assert not Room.objects.exists()


def test_room_update_changes_fields_and_audits_them():
    room = RoomFactory()

    services.room_update(room=room, actor=room.owner, name="New", capacity=10, password="pw")

    room.refresh_from_db()
    assert (room.name, room.capacity, room.is_private) == ("New", 10, True)
    (row,) = audit(room, Action.ROOM_UPDATE)
    assert row.actor == room.owner
    assert row.detail == {"name": "New", "capacity": 10, "password": "set"}


def test_room_update_removes_password_with_none():
    room = RoomFactory(password="pw")

    services.room_update(room=room, actor=room.owner, password=None)

    room.refresh_from_db()
    assert not room.is_private


def test_room_update_shrinking_seats_unseats_members_beyond():
    room = RoomFactory(seat_count=4)
    low, high = join(room), join(room)
    services.seat_take(room=room, user=low, index=0)
    services.seat_take(room=room, user=high, index=3)

    services.room_update(room=room, actor=room.owner, seat_count=2)

    assert membership(room, low).seat == 0
    assert membership(room, high).seat is None


def test_room_update_allowed_to_admin_and_staff_not_to_member():
    room = RoomFactory()
    admin, member = admin_of(room), join(room)
    staff = operator()

    services.room_update(room=room, actor=admin, topic="by admin")
    services.room_update(room=room, actor=staff, topic="by staff")
    with refused("forbidden"):
        services.room_update(room=room, actor=member, topic="by member")

    room.refresh_from_db()
    assert room.topic == "by staff"


def test_owner_keeps_moderator_powers_after_leaving():
    room = RoomFactory()
    member = join(room)
    services.member_leave(room=room, user=room.owner)

    services.room_update(room=room, actor=room.owner, topic="still mine")
    services.member_mute(room=room, actor=room.owner, user_id=member.pk, muted=True)

    room.refresh_from_db()
    assert room.topic == "still mine"
    assert membership(room, member).muted


def test_room_close_ends_memberships_and_refuses_joins_until_opened():
    room = RoomFactory()
    member = join(room)
    services.seat_take(room=room, user=member, index=0)

    services.room_close(room=room, actor=room.owner)

    room.refresh_from_db()
    assert room.status == Room.Status.CLOSED
    assert not Membership.objects.filter(room=room, active=True).exists()
    assert membership(room, member).seat is None
    assert [a.actor for a in audit(room, Action.ROOM_CLOSE)] == [room.owner]
    with refused("room_closed"):
        services.member_join(room=room, user=member)

    services.room_open(room=room, actor=room.owner)

    room.refresh_from_db()
    assert room.status == Room.Status.OPEN
    assert len(audit(room, Action.ROOM_OPEN)) == 1
    services.member_join(room=room, user=member)
    assert membership(room, member).active


def test_room_close_and_open_are_for_owner_and_staff_only():
    room = RoomFactory()
    admin = admin_of(room)

    with refused("forbidden"):
        services.room_close(room=room, actor=admin)
    services.room_close(room=room, actor=operator())
    with refused("forbidden"):
        services.room_open(room=room, actor=admin)

    room.refresh_from_db()
    assert room.status == Room.Status.CLOSED


# --- join, tickets, leave ---------------------------------------------------------------


def test_join_makes_an_active_member_and_returns_a_ticket():
    room = RoomFactory()
    user = UserFactory()

    result = services.member_join(room=room, user=user)

    assert result.membership.role == Membership.Role.MEMBER and result.membership.active
    assert result.ticket_expires_in == 60
    assert services.ticket_redeem(ticket=result.ticket, room_id=room.pk).user_id == user.pk


def test_join_private_room_needs_the_password_except_owner_and_staff():
    room = RoomFactory(password="pw")

    with refused("bad_password"):
        services.member_join(room=room, user=UserFactory())
    with refused("bad_password"):
        services.member_join(room=room, user=UserFactory(), password="wrong")
    services.member_join(room=room, user=UserFactory(), password="pw")
    services.member_join(room=room, user=operator())
    services.member_join(room=room, user=room.owner)

    assert Membership.objects.filter(room=room, active=True).count() == 3


def test_join_refuses_when_full_and_the_owner_counts():
    room = RoomFactory(capacity=2)
    first = join(room)

    with refused("room_full"):
        services.member_join(room=room, user=UserFactory())
    # Joining again while in the room takes no second place.
    services.member_join(room=room, user=first)
    services.member_leave(room=room, user=first)
    join(room)


def test_ticket_is_single_use_and_bound_to_its_room():
    room, other = RoomFactory(), RoomFactory()
    user = UserFactory()
    ticket = services.member_join(room=room, user=user).ticket

    assert services.ticket_redeem(ticket=ticket, room_id=other.pk) is None
    assert services.ticket_redeem(ticket=ticket, room_id=room.pk).user_id == user.pk
    assert services.ticket_redeem(ticket=ticket, room_id=room.pk) is None
    assert services.ticket_redeem(ticket=ticket[:-2] + "xx", room_id=room.pk) is None


def test_ticket_expires_after_the_configured_ttl(settings, monkeypatch):
    settings.VOICEROOM_TICKET_TTL_S = 5
    room = RoomFactory()
    user = join(room)
    early, late = (services.ticket_member_issue(room=room, user=user) for _ in range(2))
    assert early[1] == late[1] == 5
    issued_at = signing.time.time()

    def travel(seconds: float) -> None:
        clock = types.SimpleNamespace(time=lambda: issued_at + seconds)
        monkeypatch.setattr(signing, "time", clock)

    travel(4)
    assert services.ticket_redeem(ticket=early[0], room_id=room.pk).user_id == user.pk
    travel(7)
    assert services.ticket_redeem(ticket=late[0], room_id=room.pk) is None


def test_ticket_for_a_member_only():
    room = RoomFactory()
    user = UserFactory()

    with refused("not_a_member"):
        services.ticket_member_issue(room=room, user=user)
    join(room, user)
    ticket, _ = services.ticket_member_issue(room=room, user=user)
    assert services.ticket_redeem(ticket=ticket, room_id=room.pk).user_id == user.pk


def test_leave_frees_the_seat_and_ends_the_presence(django_capture_on_commit_callbacks):
    room = RoomFactory()
    user = join(room)
    services.seat_take(room=room, user=user, index=2)
    presence.store().attach(room.pk, user.pk, node="n", channel="c")

    # Presence changes once the leave commits (tests/rooms/services/).
    with django_capture_on_commit_callbacks(execute=True):
        services.member_leave(room=room, user=user)

    mine = membership(room, user)
    assert not mine.active and mine.seat is None
    assert presence.store().get(room.pk, user.pk) is None
    with refused("not_a_member"):
        services.member_leave(room=room, user=user)


# --- moderation --------------------------------------------------------------------------


def test_mute_and_unmute_are_audited_once_per_change():
    room = RoomFactory()
    user = join(room)

    services.member_mute(room=room, actor=room.owner, user_id=user.pk, muted=True)
    services.member_mute(room=room, actor=room.owner, user_id=user.pk, muted=True)
    assert membership(room, user).muted
    services.member_mute(room=room, actor=room.owner, user_id=user.pk, muted=False)

    assert not membership(room, user).muted
    (muted,) = audit(room, Action.MUTE)
    assert (muted.actor, muted.target) == (room.owner, user)
    assert len(audit(room, Action.UNMUTE)) == 1


def test_moderation_rules_owner_untouchable_admin_not_on_admin_member_not_at_all():
    room = RoomFactory()
    admin, other_admin, member = admin_of(room), admin_of(room), join(room)
    staff = operator()

    for actor in (admin, staff):
        with refused("forbidden"):
            services.member_mute(room=room, actor=actor, user_id=room.owner_id, muted=True)
    with refused("forbidden"):
        services.member_kick(room=room, actor=admin, user_id=other_admin.pk)
    with refused("forbidden"):
        services.member_mute(room=room, actor=member, user_id=admin.pk, muted=True)

    services.member_mute(room=room, actor=admin, user_id=member.pk, muted=True)
    services.member_mute(room=room, actor=staff, user_id=other_admin.pk, muted=True)
    services.member_kick(room=room, actor=room.owner, user_id=admin.pk)
    assert membership(room, member).muted and membership(room, other_admin).muted
    assert not membership(room, admin).active


def test_moderating_an_unknown_member_is_not_found():
    room = RoomFactory()

    with refused("not_found"):
        services.member_mute(room=room, actor=room.owner, user_id=UserFactory().pk, muted=True)


def test_kick_ends_membership_is_audited_and_allows_rejoin():
    room = RoomFactory()
    user = join(room)

    services.member_kick(room=room, actor=room.owner, user_id=user.pk)

    assert not membership(room, user).active
    (row,) = audit(room, Action.KICK)
    assert (row.actor, row.target) == (room.owner, user)
    with refused("not_in_room"):
        services.member_kick(room=room, actor=room.owner, user_id=user.pk)
    join(room, user)
    assert membership(room, user).active


def test_ban_refuses_join_until_unban_both_audited():
    room = RoomFactory()
    user = join(room)

    services.member_ban(room=room, actor=room.owner, user_id=user.pk, reason="spam")

    mine = membership(room, user)
    assert mine.banned and not mine.active and mine.ban_reason == "spam"
    (row,) = audit(room, Action.BAN)
    assert (row.actor, row.target, row.reason) == (room.owner, user, "spam")
    with refused("banned"):
        services.member_join(room=room, user=user)

    services.member_unban(room=room, actor=room.owner, user_id=user.pk)

    assert not membership(room, user).banned
    assert len(audit(room, Action.UNBAN)) == 1
    join(room, user)


def test_set_role_by_owner_or_staff_is_audited():
    room = RoomFactory()
    user, admin = join(room), admin_of(room)

    services.member_set_role(room=room, actor=room.owner, user_id=user.pk, role="admin")
    assert membership(room, user).role == "admin"
    services.member_set_role(room=room, actor=operator(), user_id=user.pk, role="member")
    assert membership(room, user).role == "member"
    with refused("forbidden"):
        services.member_set_role(room=room, actor=admin, user_id=user.pk, role="admin")
    with refused("forbidden"):
        services.member_set_role(room=room, actor=room.owner, user_id=room.owner_id, role="member")
    with refused("invalid"):
        services.member_set_role(room=room, actor=room.owner, user_id=user.pk, role="owner")

    rows = audit(room, Action.ROLE)
    assert sorted(r.detail["role"] for r in rows if r.target == user) == ["admin", "member"]
