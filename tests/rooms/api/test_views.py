import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from rest_framework.pagination import PageNumberPagination
from rest_framework.test import APIClient

from realtime import presence
from rooms import events, services
from rooms.models import Membership, ModerationAction, Room
from tests.factories import RoomFactory, UserFactory, operator, token_for

pytestmark = pytest.mark.django_db

ROOM_KEYS = {
    "id",
    "name",
    "topic",
    "owner",
    "status",
    "capacity",
    "seat_count",
    "codec",
    "is_private",
    "online_count",
    "created_at",
    "recording",
}
MEMBER_KEYS = {"user", "role", "muted", "banned", "online", "seat", "joined_at"}
USER_KEYS = {"id", "username", "display_name"}


# --- helpers -------------------------------------------------------------------------------


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def room_url(room, action: str = "") -> str:
    return f"/api/rooms/{room.pk if isinstance(room, Room) else room}/{action}"


def member_url(room, user, action: str) -> str:
    user_id = user if isinstance(user, (int, str)) else user.pk
    return f"{room_url(room)}members/{user_id}/{action}"


def join(room, user=None, **kwargs):
    user = user or UserFactory()
    services.member_join(room=room, user=user, **kwargs)
    return user


def admin_of(room):
    user = join(room)
    services.member_set_role(room=room, actor=room.owner, user_id=user.pk, role="admin")
    return user


def connect(room, user, channel: str = "c"):
    return presence.store().attach(room.pk, user.pk, node="n", channel=channel)


def membership(room, user) -> Membership:
    return Membership.objects.get(room=room, user=user)


@pytest.fixture
def room():
    return RoomFactory(name="Lounge", topic="music", capacity=10, seat_count=4)


@pytest.fixture
def owner(room):
    return room.owner


@pytest.fixture
def staff():
    return operator()


@pytest.fixture
def layer(settings):
    """An in-process channel layer, to see what the REST actions tell the sockets."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return get_channel_layer()


def listen(layer, group: str) -> str:
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def received(layer, channel: str) -> dict:
    async def receive():
        return await asyncio.wait_for(layer.receive(channel), timeout=2)

    return async_to_sync(receive)()


# --- list and create -----------------------------------------------------------------------


def test_list_is_paginated_rooms_newest_first(room):
    newer = RoomFactory()

    response = client_for(UserFactory()).get("/api/rooms/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 2 and body["next"] is None and body["previous"] is None
    assert [r["id"] for r in body["results"]] == [newer.pk, room.pk]
    listed = body["results"][1]
    assert set(listed) >= ROOM_KEYS
    assert listed["name"] == "Lounge" and listed["topic"] == "music"
    assert listed["status"] == "open" and listed["is_private"] is False
    assert (listed["capacity"], listed["seat_count"]) == (10, 4)
    assert listed["owner"] == {
        "id": room.owner.pk,
        "username": room.owner.username,
        "display_name": room.owner.display_name,
    }


def test_list_pages(monkeypatch):
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    rooms = [RoomFactory() for _ in range(3)]
    client = client_for(UserFactory())

    page1 = client.get("/api/rooms/").json()
    page2 = client.get(page1["next"]).json()

    assert page1["count"] == page2["count"] == 3
    assert len(page1["results"]) == 2 and page1["previous"] is None
    assert [r["id"] for r in page1["results"] + page2["results"]] == [r.pk for r in rooms[::-1]]
    assert page2["next"] is None and page2["previous"]
    assert_error(client.get("/api/rooms/?page=9"), 404, "not_found")


def test_list_filters_by_status(room):
    closed = RoomFactory()
    services.room_close(room=closed, actor=closed.owner)
    client = client_for(UserFactory())

    open_ids = [r["id"] for r in client.get("/api/rooms/?status=open").json()["results"]]
    closed_ids = [r["id"] for r in client.get("/api/rooms/?status=closed").json()["results"]]

    assert open_ids == [room.pk]
    assert closed_ids == [closed.pk]


def test_list_refuses_an_unknown_status():
    body = assert_error(client_for(UserFactory()).get("/api/rooms/?status=busy"), 400, "invalid")
    assert "status" in body["fields"]


def test_list_online_counts_are_live_and_fetched_once_per_page(room, monkeypatch):
    other = RoomFactory()
    for user in (join(room), join(room)):
        connect(room, user)
    store = presence.store()
    calls = []
    real_counts = store.counts
    monkeypatch.setattr(
        store, "counts", lambda ids: calls.append(list(ids)) or real_counts(ids), raising=False
    )

    body = client_for(UserFactory()).get("/api/rooms/").json()

    counts = {r["id"]: r["online_count"] for r in body["results"]}
    assert counts == {room.pk: 2, other.pk: 0}
    assert len(calls) == 1


def test_list_query_count_does_not_grow_with_rooms(django_assert_max_num_queries):
    for _ in range(10):
        RoomFactory()
    client = client_for(UserFactory())

    with django_assert_max_num_queries(4):
        response = client.get("/api/rooms/")
    assert len(response.json()["results"]) == 10


def test_list_needs_a_token():
    assert_error(APIClient().get("/api/rooms/"), 401, "not_authenticated")


def test_create_answers_the_room_and_makes_the_creator_owner():
    user = UserFactory()

    response = client_for(user).post("/api/rooms/", {"name": "Jazz"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= ROOM_KEYS
    assert body["name"] == "Jazz" and body["topic"] == ""
    assert (body["capacity"], body["seat_count"]) == (50, 8)
    assert body["status"] == "open" and body["is_private"] is False
    assert body["online_count"] == 0
    assert body["codec"] == "opus"
    assert body["owner"]["id"] == user.pk
    members = client_for(user).get(room_url(body["id"], "members/")).json()
    assert [(m["user"]["id"], m["role"]) for m in members] == [(user.pk, "owner")]


def test_create_with_every_field():
    response = client_for(UserFactory()).post(
        "/api/rooms/",
        {"name": "Club", "topic": "late", "capacity": 2, "seat_count": 0, "password": "pw"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["capacity"], body["seat_count"], body["is_private"]) == (2, 0, True)
    assert "password" not in body and "password_hash" not in body


def test_create_a_pcm16_room_and_its_codec_cannot_change(owner):
    client = client_for(owner)
    body = client.post("/api/rooms/", {"name": "Old phones", "codec": "pcm16"}, format="json")
    assert body.status_code == 201, body.content
    room_id = body.json()["id"]
    assert body.json()["codec"] == "pcm16"

    # Read-only after creation: a PATCH that names it changes the rest, not the codec.
    response = client.patch(room_url(room_id), {"codec": "opus", "topic": "t"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["codec"], response.json()["topic"]) == ("pcm16", "t")
    assert Room.objects.get(pk=room_id).codec == "pcm16"
    listed = client.get("/api/rooms/").json()["results"]
    assert next(r for r in listed if r["id"] == room_id)["codec"] == "pcm16"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": None}, "name"),
        ({"name": "ok", "topic": "t" * 201}, "topic"),
        ({"name": "ok", "capacity": "abc"}, "capacity"),
        ({"name": "ok", "capacity": 1}, "capacity"),
        ({"name": "ok", "capacity": 501}, "capacity"),
        ({"name": "ok", "capacity": 2.5}, "capacity"),
        ({"name": "ok", "capacity": True}, "capacity"),
        ({"name": "ok", "capacity": 10**40}, "capacity"),
        ({"name": "ok", "seat_count": 21}, "seat_count"),
        ({"name": "ok", "seat_count": -1}, "seat_count"),
        ({"name": "ok", "seat_count": [3]}, "seat_count"),
        ({"name": "bad\x00name"}, "name"),
        ({"name": "ok", "password": "p" * 129}, "password"),
        ({"name": "ok", "codec": "mp3"}, "codec"),
        ({"name": "ok", "codec": None}, "codec"),
    ],
)
def test_create_validates_fields(payload, field):
    response = client_for(UserFactory()).post("/api/rooms/", payload, format="json")

    body = assert_error(response, 400, "invalid")
    assert field in body["fields"]
    assert not Room.objects.exists()


@pytest.mark.parametrize(
    "raw", ['{"name": ', "[1, 2", '{"name": NaN}', b"\xff\xfe\x00", "[" * 5000 + "]" * 5000]
)
def test_create_refuses_malformed_json(raw):
    response = client_for(UserFactory()).post("/api/rooms/", raw, content_type="application/json")

    assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize("raw", ["[1, 2]", '"a string"', "null", "42"])
def test_create_refuses_json_that_is_not_an_object(raw):
    response = client_for(UserFactory()).post("/api/rooms/", raw, content_type="application/json")

    assert_error(response, 400, "invalid")


# --- detail and update -------------------------------------------------------------------


def test_detail_includes_live_participants(room):
    here, away = join(room), join(room)
    services.seat_take(room=room, user=here, index=2)
    connect(room, here)
    connect(room, away, channel="c2")
    presence.store().detach(room.pk, away.pk, "c2", seq=0)

    response = client_for(UserFactory()).get(room_url(room))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= ROOM_KEYS | {"participants"}
    assert body["online_count"] == 2
    by_id = {p["user_id"]: p for p in body["participants"]}
    assert set(by_id) == {here.pk, away.pk}
    assert by_id[here.pk]["connected"] is True and by_id[here.pk]["seat"] == 2
    assert by_id[away.pk]["connected"] is False
    assert by_id[here.pk]["username"] == here.username and by_id[here.pk]["role"] == "member"


@pytest.mark.parametrize("room_id", ["999999", "abc", "-1", "1.0", "0x1", "9" * 30, "%C2%B9"])
def test_every_room_endpoint_answers_not_found_for_an_unknown_room(room_id, staff):
    RoomFactory()
    client = client_for(staff)
    calls = [
        ("get", ""),
        ("patch", ""),
        ("post", "join"),
        ("post", "ticket"),
        ("post", "leave"),
        ("post", "close"),
        ("post", "open"),
        ("get", "members/"),
        ("post", "members/1/mute"),
        ("post", "members/1/kick"),
        ("post", "members/1/ban"),
        ("post", "members/1/unban"),
        ("post", "members/1/role"),
    ]
    for method, action in calls:
        response = getattr(client, method)(
            f"/api/rooms/{room_id}/{action}", {"muted": True, "role": "admin"}, format="json"
        )
        assert_error(response, 404, "not_found")


def test_update_by_owner_changes_the_room(room, owner):
    response = client_for(owner).patch(
        room_url(room), {"name": "Renamed", "capacity": 20, "password": "pw"}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= ROOM_KEYS
    assert (body["name"], body["topic"], body["capacity"]) == ("Renamed", "music", 20)
    assert body["is_private"] is True
    assert client_for(UserFactory()).get(room_url(room)).json()["name"] == "Renamed"


def test_update_password_null_makes_the_room_public(owner):
    room = RoomFactory(owner=owner, password="pw")

    body = client_for(owner).patch(room_url(room), {"password": None}, format="json").json()

    assert body["is_private"] is False
    assert client_for(UserFactory()).post(room_url(room, "join")).status_code == 200


def test_update_allowed_to_admin_and_staff(room, staff):
    admin = admin_of(room)

    assert client_for(admin).patch(room_url(room), {"topic": "a"}, format="json").status_code == 200
    assert client_for(staff).patch(room_url(room), {"topic": "s"}, format="json").status_code == 200
    room.refresh_from_db()
    assert room.topic == "s"


def test_update_forbidden_to_members_and_outsiders(room):
    for user in (join(room), UserFactory()):
        response = client_for(user).patch(room_url(room), {"topic": "mine"}, format="json")
        assert_error(response, 403, "forbidden")
    room.refresh_from_db()
    assert room.topic == "music"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"capacity": "abc"}, "capacity"),
        ({"capacity": 1}, "capacity"),
        ({"capacity": 501}, "capacity"),
        ({"seat_count": 21}, "seat_count"),
        ({"name": ""}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"topic": None}, "topic"),
    ],
)
def test_update_validates_fields(room, owner, payload, field):
    response = client_for(owner).patch(room_url(room), payload, format="json")

    body = assert_error(response, 400, "invalid")
    assert field in body["fields"]


def test_update_needs_a_token(room):
    assert_error(APIClient().patch(room_url(room), {"topic": "x"}), 401, "not_authenticated")


# --- join ----------------------------------------------------------------------------------


def test_join_answers_room_member_ws_url_and_a_ticket(room):
    user = UserFactory()

    response = client_for(user).post(room_url(room, "join"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"room", "member", "ws_url", "ticket", "ticket_expires_in"}
    assert set(body["room"]) >= ROOM_KEYS and body["room"]["id"] == room.pk
    assert set(body["member"]) >= MEMBER_KEYS
    assert set(body["member"]["user"]) >= USER_KEYS
    assert body["member"]["user"]["id"] == user.pk
    assert body["member"]["role"] == "member"
    assert (body["member"]["muted"], body["member"]["banned"]) == (False, False)
    assert body["member"]["online"] is False and body["member"]["seat"] is None
    assert body["ws_url"] == f"/ws/rooms/{room.pk}/"
    assert body["ticket_expires_in"] == 60
    assert services.ticket_redeem(ticket=body["ticket"], room_id=room.pk).user_id == user.pk
    assert membership(room, user).active


def test_join_ticket_ttl_follows_settings(room, settings):
    settings.VOICEROOM_TICKET_TTL_S = 15

    body = client_for(UserFactory()).post(room_url(room, "join")).json()

    assert body["ticket_expires_in"] == 15


def test_join_private_room_needs_the_password(owner):
    room = RoomFactory(owner=owner, password="letmein")
    client = client_for(UserFactory())

    assert_error(client.post(room_url(room, "join")), 403, "bad_password")
    response = client.post(room_url(room, "join"), {"password": "wrong"}, format="json")
    assert_error(response, 403, "bad_password")
    response = client.post(room_url(room, "join"), {"password": "letmein"}, format="json")
    assert response.status_code == 200, response.content


def test_join_refused_to_the_banned(room, owner):
    user = join(room)
    services.member_ban(room=room, actor=owner, user_id=user.pk)

    assert_error(client_for(user).post(room_url(room, "join")), 403, "banned")


def test_join_refused_when_closed(room, owner):
    services.room_close(room=room, actor=owner)

    assert_error(client_for(UserFactory()).post(room_url(room, "join")), 409, "room_closed")


def test_join_refused_when_full_counting_the_owner():
    room = RoomFactory(capacity=2)
    assert client_for(UserFactory()).post(room_url(room, "join")).status_code == 200

    assert_error(client_for(UserFactory()).post(room_url(room, "join")), 409, "room_full")


def test_join_with_a_non_object_body_is_invalid(room):
    response = client_for(UserFactory()).post(
        room_url(room, "join"), "[]", content_type="application/json"
    )

    assert_error(response, 400, "invalid")


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_concurrent_joins_never_exceed_capacity():
    room = RoomFactory(capacity=5)
    users = [UserFactory() for _ in range(20)]
    tokens = [token_for(user) for user in users]
    start = threading.Barrier(len(users))
    outcomes: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def attempt(token: str) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
            start.wait(timeout=30)
            response = client.post(room_url(room, "join"))
            code = response.json().get("code") if response.status_code != 200 else None
            with lock:
                outcomes.append((response.status_code, code))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(outcomes) == 20
    assert outcomes.count((200, None)) == 4
    assert outcomes.count((409, "room_full")) == 16
    assert Membership.objects.filter(room=room, active=True).count() == 5


# --- ticket and leave --------------------------------------------------------------------


def test_ticket_gives_a_member_a_fresh_single_use_ticket(room):
    user = UserFactory()
    client = client_for(user)
    joined = client.post(room_url(room, "join")).json()

    response = client.post(room_url(room, "ticket"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ticket_expires_in"] == 60
    assert body["ticket"] != joined["ticket"]
    assert services.ticket_redeem(ticket=body["ticket"], room_id=room.pk).user_id == user.pk
    assert services.ticket_redeem(ticket=body["ticket"], room_id=room.pk) is None


def test_ticket_refused_to_non_members(room):
    assert_error(client_for(UserFactory()).post(room_url(room, "ticket")), 403, "not_a_member")


def test_leave_ends_membership_and_closes_the_socket_with_4000(
    room, layer, django_capture_on_commit_callbacks
):
    user = join(room)
    socket = listen(layer, events.member_group(room.pk, user.pk))
    client = client_for(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(room_url(room, "leave"))

    assert response.status_code == 204
    assert received(layer, socket) == {"type": "member.close", "code": 4000, "reason": "left"}
    assert not membership(room, user).active
    assert_error(client.post(room_url(room, "ticket")), 403, "not_a_member")


def test_leave_refused_to_non_members(room):
    response = client_for(UserFactory()).post(room_url(room, "leave"))

    assert_error(response, 403, "not_a_member")


# --- members -------------------------------------------------------------------------------


def test_members_list_for_a_member(room, owner):
    user = join(room)
    connect(room, user)

    response = client_for(user).get(room_url(room, "members/"))

    assert response.status_code == 200, response.content
    members = {m["user"]["id"]: m for m in response.json()}
    assert set(members) == {owner.pk, user.pk}
    assert all(set(m) >= MEMBER_KEYS for m in members.values())
    assert members[owner.pk]["role"] == "owner" and members[owner.pk]["online"] is False
    assert members[user.pk]["role"] == "member" and members[user.pk]["online"] is True


def test_members_list_for_staff_not_for_outsiders(room, staff):
    left = join(room)
    services.member_leave(room=room, user=left)

    assert client_for(staff).get(room_url(room, "members/")).status_code == 200
    for user in (left, UserFactory()):
        assert_error(client_for(user).get(room_url(room, "members/")), 403, "forbidden")


# --- mute ----------------------------------------------------------------------------------


def test_mute_by_owner_answers_the_member(room, owner):
    user = join(room)
    client = client_for(owner)

    response = client.post(member_url(room, user, "mute"), {"muted": True}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= MEMBER_KEYS
    assert body["user"]["id"] == user.pk and body["muted"] is True
    assert membership(room, user).muted
    unmuted = client.post(member_url(room, user, "mute"), {"muted": False}, format="json")
    assert unmuted.json()["muted"] is False
    actions = ModerationAction.objects.filter(room=room, target=user).values_list("action")
    assert sorted(a for (a,) in actions) == ["mute", "unmute"]


def test_mute_by_admin_and_staff(room, staff):
    admin, user = admin_of(room), join(room)

    for actor, muted in ((admin, True), (staff, False)):
        response = client_for(actor).post(
            member_url(room, user, "mute"), {"muted": muted}, format="json"
        )
        assert response.status_code == 200, response.content
        assert membership(room, user).muted is muted


def test_mute_permission_rules(room, owner, staff):
    admin, other_admin, member = admin_of(room), admin_of(room), join(room)
    refusals = [
        (member, admin),  # a plain member moderates nobody
        (UserFactory(), member),  # nor does an outsider
        (admin, other_admin),  # an admin cannot act on another admin
        (admin, owner),  # nobody acts on the owner
        (staff, owner),
    ]
    for actor, target in refusals:
        response = client_for(actor).post(
            member_url(room, target, "mute"), {"muted": True}, format="json"
        )
        assert_error(response, 403, "forbidden")
    assert not Membership.objects.filter(room=room, muted=True).exists()


@pytest.mark.parametrize("body", [{}, {"muted": None}, {"muted": "maybe"}, {"muted": [True]}])
def test_mute_validates_muted(room, owner, body):
    user = join(room)

    response = client_for(owner).post(member_url(room, user, "mute"), body, format="json")

    assert "muted" in assert_error(response, 400, "invalid")["fields"]


@pytest.mark.parametrize("user_id", ["999999", "abc", "-3", "9" * 40])
def test_moderating_an_unknown_member_is_not_found(room, owner, user_id):
    client = client_for(owner)
    for action, body in (
        ("mute", {"muted": True}),
        ("kick", {}),
        ("ban", {}),
        ("unban", {}),
        ("role", {"role": "admin"}),
    ):
        response = client.post(member_url(room, user_id, action), body, format="json")
        assert_error(response, 404, "not_found")


def test_moderating_a_user_who_never_joined_is_not_found(room, owner):
    stranger = UserFactory()

    response = client_for(owner).post(member_url(room, stranger, "kick"))

    assert_error(response, 404, "not_found")


# --- kick, ban, unban ----------------------------------------------------------------------


def test_kick_ends_membership_closes_socket_4010_and_allows_rejoin(
    room, owner, layer, django_capture_on_commit_callbacks
):
    user = join(room)
    socket = listen(layer, events.member_group(room.pk, user.pk))

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).post(member_url(room, user, "kick"))

    assert response.status_code == 204
    assert received(layer, socket)["code"] == 4010
    assert not membership(room, user).active
    assert ModerationAction.objects.filter(room=room, target=user, action="kick").exists()
    assert client_for(user).post(room_url(room, "join")).status_code == 200


def test_kick_permission_rules(room, owner, staff):
    admin, other_admin, member = admin_of(room), admin_of(room), join(room)
    for actor, target in ((member, admin), (admin, other_admin), (admin, owner), (staff, owner)):
        assert_error(client_for(actor).post(member_url(room, target, "kick")), 403, "forbidden")
    assert Membership.objects.filter(room=room, active=True).count() == 4

    assert client_for(admin).post(member_url(room, member, "kick")).status_code == 204
    assert client_for(staff).post(member_url(room, other_admin, "kick")).status_code == 204


def test_kick_of_someone_not_in_the_room_is_a_conflict(room, owner):
    user = join(room)
    services.member_leave(room=room, user=user)

    assert_error(client_for(owner).post(member_url(room, user, "kick")), 409, "not_in_room")


def test_ban_closes_socket_4003_refuses_join_until_unban(
    room, owner, layer, django_capture_on_commit_callbacks
):
    user = join(room)
    socket = listen(layer, events.member_group(room.pk, user.pk))

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).post(
            member_url(room, user, "ban"), {"reason": "spam"}, format="json"
        )

    assert response.status_code == 204
    assert received(layer, socket)["code"] == 4003
    assert_error(client_for(user).post(room_url(room, "join")), 403, "banned")
    listed = {m["user"]["id"]: m for m in client_for(owner).get(room_url(room, "members/")).json()}
    assert listed[user.pk]["banned"] is True
    row = ModerationAction.objects.get(room=room, target=user, action="ban")
    assert (row.actor, row.reason) == (owner, "spam")

    assert client_for(owner).post(member_url(room, user, "unban")).status_code == 204

    assert client_for(user).post(room_url(room, "join")).status_code == 200
    assert ModerationAction.objects.filter(room=room, target=user, action="unban").exists()


def test_ban_without_a_reason(room, owner):
    user = join(room)

    assert client_for(owner).post(member_url(room, user, "ban")).status_code == 204
    assert membership(room, user).banned


def test_ban_reason_too_long_is_invalid(room, owner):
    user = join(room)

    response = client_for(owner).post(
        member_url(room, user, "ban"), {"reason": "r" * 201}, format="json"
    )

    assert "reason" in assert_error(response, 400, "invalid")["fields"]
    assert not membership(room, user).banned


def test_ban_and_unban_permission_rules(room, owner, staff):
    admin, other_admin, member = admin_of(room), admin_of(room), join(room)
    for action in ("ban", "unban"):
        for actor, target in ((member, admin), (admin, other_admin), (admin, owner)):
            response = client_for(actor).post(member_url(room, target, action))
            assert_error(response, 403, "forbidden")
    assert not Membership.objects.filter(room=room, banned=True).exists()

    assert client_for(admin).post(member_url(room, member, "ban")).status_code == 204
    assert client_for(staff).post(member_url(room, member, "unban")).status_code == 204
    assert not membership(room, member).banned


# --- role ----------------------------------------------------------------------------------


def test_role_makes_an_admin_who_can_then_moderate(room, owner):
    user, other = join(room), join(room)

    response = client_for(owner).post(member_url(room, user, "role"), {"role": "admin"})

    assert response.status_code == 200, response.content
    assert response.json()["role"] == "admin" and response.json()["user"]["id"] == user.pk
    assert client_for(user).post(member_url(room, other, "kick")).status_code == 204
    back = client_for(owner).post(member_url(room, user, "role"), {"role": "member"})
    assert back.json()["role"] == "member"
    assert_error(client_for(user).post(member_url(room, other, "unban")), 403, "forbidden")


def test_role_by_staff(room, staff):
    user = join(room)

    response = client_for(staff).post(member_url(room, user, "role"), {"role": "admin"})

    assert response.status_code == 200
    assert membership(room, user).role == "admin"


def test_role_is_for_owner_and_staff_only(room, owner):
    admin, member = admin_of(room), join(room)

    for actor in (admin, member, UserFactory()):
        response = client_for(actor).post(member_url(room, member, "role"), {"role": "admin"})
        assert_error(response, 403, "forbidden")
    assert membership(room, member).role == "member"
    response = client_for(owner).post(member_url(room, owner, "role"), {"role": "member"})
    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("role", ["owner", "superuser", "", None, "ADMIN", ["admin"]])
def test_role_accepts_only_admin_or_member(room, owner, role):
    user = join(room)

    response = client_for(owner).post(member_url(room, user, "role"), {"role": role}, format="json")

    assert "role" in assert_error(response, 400, "invalid")["fields"]
    assert membership(room, user).role == "member"


# --- close and open ------------------------------------------------------------------------


def test_close_by_owner_tells_sockets_and_refuses_joins(
    room, owner, layer, django_capture_on_commit_callbacks
):
    socket = listen(layer, events.room_group(room.pk))

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).post(room_url(room, "close"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= ROOM_KEYS and body["status"] == "closed"
    messages = [received(layer, socket), received(layer, socket)]
    assert [m["type"] for m in messages] == ["room.updated", "room.closed"]
    assert_error(client_for(UserFactory()).post(room_url(room, "join")), 409, "room_closed")

    reopened = client_for(owner).post(room_url(room, "open"))

    assert reopened.status_code == 200 and reopened.json()["status"] == "open"
    assert client_for(UserFactory()).post(room_url(room, "join")).status_code == 200


def test_close_and_open_are_for_owner_and_staff_only(room, staff):
    admin, member = admin_of(room), join(room)
    for actor in (admin, member, UserFactory()):
        assert_error(client_for(actor).post(room_url(room, "close")), 403, "forbidden")
    room.refresh_from_db()
    assert room.status == "open"

    assert client_for(staff).post(room_url(room, "close")).json()["status"] == "closed"
    for actor in (admin, UserFactory()):
        assert_error(client_for(actor).post(room_url(room, "open")), 403, "forbidden")
    assert client_for(staff).post(room_url(room, "open")).json()["status"] == "open"


# --- mute all and seat requests --------------------------------------------------------------


def test_mute_all_answers_the_plain_members_muted(room, owner, layer):
    admin, member = admin_of(room), join(room)

    response = client_for(admin).post(room_url(room, "mute-all"), {"muted": True}, format="json")

    assert response.status_code == 200, response.content
    [body] = response.json()
    assert set(body) == MEMBER_KEYS
    assert (body["user"]["id"], body["muted"]) == (member.pk, True)
    assert not membership(room, owner).muted and not membership(room, admin).muted
    assert ModerationAction.objects.filter(room=room, action="mute_all", actor=admin).exists()
    response = client_for(owner).post(room_url(room, "mute-all"), {"muted": False}, format="json")
    assert response.json()[0]["muted"] is False


@pytest.mark.parametrize("body", [{}, {"muted": "perhaps"}, {"muted": None}])
def test_mute_all_validates_muted(room, owner, body):
    response = client_for(owner).post(room_url(room, "mute-all"), body, format="json")

    assert "muted" in assert_error(response, 400, "invalid")["fields"]


def test_mute_all_is_for_moderators(room, staff):
    member = join(room)
    for actor in (member, UserFactory()):
        response = client_for(actor).post(
            room_url(room, "mute-all"), {"muted": True}, format="json"
        )
        assert_error(response, 403, "forbidden")
    assert not membership(room, member).muted
    assert client_for(staff).post(room_url(room, "mute-all"), {"muted": True}).status_code == 200
    assert membership(room, member).muted


def test_seat_request_create_list_cancel(room, owner, staff):
    user = join(room)
    client = client_for(user)

    response = client.post(room_url(room, "seat-requests"), {"index": 2}, format="json")

    assert response.status_code == 201, response.content
    created = response.json()
    assert set(created) == {"user_id", "index", "ts"}
    assert (created["user_id"], created["index"]) == (user.pk, 2)
    for viewer in (owner, staff, admin_of(room)):
        assert client_for(viewer).get(room_url(room, "seat-requests")).json() == [created]
    assert_error(client.get(room_url(room, "seat-requests")), 403, "forbidden")
    assert_error(client.post(room_url(room, "seat-requests")), 409, "seat_request_pending")

    assert client.delete(room_url(room, "seat-requests")).status_code == 204
    assert_error(client.delete(room_url(room, "seat-requests")), 404, "no_seat_request")
    assert client_for(owner).get(room_url(room, "seat-requests")).json() == []


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"index": "front"}, 400, "invalid"),
        ({"index": -1}, 400, "invalid"),
        ({"index": 4}, 400, "invalid_seat"),
    ],
)
def test_seat_request_create_refusals(room, body, status, code):
    response = client_for(join(room)).post(room_url(room, "seat-requests"), body, format="json")

    assert_error(response, status, code)


def test_seat_request_create_needs_membership(room):
    response = client_for(UserFactory()).post(room_url(room, "seat-requests"))

    assert_error(response, 403, "not_a_member")


def test_seat_request_accept_and_refuse(room, owner):
    first, second = join(room), join(room)
    for user in (first, second):
        client_for(user).post(room_url(room, "seat-requests"), {}, format="json")
    accept = f"{room_url(room)}seat-requests/{first.pk}/accept"
    refuse = f"{room_url(room)}seat-requests/{second.pk}/refuse"

    assert_error(client_for(second).post(accept), 403, "forbidden")
    response = client_for(owner).post(accept, {"index": 3}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["seat"] == 3 and response.json()["user"]["id"] == first.pk
    assert client_for(owner).post(refuse).status_code == 204
    assert membership(room, second).seat is None
    assert_error(client_for(owner).post(refuse), 404, "no_seat_request")
    assert_error(
        client_for(owner).post(f"{room_url(room)}seat-requests/abc/accept"), 404, "not_found"
    )


# --- every endpoint, every kind of garbage -------------------------------------------------


ENDPOINTS = [
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("get", "/api/auth/me"),
    ("get", "/api/rooms/"),
    ("post", "/api/rooms/"),
    ("get", "/api/rooms/{room}/"),
    ("patch", "/api/rooms/{room}/"),
    ("post", "/api/rooms/{room}/join"),
    ("post", "/api/rooms/{room}/ticket"),
    ("get", "/api/rooms/{room}/members/"),
    ("post", "/api/rooms/{room}/members/{user}/mute"),
    ("post", "/api/rooms/{room}/members/{user}/role"),
    ("post", "/api/rooms/{room}/members/{user}/ban"),
    ("post", "/api/rooms/{room}/members/{user}/unban"),
    ("post", "/api/rooms/{room}/members/{user}/kick"),
    ("post", "/api/rooms/{room}/leave"),
    ("post", "/api/rooms/{room}/close"),
    ("post", "/api/rooms/{room}/open"),
    ("post", "/api/rooms/{room}/mute-all"),
    ("get", "/api/rooms/{room}/seat-requests"),
    ("post", "/api/rooms/{room}/seat-requests"),
    ("delete", "/api/rooms/{room}/seat-requests"),
    ("post", "/api/rooms/{room}/seat-requests/{user}/accept"),
    ("post", "/api/rooms/{room}/seat-requests/{user}/refuse"),
    ("post", "/api/auth/logout"),
]

# (body, content type); None means "no body".
GARBAGE = [
    ("{", "application/json"),
    ("[1, 2]", "application/json"),
    ('"just a string"', "application/json"),
    ("null", "application/json"),
    ("1e999", "application/json"),
    ('{"a": NaN}', "application/json"),
    (b"\xff\xfe\xfd", "application/json"),
    ("[" * 5000 + "]" * 5000, "application/json"),
    (
        '{"name": {"x": 1}, "topic": [1], "capacity": "abc", "seat_count": 1e400, '
        '"password": 5, "muted": "yes?", "role": {"r": 1}, "reason": [], '
        '"username": 12, "display_name": false}',
        "application/json",
    ),
    (
        '{"name": "\\u0000", "capacity": -99999999999999999999999, "seat_count": "20.5", '
        '"muted": null, "role": "owner", "reason": null, "password": null, '
        '"username": "\\ud800", "display_name": null}',
        "application/json",
    ),
    (b"\x00\x01binary", "application/octet-stream"),
    ("name=&capacity=abc&muted=perhaps&role=&password", "application/x-www-form-urlencoded"),
    ("--x\r\nnot really multipart", "multipart/form-data; boundary=x"),
    ("<xml/>", "text/xml"),
]

GARBAGE_IDS = ["abc", "-1", "0", "1e3", "9" * 40, "%00", "%E2%98%83", "1%20"]


def _assert_clean_refusal(response, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code, response.content[:300])
    if response.status_code >= 400 and response.request["REQUEST_METHOD"] != "HEAD":
        body = response.json()
        assert set(body) >= {"code", "detail"}, (what, body)
        assert body["code"].replace("_", "").isalpha() and body["code"].islower(), body


@pytest.mark.parametrize("as_who", ["nobody", "outsider", "owner"])
def test_garbage_never_causes_a_server_error(as_who):
    room = RoomFactory(capacity=3)
    member = join(room)
    user = {"nobody": None, "outsider": UserFactory(), "owner": room.owner}[as_who]

    for method, template in ENDPOINTS:
        path = template.format(room=room.pk, user=member.pk)
        for body, content_type in GARBAGE:
            client = client_for(user)  # a fresh token, should logout have deleted it
            response = client.generic(method.upper(), path, body, content_type=content_type)
            _assert_clean_refusal(response, f"{method} {path} {body!r:.60}")
        for params in ({"status": ["open", "x"]}, {"page": "-1"}, {"page": "x" * 500}):
            response = getattr(client_for(user), method)(path + "?" + _query(params))
            _assert_clean_refusal(response, f"{method} {path} {params}")
        for wrong in ("put", "delete", "options", "head"):
            _assert_clean_refusal(getattr(client_for(user), wrong)(path), f"{wrong} {path}")
        for bad_id in GARBAGE_IDS:
            bad_path = template.format(room=bad_id, user=member.pk)
            response = getattr(client_for(user), method)(bad_path, {}, format="json")
            _assert_clean_refusal(response, f"{method} {bad_path}")
            bad_path = template.format(room=room.pk, user=bad_id)
            response = getattr(client_for(user), method)(bad_path, {}, format="json")
            _assert_clean_refusal(response, f"{method} {bad_path}")


def _query(params: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(params, doseq=True)


def test_room_paths_also_answer_with_the_other_trailing_slash(room):
    user = UserFactory()
    client = client_for(user)

    assert client.post(f"/api/rooms/{room.pk}/join/").status_code == 200
    assert client.get(f"/api/rooms/{room.pk}").status_code == 200
    assert client.get(f"/api/rooms/{room.pk}/members").status_code == 200
