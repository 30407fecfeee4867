"""Resume tokens on the socket: single use, new in every welcome, never a way to take
over a connected socket, dead once the window closed (contract v1.1, "Sessions and
credentials"). Runs on the in-memory store, and on Redis when REDIS_URL is set."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async

from accounts.models import User
from rooms import services
from tests.rooms.realtime import Client, a_member, a_room, communicator, connect, refused

pytestmark = [pytest.mark.django_db(transaction=True)]


async def two_members():
    room = await a_room()
    a_user, a_ticket = await a_member(room)
    b_user, b_ticket = await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    b = await connect(room.pk, b_ticket, b_user.pk)
    await a.event_of("participant.joined")
    return room, a, b


async def resume(room_id: int, token: str, user_id: int) -> Client:
    comm = communicator(room_id, f"resume={token}")
    assert (await comm.connect())[0]
    out = await comm.receive_output(3)
    assert out["type"] == "websocket.send", f"resume refused: {out}"
    welcome = json.loads(out["text"])
    assert welcome["type"] == "welcome" and welcome["resumed"] is True
    return Client(comm, welcome, user_id)


async def drop(client: Client, watcher: Client) -> None:
    """The client's socket goes away; wait until the room sees it in its window."""
    await client.disconnect()
    await watcher.event_where(
        "participant.updated",
        lambda e: (
            e["participant"]["user_id"] == client.user_id and not e["participant"]["connected"]
        ),
    )


def token_of(client: Client) -> str:
    return client.welcome["session"]["resume_token"]


async def test_a_resume_token_works_once_and_the_welcome_carries_the_next():
    room, a, b = await two_members()
    first = token_of(a)
    await drop(a, b)
    again = await resume(room.pk, first, a.user_id)
    second = token_of(again)
    assert second != first
    await drop(again, b)
    # Used: refused, although the session is in its window.
    assert await refused(room.pk, f"resume={first}") == 4001
    # The token of the latest welcome works, once.
    third_socket = await resume(room.pk, second, a.user_id)
    assert token_of(third_socket) not in (first, second)
    await drop(third_socket, b)
    assert await refused(room.pk, f"resume={second}") == 4001
    await b.disconnect()


async def test_a_resume_token_cannot_take_over_a_connected_socket():
    room, a, b = await two_members()
    assert await refused(room.pk, f"resume={token_of(a)}") == 4001
    # The owner never noticed: no 4012, the socket still answers, the room saw nothing.
    await a.nothing()
    await a.send(type="ping")
    assert (await a.event_of("pong"))["type"] == "pong"
    await b.nothing()
    # And its owner can still use the token once the socket drops.
    await drop(a, b)
    back = await resume(room.pk, token_of(a), a.user_id)
    await back.disconnect()
    await b.disconnect()


async def test_a_resume_token_is_refused_once_the_window_closed(settings):
    settings.VOICEROOM_RESUME_WINDOW_S = 1
    room, a, b = await two_members()
    await drop(a, b)
    await asyncio.sleep(1.2)  # the reaper has not run: the session is still stored
    assert await refused(room.pk, f"resume={token_of(a)}") == 4001
    await b.disconnect()


async def test_every_welcome_carries_a_token_never_handed_out_before():
    room, a, b = await two_members()
    user = await database_sync_to_async(User.objects.get)(pk=a.user_id)
    seen = [token_of(a)]
    # A new socket with a ticket takes over the session (4012 for the old one).
    ticket, _ = await database_sync_to_async(services.ticket_issue)(room=room, user=user)
    newer = await connect(room.pk, ticket, a.user_id)
    assert await a.closed() == 4012
    seen.append(token_of(newer))
    # The replaced socket's token died with it.
    await drop(newer, b)
    assert await refused(room.pk, f"resume={seen[0]}") == 4001
    resumed = await resume(room.pk, seen[1], a.user_id)
    seen.append(token_of(resumed))
    await drop(resumed, b)
    # Back with a ticket inside the window (the same session goes on): a new token again.
    ticket, _ = await database_sync_to_async(services.ticket_member_issue)(room=room, user=user)
    fresh = await connect(room.pk, ticket, a.user_id)
    assert fresh.welcome["you"]["user_id"] == a.user_id
    seen.append(token_of(fresh))
    assert len(set(seen)) == len(seen), seen
    await fresh.disconnect()
    await b.disconnect()
