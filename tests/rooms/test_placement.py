"""`ws_url` in the REST answers (contract v1.1, Placement): the path without placement;
with Redis and VOICEROOM_NODE_URL, the room's home node, and a live one again within a
heartbeat round once the home is claimed dead."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from realtime import presence, runtime
from realtime.placement import NodeInfo
from rooms import reaper, services
from tests.factories import RoomFactory, UserFactory, token_for

pytestmark = pytest.mark.django_db

HERE = "http://public.example:8080/node/here"
OTHER = "http://public.example:8080/node/other"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def answers(room, user) -> dict[str, str]:
    """ws_url of the join, ticket and detail answers, in that order of asking."""
    api = client_for(user)
    join = api.post(f"/api/rooms/{room.pk}/join")
    ticket = api.post(f"/api/rooms/{room.pk}/ticket")
    detail = api.get(f"/api/rooms/{room.pk}/")
    for r in (join, ticket, detail):
        assert r.status_code == 200, r.content
    return {
        "join": join.json()["ws_url"],
        "ticket": ticket.json()["ws_url"],
        "detail": detail.json()["ws_url"],
    }


def test_without_node_urls_ws_url_is_the_path_everywhere():
    room = RoomFactory()
    path = f"/ws/rooms/{room.pk}/"
    assert answers(room, UserFactory()) == {"join": path, "ticket": path, "detail": path}


@pytest.fixture
def placed(settings, monkeypatch):
    """This process as node "here" of a deployment that names node URLs (Redis needed)."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL=redis://...")
    settings.VOICEROOM_NODE_URL = HERE
    settings.VOICEROOM_NODE_DEAD_AFTER_S = 6.0
    runtime.install(None)
    rt = runtime.current()
    rt.store.clear()
    rt.placement.clear()
    # Judge other nodes from the first tick (normally a node waits a full period).
    monkeypatch.setattr(reaper, "_judge_others_after", 0.0)
    monkeypatch.setattr(reaper, "_last_beat", time.monotonic())
    yield rt
    rt.placement.clear()


def beat_other(rt, now: float, sockets: int) -> None:
    """Another node's heartbeats (presence and placement)."""
    rt.store.heartbeat("other", now)
    rt.placement.beat(NodeInfo("other", OTHER, now, sockets, 5000))


@pytest.mark.redis
def test_ws_url_names_the_rooms_home_node(placed):
    now = time.time()
    beat_other(placed, now, sockets=0)
    reaper.tick(now=now, sockets=300)  # "here" is busier: the room goes to "other"
    room = RoomFactory()
    ws = f"ws://public.example:8080/node/other/ws/rooms/{room.pk}/"
    assert answers(room, UserFactory()) == {"join": ws, "ticket": ws, "detail": ws}
    # It stays there, though "other" is now the busier one.
    beat_other(placed, now + 1, sockets=900)
    reaper.tick(now=now + 1, sockets=0)
    assert answers(room, UserFactory())["join"] == ws
    # The next new room goes to "here".
    second = RoomFactory()
    here = f"ws://public.example:8080/node/here/ws/rooms/{second.pk}/"
    assert answers(second, UserFactory())["detail"] == here


@pytest.mark.redis
def test_a_dead_homes_rooms_get_a_live_home_when_the_node_is_claimed_dead(placed):
    now = time.time()
    beat_other(placed, now, sockets=0)
    reaper.tick(now=now, sockets=300)
    rooms = [RoomFactory() for _ in range(3)]
    for room in rooms:
        assert "/node/other/" in services.room_ws_url(room_id=room.pk)
    # "other" stops beating; "here" goes on. 7 s later it is claimed dead, and the
    # reaper's own round places its rooms (before anyone asks).
    for t in range(1, 8):
        reaper.tick(now=now + t, sockets=300)
    assert placed.placement.rooms_on("other") == []
    assert placed.placement.rooms_on(placed.node_id) == sorted(r.pk for r in rooms)
    for room in rooms:
        assert answers(room, UserFactory())["detail"].startswith(
            "ws://public.example:8080/node/here/"
        )


@pytest.mark.redis
def test_a_room_is_placed_again_where_its_members_are_connected(placed):
    now = time.time()
    beat_other(placed, now, sockets=0)
    reaper.tick(now=now, sockets=300)
    room = RoomFactory()
    assert "/node/other/" in services.room_ws_url(room_id=room.pk, now=now)
    # Its members ignored ws_url and connected here; then "other" died.
    for user in (UserFactory(), UserFactory()):
        services.member_join(room=room, user=user)
        presence.store().attach(room.pk, user.pk, node=placed.node_id, channel=f"c{user.pk}")
    # 7 s later "other" is dead; "here" (busy) and an empty third node are alive. The
    # room goes where its members are, not to the emptiest node.
    third = NodeInfo("third", "http://public.example:8080/node/third", now + 7, 0, 5000)
    placed.placement.beat(third)
    reaper.tick(now=now + 7, sockets=300)
    assert "/node/here/" in services.room_ws_url(room_id=room.pk, now=now + 7)
    # A room with nobody connected goes to the emptiest.
    empty = RoomFactory()
    assert "/node/third/" in services.room_ws_url(room_id=empty.pk, now=now + 7)


@pytest.mark.redis
def test_a_redis_error_answers_the_path(placed, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    def down(*args, **kwargs):
        raise RedisConnectionError("down")

    monkeypatch.setattr(placed.placement, "place", down)
    room = RoomFactory()
    assert answers(room, UserFactory())["join"] == f"/ws/rooms/{room.pk}/"


@pytest.mark.redis
def test_a_closed_room_leaves_its_home_and_is_placed_again_when_reopened(
    placed, django_capture_on_commit_callbacks
):
    now = time.time()
    reaper.tick(now=now, sockets=0)
    room = RoomFactory()
    assert "/node/here/" in services.room_ws_url(room_id=room.pk)
    assert placed.placement.rooms_on(placed.node_id) == [room.pk]
    with django_capture_on_commit_callbacks(execute=True):
        services.room_close(room=room, actor=room.owner)
    assert placed.placement.home_of(room.pk) is None
    assert placed.placement.rooms_on(placed.node_id) == []
    services.room_open(room=room, actor=room.owner)
    assert "/node/here/" in services.room_ws_url(room_id=room.pk)
    assert placed.placement.rooms_on(placed.node_id) == [room.pk]


@pytest.mark.redis
def test_looking_at_a_closed_room_does_not_place_it_again(
    placed, django_capture_on_commit_callbacks
):
    reaper.tick(now=time.time(), sockets=0)
    room = RoomFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.room_close(room=room, actor=room.owner)
    detail = client_for(UserFactory()).get(f"/api/rooms/{room.pk}/")
    assert detail.status_code == 200, detail.content
    assert detail.json()["ws_url"] == f"/ws/rooms/{room.pk}/"
    assert placed.placement.home_of(room.pk) is None
    assert placed.placement.rooms_on(placed.node_id) == []


@pytest.mark.redis
def test_a_closed_room_that_kept_a_live_home_answers_it_without_placing(placed):
    reaper.tick(now=time.time(), sockets=0)
    room = RoomFactory()
    url = services.room_ws_url(room_id=room.pk)
    assert "/node/here/" in url
    room.status = room.Status.CLOSED
    room.save(update_fields=["status"])  # closed without the on-commit unplace
    assert client_for(UserFactory()).get(f"/api/rooms/{room.pk}/").json()["ws_url"] == url
    # A home that died is not replaced for a closed room: the answer is the path.
    placed.placement.forget_node(placed.node_id)
    detail = client_for(UserFactory()).get(f"/api/rooms/{room.pk}/").json()
    assert detail["ws_url"] == f"/ws/rooms/{room.pk}/"
    assert placed.placement.home_of(room.pk) == placed.node_id
