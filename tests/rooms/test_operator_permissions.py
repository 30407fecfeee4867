"""Operators' powers over REST and the socket follow the Django permissions the admin checks.

Issue 12, item 4: staff with view-only admin rights used to kick, ban, close, change
roles, remove room passwords and enter private rooms through REST. Each power below is
tried by a view-only staff user (refused, nothing changes), by staff holding every other
permission but the one the power needs (refused), by staff holding just that permission
(done) and by a superuser (done). rooms/policy.py is the rule; docs/moderation.md the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accounts.models import User
from rooms import services
from rooms.models import Membership, Room, SeatRequest
from tests.factories import OPERATOR_PERMISSIONS, RoomFactory, UserFactory, operator, token_for
from tests.rooms.realtime import a_member, a_room, connect
from voiceroom.errors import Forbidden

CHANGE_ROOM = "change_room"
MODERATE = "change_membership"
VIEW_MEMBERS = "view_membership"
VIEW_ONLY = ("view_room", "view_membership")


@dataclass
class World:
    room: Room
    alice: User  # a plain member, in the room
    carol: User  # a member waiting for a seat
    dave: User  # banned

    def member(self, user: User) -> Membership:
        return Membership.objects.get(room=self.room, user=user)


@dataclass
class Power:
    name: str
    permission: str
    method: str
    path: Callable[[World], str]
    body: dict | None
    ok: int
    done: Callable[[World, User], bool]
    prepare: Callable[[World], None] = field(default=lambda w: None)
    refusal: str = "forbidden"


def room_path(suffix: str = "") -> Callable[[World], str]:
    return lambda w: f"/api/rooms/{w.room.pk}/{suffix}"


def member_path(who: str, act: str) -> Callable[[World], str]:
    return lambda w: f"/api/rooms/{w.room.pk}/members/{getattr(w, who).pk}/{act}"


def fresh(w: World) -> Room:
    return Room.objects.get(pk=w.room.pk)


def close_first(w: World) -> None:
    services.room_close(room=w.room, actor=w.room.owner)


POWERS = [
    Power(
        "change a room",
        CHANGE_ROOM,
        "patch",
        room_path(),
        {"topic": "changed by an operator"},
        200,
        lambda w, op: fresh(w).topic == "changed by an operator",
    ),
    Power(
        "remove a room's password",
        CHANGE_ROOM,
        "patch",
        room_path(),
        {"password": None},
        200,
        lambda w, op: not fresh(w).is_private,
    ),
    Power(
        "close a room",
        CHANGE_ROOM,
        "post",
        room_path("close"),
        None,
        200,
        lambda w, op: fresh(w).status == Room.Status.CLOSED,
    ),
    Power(
        "open a room",
        CHANGE_ROOM,
        "post",
        room_path("open"),
        None,
        200,
        lambda w, op: fresh(w).status == Room.Status.OPEN,
        prepare=close_first,
    ),
    Power(
        "join a private room without its password",
        CHANGE_ROOM,
        "post",
        room_path("join"),
        {},
        200,
        lambda w, op: Membership.objects.filter(room=w.room, user=op, active=True).exists(),
        refusal="bad_password",
    ),
    Power(
        "mute a member",
        MODERATE,
        "post",
        member_path("alice", "mute"),
        {"muted": True},
        200,
        lambda w, op: w.member(w.alice).muted,
    ),
    Power(
        "mute everyone",
        MODERATE,
        "post",
        room_path("mute-all"),
        {"muted": True},
        200,
        lambda w, op: w.member(w.alice).muted,
    ),
    Power(
        "kick a member",
        MODERATE,
        "post",
        member_path("alice", "kick"),
        None,
        204,
        lambda w, op: not w.member(w.alice).active,
    ),
    Power(
        "ban a member",
        MODERATE,
        "post",
        member_path("alice", "ban"),
        {"reason": "spam"},
        204,
        lambda w, op: w.member(w.alice).banned,
    ),
    Power(
        "unban a member",
        MODERATE,
        "post",
        member_path("dave", "unban"),
        None,
        204,
        lambda w, op: not w.member(w.dave).banned,
    ),
    Power(
        "change a member's role",
        MODERATE,
        "post",
        member_path("alice", "role"),
        {"role": "admin"},
        200,
        lambda w, op: w.member(w.alice).role == Membership.Role.ADMIN,
    ),
    Power(
        "accept a seat request",
        MODERATE,
        "post",
        lambda w: f"/api/rooms/{w.room.pk}/seat-requests/{w.carol.pk}/accept",
        {},
        200,
        lambda w, op: w.member(w.carol).seat is not None,
    ),
    Power(
        "refuse a seat request",
        MODERATE,
        "post",
        lambda w: f"/api/rooms/{w.room.pk}/seat-requests/{w.carol.pk}/refuse",
        None,
        204,
        lambda w, op: not SeatRequest.objects.filter(room=w.room, user=w.carol).exists(),
    ),
    Power(
        "list a room's members",
        VIEW_MEMBERS,
        "get",
        room_path("members/"),
        None,
        200,
        lambda w, op: True,
    ),
    Power(
        "list a room's seat requests",
        VIEW_MEMBERS,
        "get",
        room_path("seat-requests"),
        None,
        200,
        lambda w, op: True,
    ),
]
BY_NAME = {p.name: p for p in POWERS}


@pytest.fixture
def world(db) -> World:
    room = RoomFactory(password="secret", seat_count=4)
    alice, carol, dave = UserFactory(), UserFactory(), UserFactory()
    for user in (alice, carol, dave):
        services.member_join(room=room, user=user, password="secret")
    services.seat_request_create(room=room, user=carol)
    services.member_ban(room=room, actor=room.owner, user_id=dave.pk)
    return World(room=room, alice=alice, carol=carol, dave=dave)


def view_only() -> User:
    """What the brief calls view-only: every view permission of rooms, no change one."""
    return operator(*VIEW_ONLY)


def all_but(permission: str) -> User:
    # The change permission implies the view one (as in the admin): leave both out.
    left_out = {permission, MODERATE} if permission == VIEW_MEMBERS else {permission}
    return operator(*[p for p in OPERATOR_PERMISSIONS if p not in left_out])


def call(power: Power, world: World, user: User):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    send = getattr(client, power.method)
    if power.body is None:
        return send(power.path(world))
    return send(power.path(world), power.body, format="json")


def refused(power: Power, world: World, user: User) -> None:
    power.prepare(world)
    response = call(power, world, user)
    assert response.status_code == 403, (power.name, response.content)
    assert response.json()["code"] == power.refusal
    if power.method != "get":
        assert not power.done(world, user), f"{power.name} happened anyway"


def allowed(power: Power, world: World, user: User) -> None:
    power.prepare(world)
    response = call(power, world, user)
    assert response.status_code == power.ok, (power.name, response.content)
    assert power.done(world, user), f"{power.name} answered {power.ok} but did not happen"


NAMES = [p.name for p in POWERS]
MUTATIONS = [p.name for p in POWERS if p.method != "get"]


@pytest.mark.parametrize("name", MUTATIONS)
def test_view_only_staff_are_refused(world, name):
    refused(BY_NAME[name], world, view_only())


@pytest.mark.parametrize("name", ["list a room's members", "list a room's seat requests"])
def test_staff_without_the_view_permission_cannot_look_into_rooms_they_are_not_in(world, name):
    refused(BY_NAME[name], world, operator("view_room", CHANGE_ROOM))


@pytest.mark.parametrize("name", NAMES)
def test_staff_with_every_other_permission_are_refused(world, name):
    power = BY_NAME[name]
    refused(power, world, all_but(power.permission))


@pytest.mark.parametrize("name", NAMES)
def test_staff_with_the_permission_may(world, name):
    power = BY_NAME[name]
    allowed(power, world, operator(power.permission))


@pytest.mark.parametrize("name", NAMES)
def test_superusers_may_everything(world, name):
    superuser = User.objects.create_superuser(username="root", password="pw-long-enough-1")
    allowed(BY_NAME[name], world, superuser)


def test_a_permission_given_to_a_user_who_is_not_staff_gives_no_power(world):
    """As in the admin, which only lets active staff in at all."""
    user = UserFactory()
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="rooms"))
    refused(BY_NAME["kick a member"], world, User.objects.get(pk=user.pk))


def test_an_inactive_operator_has_no_power(world):
    # REST already refuses their token (401); the admin's actions call the services too.
    with pytest.raises(Forbidden):
        services.room_close(room=world.room, actor=operator(is_active=False))
    assert fresh(world).status == Room.Status.OPEN


# --- the socket: seat moderation by an operator who is in the room ------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("codenames", "allowed_to"),
    [(VIEW_ONLY, False), ((CHANGE_ROOM, "view_room", VIEW_MEMBERS), False), ((MODERATE,), True)],
)
async def test_seat_moderation_frames_follow_the_membership_change_permission(
    codenames, allowed_to
):
    from channels.db import database_sync_to_async

    room = await a_room(seat_count=2)
    member, _ = await a_member(room)

    @database_sync_to_async
    def operator_in_room() -> tuple[User, str]:
        op = operator(*codenames)
        services.seat_take(room=room, user=member, index=0)
        return op, services.member_join(room=room, user=op).ticket

    op, ticket = await operator_in_room()
    sock = await connect(room.pk, ticket, op.pk)
    for frame in (
        {"type": "seat.lock", "index": 1, "locked": True},
        {"type": "seat.mute", "index": 0, "muted": True},
        {"type": "moderate", "action": "seat.remove", "user_id": member.pk},
    ):
        await sock.send(**frame)
        if allowed_to:
            event = await sock.event_of("seat.updated")
            assert event["seat"]["index"] == frame.get("index", 0)
        else:
            error = await sock.event_of("error")
            assert error["code"] == "forbidden"
    seats = await database_sync_to_async(
        lambda: {s.index: (s.locked, s.muted) for s in room.seats.all()}
    )()
    seated = await database_sync_to_async(
        lambda: Membership.objects.get(room=room, user=member).seat
    )()
    if allowed_to:
        assert seats == {0: (False, True), 1: (True, False)} and seated is None
    else:
        assert seats == {0: (False, False), 1: (False, False)} and seated == 0
    await sock.disconnect()


# --- the admin offers an operator the same acts ------------------------------------------


def test_the_admin_offers_an_operator_the_acts_rest_allows_them(world, client):
    from django.urls import reverse

    op = operator("view_room", "view_membership", CHANGE_ROOM)
    client.force_login(op)
    rooms_page = client.get(reverse("admin:rooms_room_changelist")).content.decode()
    members_page = client.get(reverse("admin:rooms_membership_changelist")).content.decode()
    assert 'value="close_rooms"' in rooms_page
    assert 'value="mute_all_rooms"' not in rooms_page
    assert 'value="kick"' not in members_page

    assert call(BY_NAME["close a room"], world, op).status_code == 200
    assert call(BY_NAME["kick a member"], world, op).status_code == 403
