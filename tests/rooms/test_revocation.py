"""Signing out, a password change and deactivation end the user's realtime rights: their
open sockets close 4001 within 5 s, in every room, and tickets, resume tokens and API
tokens issued before are refused. (The REST half: tests/accounts/test_revocation.py; on
two real nodes over Redis: tests/rooms/test_live_revocation.py.)"""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from accounts.models import User
from rooms import services
from tests.factories import token_for
from tests.rooms.realtime import a_member, a_room, connect, refused

pytestmark = [pytest.mark.django_db(transaction=True)]


def logout(user: User) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    assert client.post("/api/auth/logout").status_code == 204


def change_password(user: User) -> None:
    user = User.objects.get(pk=user.pk)
    user.set_password("a-different-Long-pass-456")
    user.save()


def deactivate(user: User) -> None:
    user = User.objects.get(pk=user.pk)
    user.is_active = False
    user.save()


REVOKE = {"logout": logout, "password change": change_password, "deactivation": deactivate}


async def revoke(how: str, user: User) -> None:
    await database_sync_to_async(REVOKE[how])(user)


def join(room, user: User) -> str:
    return services.member_join(room=room, user=user).ticket


@pytest.mark.parametrize("how", REVOKE)
async def test_open_sockets_close_4001_within_5_s_in_every_room_and_the_rooms_see_them_leave(how):
    room = await a_room(seat_count=2)
    other_room = await a_room()
    user, ticket = await a_member(room)
    bystander, b_ticket = await a_member(room)
    a = await connect(room.pk, ticket, user.pk)
    b = await connect(room.pk, b_ticket, bystander.pk)
    elsewhere = await connect(
        other_room.pk, await database_sync_to_async(join)(other_room, user), user.pk
    )
    await a.send(type="seat.take", index=1)
    await b.event_where("seat.updated", lambda e: e["seat"]["user_id"] == user.pk)

    started = time.monotonic()
    await revoke(how, user)

    assert await a.closed(timeout=5) == 4001
    assert await elsewhere.closed(timeout=5) == 4001
    assert time.monotonic() - started < 5
    # Out of the room at once (not lingering in a resume window): the seat is free.
    left = await b.event_of("participant.left")
    assert left == {"type": "participant.left", "user_id": user.pk, "reason": "left"}
    seat = await b.event_of("seat.updated")
    assert seat["seat"]["index"] == 1 and seat["seat"]["user_id"] is None
    await b.send(type="ping")
    assert (await b.event_of("pong"))["type"] == "pong"  # the others carry on
    await b.disconnect()


@pytest.mark.parametrize("how", REVOKE)
async def test_a_ticket_issued_before_is_refused_4001(how):
    room = await a_room()
    user, ticket = await a_member(room)
    await revoke(how, user)
    assert await refused(room.pk, f"ticket={ticket}") == 4001


@pytest.mark.parametrize("how", ["logout", "password change"])
async def test_the_api_token_of_before_no_longer_opens_a_socket(how):
    room = await a_room()
    user, _ = await a_member(room)
    token = await database_sync_to_async(token_for)(user)
    await revoke(how, user)
    header = [(b"authorization", f"Token {token}".encode())]
    assert await refused(room.pk, headers=header) == 4001


@pytest.mark.parametrize("how", REVOKE)
async def test_a_resume_token_issued_before_is_refused_4001(how):
    room = await a_room()
    user, ticket = await a_member(room)
    bystander, b_ticket = await a_member(room)
    b = await connect(room.pk, b_ticket, bystander.pk)
    a = await connect(room.pk, ticket, user.pk)
    token = a.welcome["session"]["resume_token"]
    await a.disconnect()  # inside the resume window now
    await b.event_where("participant.updated", lambda e: not e["participant"]["connected"])

    await revoke(how, user)

    # The session ends at once (the others do not wait for the window to run out)...
    left = await b.event_of("participant.left")
    assert left == {"type": "participant.left", "user_id": user.pk, "reason": "left"}
    # ...and its token is refused.
    assert await refused(room.pk, f"resume={token}") == 4001
    await b.disconnect()


async def test_a_resume_token_issued_before_is_refused_even_if_its_session_outlived_the_sign_out(
    monkeypatch,
):
    # Taking the user out of their rooms is done after commit and may fail (Redis down):
    # the sign-out still succeeds, and the resume token is still refused by its issue time.
    room = await a_room()
    user, ticket = await a_member(room)
    a = await connect(room.pk, ticket, user.pk)
    token = a.welcome["session"]["resume_token"]
    await a.disconnect()

    def redis_down(**kwargs):
        from redis.exceptions import ConnectionError as RedisConnectionError

        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(services, "participants_revoke", redis_down)
    await revoke("logout", user)
    monkeypatch.undo()
    assert await refused(room.pk, f"resume={token}") == 4001


async def test_after_signing_in_again_a_new_ticket_works():
    room = await a_room()
    user, ticket = await a_member(room)  # a member with no socket yet
    await revoke("logout", user)
    assert await refused(room.pk, f"ticket={ticket}") == 4001

    def sign_in_and_get_a_ticket() -> str:
        response = APIClient().post(
            "/api/auth/login",
            {"username": user.username, "password": "a-Long-pass-123"},
            format="json",
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
        answer = client.post(f"/api/rooms/{room.pk}/ticket")
        assert answer.status_code == 200, answer.content
        return answer.json()["ticket"]

    fresh = await database_sync_to_async(sign_in_and_get_a_ticket)()
    client = await connect(room.pk, fresh, user.pk)
    assert client.welcome["you"]["user_id"] == user.pk
    await client.nothing()  # and it stays open
    await client.disconnect()


async def test_a_sign_out_that_lands_while_the_socket_is_opening_still_closes_it(monkeypatch):
    # The sign-out commits after participant_connect checked the ticket, and its 4001
    # goes to the member group before the socket joined it: the re-check catches it.
    room = await a_room()
    user, ticket = await a_member(room)
    bystander, b_ticket = await a_member(room)
    b = await connect(room.pk, b_ticket, bystander.pk)
    real = services.participant_connect

    def connect_then_sign_out(**kwargs):
        result = real(**kwargs)
        if kwargs["user_id"] == user.pk:
            User.objects.get(pk=user.pk).revoke_credentials()
        return result

    monkeypatch.setattr(services, "participant_connect", connect_then_sign_out)
    assert await refused(room.pk, f"ticket={ticket}") == 4001
    monkeypatch.undo()
    left = await b.event_of("participant.left")
    assert left["user_id"] == user.pk
    await b.disconnect()


async def test_an_expired_api_token_does_not_open_a_socket(settings):
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    settings.VOICEROOM_TOKEN_TTL_S = 3600
    room = await a_room()
    user, _ = await a_member(room)
    token = await database_sync_to_async(token_for)(user)
    header = [(b"authorization", f"Token {token}".encode())]
    await database_sync_to_async(
        lambda: Token.objects.filter(key=token).update(
            created=timezone.now() - timedelta(seconds=3601)
        )
    )()
    assert await refused(room.pk, headers=header) == 4001
