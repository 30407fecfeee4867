"""Moderation as the people in the room notice it: every act, made through REST, the
WebSocket and the admin, seen on live sockets (WebsocketCommunicator through the whole
ASGI application): the target's socket closed with its code or silenced, the others'
events, the frames a muted member sends not relayed, and the audit row."""

from __future__ import annotations

import itertools
import struct

import pytest
from channels.db import database_sync_to_async
from django.test import Client as DjangoClient
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from rooms import policy, services
from rooms.models import Membership, ModerationAction, SeatRequest
from tests.factories import token_for
from tests.rooms.realtime import a_member, a_room, connect, owner_ticket, refused

pytestmark = [pytest.mark.django_db(transaction=True)]

_ops = itertools.count(1)


def header(frame: bytes) -> tuple[int, int, int]:
    return struct.unpack(">BII", frame[:9])


async def drain(*clients) -> None:
    """Read and forget whatever is waiting, until each socket is quiet."""
    for client in clients:
        while not await client.comm.receive_nothing(0.15):
            await client.comm.receive_output(1)


async def disconnect(*clients) -> None:
    for client in clients:
        await client.disconnect()


class Scene:
    """A room with its owner, two plain members (a, b) and optionally an admin, connected."""

    async def setup(self, *, seat_count: int = 0, admins: int = 0) -> Scene:
        self.room = await a_room(seat_count=seat_count)
        self.owner = await connect(self.room.pk, await owner_ticket(self.room), self.room.owner_id)
        self.people = [self.owner]
        self.a = await self._member()
        self.b = await self._member()
        self.admins = []
        for _ in range(admins):
            client = await self._member()
            await database_sync_to_async(services.member_set_role)(
                room=self.room, actor=policy.SYSTEM, user_id=client.user_id, role="admin"
            )
            self.admins.append(client)
        await drain(*self.people)
        return self

    async def _member(self):
        user, ticket = await a_member(self.room)
        client = await connect(self.room.pk, ticket, user.pk)
        self.people.append(client)
        return client

    async def close(self) -> None:
        await disconnect(*self.people)


async def scene(**kwargs) -> Scene:
    return await Scene().setup(**kwargs)


# --- the three ways to act -----------------------------------------------------------------


@database_sync_to_async
def rest(user_id: int, method: str, path: str, body: dict | None = None):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(User.objects.get(pk=user_id))}")
    return getattr(client, method)(path, body, format="json")


@database_sync_to_async
def operator() -> User:
    return User.objects.create_superuser(
        username=f"operator{next(_ops)}", password="pw-long-enough-1"
    )


@database_sync_to_async
def admin_post(user: User, url: str, data: dict):
    client = DjangoClient()
    client.force_login(user)
    return client.post(url, data, follow=True)


def live_url(room, act: str) -> str:
    return reverse("admin:rooms_room_live", args=[room.pk, act])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


REST_PATHS = {
    "mute": ("members/{id}/mute", {"muted": True}),
    "unmute": ("members/{id}/mute", {"muted": False}),
    "kick": ("members/{id}/kick", None),
    "ban": ("members/{id}/ban", {"reason": "rude"}),
    "mute_all": ("mute-all", {"muted": True}),
    "unmute_all": ("mute-all", {"muted": False}),
}


async def moderate(via: str, s: Scene, action: str, target_id: int | None = None) -> None:
    """The room's owner (or an operator in the admin) makes one moderation act."""
    room = s.room
    if via == "rest":
        path, body = REST_PATHS[action]
        response = await rest(
            room.owner_id, "post", f"/api/rooms/{room.pk}/" + path.format(id=target_id), body
        )
        assert response.status_code in (200, 204), response.content
    elif via == "ws":
        frame = {"type": "moderate", "action": action}
        if target_id is not None:
            frame["user_id"] = target_id
        if action == "ban":
            frame["reason"] = "rude"
        await s.owner.send(**frame)
    elif via == "admin":  # the buttons of the room's live participants table
        act = action.replace(".", "_")
        data = {"_live_reason": "rude"} if action == "ban" else {}
        if target_id is not None:
            data["_live_user"] = target_id
        response = await admin_post(await operator(), live_url(room, act), data)
        assert response.status_code == 200
        assert not any("error" in m.level_tag for m in response.context["messages"])
    elif via == "admin_actions":  # the changelist actions (Membership, Room)
        if action in ("mute_all", "unmute_all", "close"):
            url = reverse("admin:rooms_room_changelist")
            name = {"close": "close_rooms"}.get(action, f"{action}_rooms")
            selected = [room.pk]
        else:
            url = reverse("admin:rooms_membership_changelist")
            name = action
            selected = [
                await database_sync_to_async(
                    lambda: Membership.objects.get(room=room, user_id=target_id).pk
                )()
            ]
        data = {"action": name, "_selected_action": selected, "reason": "rude"}
        response = await admin_post(await operator(), url, data)
        assert response.status_code == 200
    else:
        raise ValueError(via)


@database_sync_to_async
def audit(room, action: str) -> list[tuple[int | None, int | None]]:
    return list(
        ModerationAction.objects.filter(room=room, action=action).values_list(
            "actor_id", "target_id"
        )
    )


async def collect(client, **wanted) -> dict[str, dict]:
    """Read events until one of each wanted type (dots as underscores) matching its test
    has arrived, whatever their order (they may come through different groups)."""
    found: dict[str, dict] = {}
    while len(found) < len(wanted):
        event = await client.event()
        key = event["type"].replace(".", "_")
        if key in wanted and key not in found and wanted[key](event):
            found[key] = event
    return found


def anything(event) -> bool:
    return True


def about(user_id: int):
    return lambda e: e["participant"]["user_id"] == user_id


async def speaks(speaker, listener, count: int = 3) -> list[int]:
    """`speaker` sends `count` frames; the sequence numbers `listener` receives."""
    for i in range(count):
        await speaker.voice(bytes([i]) * 40)
    return [header(f)[2] for f in await listener.frames(0.3) if header(f)[1] == speaker.user_id]


# --- mute --------------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["rest", "ws", "admin", "admin_actions"])
async def test_mute_silences_the_target_at_once_and_unmute_gives_the_voice_back(via):
    s = await scene()
    assert await speaks(s.a, s.b) == [1, 2, 3]
    await drain(*s.people)

    await moderate(via, s, "mute", s.a.user_id)

    for client in (s.a, s.b, s.owner):
        event = await client.event_where("participant.updated", about(s.a.user_id))
        assert event["participant"]["muted"] is True
    assert await speaks(s.a, s.b, 5) == []  # not one frame relayed
    assert await speaks(s.b, s.a, 2) == [1, 2]  # the others still talk

    await moderate(via, s, "unmute", s.a.user_id)

    event = await s.b.event_where("participant.updated", about(s.a.user_id))
    assert event["participant"]["muted"] is False
    await s.a.event_where("participant.updated", about(s.a.user_id))
    assert await speaks(s.a, s.b, 2) == [4, 5]  # the sequence counts relayed frames only
    rows = await audit(s.room, "mute") + await audit(s.room, "unmute")
    assert [target for _, target in rows] == [s.a.user_id, s.a.user_id]
    await s.close()


# --- kick, ban -----------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["rest", "ws", "admin", "admin_actions"])
async def test_kick_closes_the_targets_socket_4010_frees_the_seat_and_tells_the_others(via):
    s = await scene(seat_count=2)
    await s.a.send(type="seat.take", index=1)
    await s.b.event_of("seat.updated")
    await drain(*s.people)

    await moderate(via, s, "kick", s.a.user_id)

    assert await s.a.closed() == 4010
    for client in (s.b, s.owner):
        left = await client.event_of("participant.left")
        assert left == {"type": "participant.left", "user_id": s.a.user_id, "reason": "kicked"}
        seat = await client.event_of("seat.updated")
        assert seat["seat"] == {"index": 1, "user_id": None, "locked": False, "muted": False}
    assert len(await audit(s.room, "kick")) == 1
    # Kicked, not banned: they may come back.
    response = await rest(s.a.user_id, "post", f"/api/rooms/{s.room.pk}/join", {})
    assert response.status_code == 200
    await disconnect(s.owner, s.b)


@pytest.mark.parametrize("via", ["rest", "ws", "admin", "admin_actions"])
async def test_ban_closes_the_targets_socket_4003_and_keeps_them_out(via):
    s = await scene()
    await moderate(via, s, "ban", s.a.user_id)

    assert await s.a.closed() == 4003
    for client in (s.b, s.owner):
        left = await client.event_of("participant.left")
        assert (left["user_id"], left["reason"]) == (s.a.user_id, "banned")
    response = await rest(s.a.user_id, "post", f"/api/rooms/{s.room.pk}/join", {})
    assert response.status_code == 403 and response.json()["code"] == "banned"
    ticket, _ = await database_sync_to_async(services.ticket_issue)(
        room=s.room, user=User(pk=s.a.user_id)
    )
    assert await refused(s.room.pk, f"ticket={ticket}") == 4003
    [(actor, target)] = await audit(s.room, "ban")
    assert target == s.a.user_id
    reason = await database_sync_to_async(
        lambda: ModerationAction.objects.get(room=s.room, action="ban").reason
    )()
    assert reason == "rude"
    await disconnect(s.owner, s.b)


# --- close -----------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["rest", "admin_actions"])
async def test_close_sends_room_closed_then_closes_every_socket_4011(via):
    s = await scene()
    if via == "rest":
        response = await rest(s.room.owner_id, "post", f"/api/rooms/{s.room.pk}/close")
        assert response.status_code == 200
    else:
        await moderate(via, s, "close")
    for client in s.people:
        updated = await client.event()
        assert updated["type"] == "room.updated" and updated["room"]["status"] == "closed"
        assert await client.event() == {"type": "room.closed"}
        assert await client.closed() == 4011
    assert len(await audit(s.room, "room.close")) == 1
    # Reconnecting says why: the room is closed (not "not a member", though closing
    # ended every membership).
    ticket, _ = await database_sync_to_async(services.ticket_issue)(
        room=s.room, user=User(pk=s.a.user_id)
    )
    assert await refused(s.room.pk, f"ticket={ticket}") == 4011


# --- seat.remove, seat.lock, seat.mute ------------------------------------------------------------


@pytest.mark.parametrize("via", ["ws", "admin"])
async def test_seat_remove_unseats_the_target_and_their_voice_stops(via):
    s = await scene(seat_count=2)
    await s.a.send(type="seat.take", index=0)
    await s.a.event_where("participant.updated", about(s.a.user_id))
    assert await speaks(s.a, s.b) == [1, 2, 3]
    await drain(*s.people)

    await moderate(via, s, "seat.remove", s.a.user_id)

    event = await s.a.event_where("participant.updated", about(s.a.user_id))
    assert event["participant"]["seat"] is None
    seat = await s.b.event_of("seat.updated")
    assert seat["seat"] == {"index": 0, "user_id": None, "locked": False, "muted": False}
    assert await speaks(s.a, s.b, 4) == []
    [(_, target)] = await audit(s.room, "seat.remove")
    assert target == s.a.user_id
    await s.close()


async def test_seat_lock_frame_unseats_the_holder_and_refuses_the_seat():
    s = await scene(seat_count=2)
    await s.a.send(type="seat.take", index=1)
    await s.a.event_where("participant.updated", about(s.a.user_id))
    await drain(*s.people)

    await s.owner.send(type="seat.lock", index=1, locked=True)

    assert (await s.a.event_where("participant.updated", about(s.a.user_id)))["participant"][
        "seat"
    ] is None
    seat = await s.b.event_of("seat.updated")
    assert seat["seat"] == {"index": 1, "user_id": None, "locked": True, "muted": False}
    assert await speaks(s.a, s.b) == []
    await s.a.send(type="seat.take", index=1)
    assert (await s.a.event_of("error"))["code"] == "seat_locked"
    await s.owner.send(type="seat.lock", index=1, locked=False)
    await s.a.event_where("seat.updated", lambda e: not e["seat"]["locked"])
    await s.a.send(type="seat.take", index=1)
    await s.b.event_where("seat.updated", lambda e: e["seat"]["user_id"] == s.a.user_id)
    await s.close()


async def test_seat_mute_frame_silences_whoever_sits_there():
    s = await scene(seat_count=2)
    await s.a.send(type="seat.take", index=0)
    await s.a.event_where("participant.updated", about(s.a.user_id))
    await drain(*s.people)

    await s.owner.send(type="seat.mute", index=0, muted=True)
    assert (await s.a.event_of("seat.updated"))["seat"]["muted"] is True
    assert await speaks(s.a, s.b) == []
    await s.owner.send(type="seat.mute", index=0, muted=False)
    assert (await s.a.event_of("seat.updated"))["seat"]["muted"] is False
    assert await speaks(s.a, s.b) == [1, 2, 3]
    assert len(await audit(s.room, "seat.mute")) == len(await audit(s.room, "seat.unmute")) == 1
    await s.close()


@pytest.mark.parametrize(
    "frame,code",
    [
        ({"type": "seat.take", "index": 0}, "seat_taken"),
        ({"type": "seat.take", "index": 1}, "seat_locked"),
        ({"type": "seat.take", "index": 7}, "invalid_seat"),
        ({"type": "seat.take"}, "no_free_seat"),
        ({"type": "seat.leave"}, "not_seated"),
        ({"type": "seat.lock", "index": 0, "locked": True}, "forbidden"),
        ({"type": "seat.mute", "index": 0, "muted": True}, "forbidden"),
        ({"type": "moderate", "action": "seat.remove", "user_id": 0}, "forbidden"),
    ],
)
async def test_seat_frames_refused_with_an_error_code(frame, code):
    s = await scene(seat_count=2)
    await s.a.send(type="seat.take", index=0)
    await s.b.event_of("seat.updated")
    await s.owner.send(type="seat.lock", index=1, locked=True)
    await s.b.event_where("seat.updated", lambda e: e["seat"]["locked"])
    await drain(*s.people)
    if frame.get("user_id") == 0:
        frame = {**frame, "user_id": s.a.user_id}

    await s.b.send(**frame)

    error = await s.b.event_of("error")
    assert error["code"] == code and error["detail"]
    await s.owner.nothing()  # nothing changed, nobody was told anything
    await s.close()


# --- seat_count changes ------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["rest", "admin"])
async def test_fewer_seats_keep_who_they_can_and_free_the_rest_live(via):
    s = await scene(seat_count=4)
    await s.a.send(type="seat.take", index=3)
    await s.b.send(type="seat.take", index=0)
    await s.owner.event_where("seat.updated", lambda e: e["seat"]["user_id"] == s.b.user_id)
    await drain(*s.people)

    if via == "rest":
        response = await rest(
            s.room.owner_id, "patch", f"/api/rooms/{s.room.pk}/", {"seat_count": 2}
        )
        assert response.status_code == 200
    else:
        room = s.room
        data = {
            "name": room.name,
            "topic": room.topic,
            "capacity": room.capacity,
            "seat_count": 2,
            "password": "",
            "memberships-TOTAL_FORMS": "3",
            "memberships-INITIAL_FORMS": "3",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
        }
        url = reverse("admin:rooms_room_change", args=[room.pk])
        response = await admin_post(await operator(), url, data)
        assert response.status_code == 200

    for client in s.people:
        updated = await client.event()
        assert updated["type"] == "room.updated" and updated["room"]["seat_count"] == 2
        freed = await client.event()
        assert freed == {
            "type": "seat.updated",
            "seat": {"index": 3, "user_id": None, "locked": False, "muted": False},
        }
        moved = await client.event()
        assert moved["type"] == "participant.updated"
        assert moved["participant"]["user_id"] == s.a.user_id
        assert moved["participant"]["seat"] is None
    assert await speaks(s.a, s.owner) == []  # unseated: silent
    assert await speaks(s.b, s.owner) == [1, 2, 3]  # kept seat 0: still speaks
    await s.close()


# --- mute all --------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["rest", "ws", "admin", "admin_actions"])
async def test_mute_all_silences_everyone_but_the_moderators(via):
    s = await scene(admins=1)
    [admin] = s.admins

    await moderate(via, s, "mute_all")

    for target in (s.a, s.b):
        for client in s.people:
            event = await client.event_where("participant.updated", about(target.user_id))
            assert event["participant"]["muted"] is True
    await drain(*s.people)
    assert await speaks(s.a, s.owner) == []
    assert await speaks(s.b, admin) == []
    assert await speaks(admin, s.a) == [1, 2, 3]
    assert await speaks(s.owner, s.b) == [1, 2, 3]
    await drain(*s.people)  # the frames the other listeners got
    [(_, target)] = await audit(s.room, "mute_all")
    assert target is None

    await moderate(via, s, "unmute_all")

    for target in (s.a, s.b):
        event = await s.owner.event_where("participant.updated", about(target.user_id))
        assert event["participant"]["muted"] is False
    await s.a.event_where("participant.updated", about(s.a.user_id))
    assert await speaks(s.a, s.owner) == [1, 2, 3]
    assert len(await audit(s.room, "unmute_all")) == 1
    await s.close()


async def test_mute_all_answers_the_members_over_rest():
    s = await scene(admins=1)
    response = await rest(
        s.room.owner_id, "post", f"/api/rooms/{s.room.pk}/mute-all", {"muted": True}
    )
    assert response.status_code == 200
    body = response.json()
    assert {m["user"]["id"] for m in body} == {s.a.user_id, s.b.user_id}
    assert all(m["muted"] and m["online"] and m["role"] == "member" for m in body)
    await s.close()


# --- role rules on the socket -------------------------------------------------------------------


async def test_role_rules_over_the_socket():
    s = await scene(admins=2)
    first, second = s.admins
    refusals = [
        (first, {"type": "moderate", "action": "kick", "user_id": s.owner.user_id}),
        (first, {"type": "moderate", "action": "mute", "user_id": second.user_id}),
        (first, {"type": "moderate", "action": "ban", "user_id": second.user_id}),
        (s.a, {"type": "moderate", "action": "mute", "user_id": s.b.user_id}),
        (s.a, {"type": "moderate", "action": "mute_all"}),
        (s.a, {"type": "seat.request.accept", "user_id": s.b.user_id}),
    ]
    for actor, frame in refusals:
        await actor.send(**frame)
        assert (await actor.event_of("error"))["code"] == "forbidden", frame
    for client in s.people:
        await client.nothing(0.2)  # nobody was muted, kicked or banned
    # An admin may act on a plain member.
    await first.send(type="moderate", action="kick", user_id=s.a.user_id)
    assert await s.a.closed() == 4010
    await disconnect(s.owner, s.b, first, second)


async def test_role_rules_over_rest():
    s = await scene(admins=1)
    [admin] = s.admins
    room = f"/api/rooms/{s.room.pk}"
    for user_id, method, path, body in [
        (s.a.user_id, "post", "/mute-all", {"muted": True}),
        (s.a.user_id, "get", "/seat-requests", None),
        (admin.user_id, "post", "/close", None),
        (admin.user_id, "post", f"/members/{s.owner.user_id}/mute", {"muted": True}),
        (admin.user_id, "post", f"/members/{s.a.user_id}/role", {"role": "admin"}),
    ]:
        response = await rest(user_id, method, room + path, body)
        assert response.status_code == 403 and response.json()["code"] == "forbidden", path
    for client in s.people:
        await client.nothing(0.2)
    await s.close()


# --- seat requests ------------------------------------------------------------------------------


async def test_seat_request_over_the_socket_accepted():
    s = await scene(seat_count=3, admins=1)
    [admin] = s.admins

    await s.a.send(type="seat.request", index=2)

    for client in (s.owner, admin, s.a):
        request = (await client.event_of("seat.requested"))["request"]
        assert (request["user_id"], request["index"]) == (s.a.user_id, 2)
        assert request["ts"].endswith("Z")
    await s.b.nothing()  # a listener does not see the queue
    assert await speaks(s.a, s.b) == []

    await admin.send(type="seat.request.accept", user_id=s.a.user_id)

    resolved = {
        "type": "seat.request.resolved",
        "user_id": s.a.user_id,
        "accepted": True,
        "index": 2,
    }
    for client in (s.owner, admin):
        assert await client.event_of("seat.request.resolved") == resolved
    seat = await s.b.event_of("seat.updated")
    assert seat["seat"] == {"index": 2, "user_id": s.a.user_id, "locked": False, "muted": False}
    got = await collect(s.a, seat_request_resolved=anything, participant_updated=about(s.a.user_id))
    assert got["seat_request_resolved"] == resolved
    assert got["participant_updated"]["participant"]["seat"] == 2
    await drain(*s.people)
    assert await speaks(s.a, s.b) == [1, 2, 3]
    await s.b.nothing()
    [(actor, target)] = await audit(s.room, "seat.request.accept")
    assert (actor, target) == (admin.user_id, s.a.user_id)
    await s.close()


async def test_seat_request_over_the_socket_refused_and_errors():
    s = await scene(seat_count=2)
    await s.a.send(type="seat.request")
    await s.owner.event_of("seat.requested")
    await s.a.event_of("seat.requested")
    await s.a.send(type="seat.request")
    assert (await s.a.event_of("error"))["code"] == "seat_request_pending"
    await s.owner.send(type="seat.request.accept", user_id=s.b.user_id)
    assert (await s.owner.event_of("error"))["code"] == "no_seat_request"

    await s.owner.send(type="seat.request.refuse", user_id=s.a.user_id)

    refused_event = {"type": "seat.request.resolved", "user_id": s.a.user_id, "accepted": False}
    assert await s.a.event_of("seat.request.resolved") == refused_event
    assert await s.owner.event_of("seat.request.resolved") == refused_event
    await s.b.nothing()
    assert not await database_sync_to_async(SeatRequest.objects.exists)()
    assert len(await audit(s.room, "seat.request.refuse")) == 1
    await s.close()


async def test_seat_request_cancelled_by_the_requester_or_by_leaving():
    s = await scene(seat_count=2)
    await s.a.send(type="seat.request")
    await s.owner.event_of("seat.requested")
    await s.a.send(type="seat.request.cancel")
    cancelled = await s.owner.event_of("seat.request.cancelled")
    assert cancelled == {
        "type": "seat.request.cancelled",
        "user_id": s.a.user_id,
        "reason": "cancelled",
    }
    await s.b.send(type="seat.request")
    await s.owner.event_of("seat.requested")
    await s.b.send(type="leave")
    assert await s.b.closed() == 1000
    cancelled = await s.owner.event_of("seat.request.cancelled")
    assert (cancelled["user_id"], cancelled["reason"]) == (s.b.user_id, "left")
    await disconnect(s.owner, s.a)


async def test_seat_request_over_rest_and_a_late_moderator_sees_the_queue_in_welcome():
    s = await scene(seat_count=2)
    room = f"/api/rooms/{s.room.pk}"
    response = await rest(s.a.user_id, "post", room + "/seat-requests", {"index": 1})
    assert response.status_code == 201
    assert response.json()["user_id"] == s.a.user_id and response.json()["index"] == 1
    assert (await s.owner.event_of("seat.requested"))["request"] == response.json()
    listed = await rest(s.room.owner_id, "get", room + "/seat-requests")
    assert listed.status_code == 200 and listed.json() == [response.json()]

    # An admin named now, connecting now, finds the request in their welcome.
    user, ticket = await a_member(s.room)
    await database_sync_to_async(services.member_set_role)(
        room=s.room, actor=policy.SYSTEM, user_id=user.pk, role="admin"
    )
    late = await connect(s.room.pk, ticket, user.pk)
    assert late.welcome["seat_requests"] == [response.json()]

    accepted = await rest(s.room.owner_id, "post", room + f"/seat-requests/{s.a.user_id}/accept")
    assert accepted.status_code == 200 and accepted.json()["seat"] == 1
    for client in (s.a, late, s.owner):
        assert (await client.event_of("seat.request.resolved"))["accepted"] is True
    assert (await s.b.event_of("seat.updated"))["seat"]["user_id"] == s.a.user_id

    again = await rest(s.room.owner_id, "post", room + f"/seat-requests/{s.a.user_id}/refuse")
    assert again.status_code == 404 and again.json()["code"] == "no_seat_request"
    await s.close()
    await late.disconnect()


@pytest.mark.parametrize("act,accepted", [("accept", True), ("refuse", False)])
async def test_seat_request_accepted_or_refused_in_the_admin(act, accepted):
    s = await scene(seat_count=2)
    await s.a.send(type="seat.request")
    await s.owner.event_of("seat.requested")
    op = await operator()
    page = await database_sync_to_async(
        lambda: _get(op, reverse("admin:rooms_room_change", args=[s.room.pk]))
    )()
    assert live_url(s.room, act) in page

    await moderate("admin", s, act, s.a.user_id)

    if accepted:
        got = await collect(
            s.a, seat_request_resolved=anything, participant_updated=about(s.a.user_id)
        )
        assert got["seat_request_resolved"]["accepted"] is True
        assert got["participant_updated"]["participant"]["seat"] == 0
        await drain(*s.people)
        assert await speaks(s.a, s.b) == [1, 2, 3]
    else:
        assert (await s.a.event_of("seat.request.resolved"))["accepted"] is False
        await s.b.nothing()
    [(_, target)] = await audit(s.room, f"seat.request.{act}")
    assert target == s.a.user_id
    await s.close()


def _get(user: User, url: str) -> str:
    client = DjangoClient()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


# --- the admin's live participants table ----------------------------------------------------------


async def test_room_page_shows_live_participants_with_their_state_and_buttons():
    s = await scene(seat_count=2)
    await s.a.send(type="seat.take", index=1)
    await s.b.send(type="mute.self", muted=True)
    await database_sync_to_async(services.member_mute)(
        room=s.room, actor=policy.SYSTEM, user_id=s.b.user_id, muted=True
    )
    await s.owner.event_where(
        "participant.updated",
        lambda e: e["participant"]["muted"] and e["participant"]["self_muted"],
    )
    op = await operator()
    html = await database_sync_to_async(
        lambda: _get(op, reverse("admin:rooms_room_change", args=[s.room.pk]))
    )()

    assert "Live participants" in html
    # First on the page, in a form of its own that ends before the room's form begins:
    # Enter in the room's fields still means Save.
    live_form_end = html.index("</form>", html.index('id="live_form"'))
    assert live_form_end < html.index('id="room_form"')
    rows = {
        uid: html.split(f'data-user-id="{uid}"')[1].split("</tr>")[0]
        for uid in (s.owner.user_id, s.a.user_id, s.b.user_id)
    }
    a_cells = rows[s.a.user_id]
    # Seat index 1 on the wire is "seat 2" for people, as in the demo.
    assert "<td>connected</td>" in a_cells and '<td class="seat">2</td>' in a_cells
    assert live_url(s.room, "kick") in a_cells and live_url(s.room, "ban") in a_cells
    assert live_url(s.room, "mute") in a_cells and live_url(s.room, "seat_remove") in a_cells
    b_cells = rows[s.b.user_id]
    assert b_cells.count("<td>yes</td>") == 2  # muted and self-muted
    assert live_url(s.room, "unmute") in b_cells
    assert live_url(s.room, "kick") not in rows[s.owner.user_id]  # nobody acts on the owner
    assert live_url(s.room, "mute_all") in html
    await s.close()


async def test_the_live_panel_follows_the_room_for_the_page_to_refresh_in_place():
    s = await scene(seat_count=2)
    op = await operator()
    page = await database_sync_to_async(
        lambda: _get(op, reverse("admin:rooms_room_change", args=[s.room.pk]))
    )()
    panel_url = reverse("admin:rooms_room_live_panel", args=[s.room.pk])
    assert f'data-url="{panel_url}"' in page  # what the page's script polls

    # Someone comes in and sits on seat index 0 after the page was loaded.
    late_user, ticket = await a_member(s.room)
    late = await connect(s.room.pk, ticket, late_user.pk)
    await late.send(type="seat.take", index=0)
    await s.owner.event_where("participant.updated", lambda e: e["participant"]["seat"] == 0)
    assert f'data-user-id="{late_user.pk}"' not in page

    panel = await database_sync_to_async(lambda: _get(op, panel_url))()
    row = panel.split(f'data-user-id="{late_user.pk}"')[1].split("</tr>")[0]
    assert "<td>connected</td>" in row and '<td class="seat">1</td>' in row
    assert live_url(s.room, "kick") in row
    assert "<html" not in panel  # the tables alone, to put in place
    await late.disconnect()
    await s.close()


async def test_the_live_panel_is_for_staff_who_may_see_the_room():
    s = await scene()
    panel_url = reverse("admin:rooms_room_live_panel", args=[s.room.pk])

    @database_sync_to_async
    def get_as(*, staff: bool, perms: tuple[str, ...]):
        from django.contrib.auth.models import Permission

        user = User.objects.create_user(
            username=f"person{next(_ops)}", password="pw-long-enough-1", is_staff=staff
        )
        user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
        client = DjangoClient()
        client.force_login(user)
        return client.get(panel_url)

    anonymous = await database_sync_to_async(lambda: DjangoClient().get(panel_url))()
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    not_staff = await get_as(staff=False, perms=("view_room",))
    assert not_staff.status_code == 302 and "/admin/login/" in not_staff["Location"]
    assert (await get_as(staff=True, perms=())).status_code == 403
    viewer = await get_as(staff=True, perms=("view_room",))
    assert viewer.status_code == 200
    body = viewer.content.decode()
    assert f'data-user-id="{s.a.user_id}"' in body and live_url(s.room, "kick") not in body
    await s.close()


async def test_room_page_without_moderation_permission_shows_no_buttons_and_refuses_posts():
    s = await scene()

    @database_sync_to_async
    def viewer() -> User:
        from django.contrib.auth.models import Permission

        user = User.objects.create_user(username="viewer", password="pw-long-enough-1")
        user.is_staff = True
        user.save()
        user.user_permissions.add(Permission.objects.get(codename="view_room"))
        return user

    op = await viewer()
    html = await database_sync_to_async(
        lambda: _get(op, reverse("admin:rooms_room_change", args=[s.room.pk]))
    )()
    assert "Live participants" in html and live_url(s.room, "kick") not in html

    @database_sync_to_async
    def post():
        client = DjangoClient()
        client.force_login(op)
        return client.post(live_url(s.room, "kick"), {"_live_user": s.a.user_id})

    assert (await post()).status_code == 403
    await s.a.nothing()
    await s.close()


async def test_admin_button_refusal_shows_the_services_message():
    s = await scene()
    response = await admin_post(
        await operator(), live_url(s.room, "kick"), {"_live_user": s.owner.user_id}
    )
    assert "Nobody can moderate the room's owner." in messages_of(response)
    await s.owner.nothing()
    await s.close()


# --- malformed moderation and seat-request frames ------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "moderate", "action": "mute"},
        {"type": "moderate", "action": "kick", "user_id": "bob"},
        {"type": "moderate", "action": "mute_everyone"},
        {"type": "seat.request", "index": -1},
        {"type": "seat.request", "index": "front"},
        {"type": "seat.request.accept"},
        {"type": "seat.request.accept", "user_id": 1, "index": True},
        {"type": "seat.request.refuse", "user_id": None},
    ],
)
async def test_malformed_moderation_frames_get_invalid_message(frame):
    s = await scene(seat_count=2)
    await s.owner.send(**frame)
    assert (await s.owner.event_of("error"))["code"] == "invalid_message"
    for client in s.people:
        await client.nothing(0.1)
    await s.close()


async def test_mute_all_frame_ignores_a_stray_user_id():
    s = await scene()
    await s.owner.send(type="moderate", action="mute_all", user_id="whoever")
    event = await s.a.event_where("participant.updated", about(s.a.user_id))
    assert event["participant"]["muted"] is True
    await s.close()
