"""Text that cannot be encoded as UTF-8 is refused where JSON enters (issue 12, item 10).

JSON accepts a lone surrogate escape (`"\\ud800"`) and Python's json module turns it into
a `str` that no socket can send, the Redis channel layer cannot pack and MySQL cannot
store. Before the fix a chat with one was relayed: on one node every receiving socket
failed to send it, and with the Redis layer the sender's own socket died (1011) and the
message was lost. Now the socket answers an `error` with code `invalid` and stays open,
and REST answers 400 `invalid`, whatever field the text is in.

The socket tests run with the in-memory channel layer and, marked `redis`, with the
Redis layer (REDIS_URL): the `channel_layer` fixture of tests/rooms/conftest.py.
"""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from accounts.models import User
from rooms.models import Membership, Room
from tests.factories import RoomFactory, UserFactory, token_for
from tests.rooms.realtime import a_member, a_room, connect, owner_ticket

LONE = "\ud800"  # a high surrogate with no low one after it


async def two_members():
    room = await a_room()
    (a_user, a_ticket), (b_user, b_ticket) = await a_member(room), await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    b = await connect(room.pk, b_ticket, b_user.pk)
    await a.event_of("participant.joined")
    return room, a, b


async def still_works(a, b, text: str) -> None:
    """a's socket is open and the room still carries chat to everyone (Client.event
    checks that every text frame could go out as UTF-8, as a real server sends it)."""
    await a.send(type="ping")
    assert (await a.event())["type"] == "pong"
    await a.send(type="chat", text=text)
    for client in (b, a):  # chat reaches the sender too
        event = await client.event_of("chat")
        assert event["text"] == text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "frame",
    [
        {"type": "chat", "text": f"hi {LONE}"},
        {"type": "chat", "text": LONE * 3},
        {"type": "chat", "text": "\udc00 low surrogate first"},
        {"type": "whisper", "to": "B", "text": f"psst {LONE}"},
        {"type": "ping", LONE: 1},  # a key is text too
        {"type": f"chat{LONE}", "text": "x"},
    ],
    ids=["chat", "chat-only-surrogates", "chat-low-surrogate", "whisper", "key", "type"],
)
async def test_text_frames_with_a_lone_surrogate_get_an_invalid_error_and_reach_nobody(
    channel_layer, frame
):
    room, a, b = await two_members()
    frame = {k: (b.user_id if v == "B" else v) for k, v in frame.items()}
    # json.dumps writes the surrogate as the escape `\ud800`: what a client sends.
    raw = json.dumps(frame)
    assert "\\ud" in raw and raw.isascii()
    await a.comm.send_to(text_data=raw)

    error = await a.event()
    assert error["type"] == "error" and error["code"] == "invalid", error
    assert "surrogate" in error["detail"]
    await b.nothing(0.3)  # neither the chat nor the whisper reached anyone
    await still_works(a, b, "after the refusal")
    await b.nothing(0.1)
    await a.disconnect()
    await b.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_surrogate_pair_escape_is_one_character_and_is_relayed(channel_layer):
    """The rule refuses lone surrogates only: an escaped pair is a real character."""
    room, a, b = await two_members()
    await a.comm.send_to(text_data='{"type":"chat","text":"\\ud83d\\ude00 ok"}')
    for client in (b, a):
        assert (await client.event_of("chat"))["text"] == "\U0001f600 ok"
    await a.disconnect()
    await b.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_ban_reason_with_a_lone_surrogate_is_refused_on_the_socket(channel_layer):
    room = await a_room()
    owner = await connect(room.pk, await owner_ticket(room), room.owner_id)
    target_user, ticket = await a_member(room)
    target = await connect(room.pk, ticket, target_user.pk)
    await owner.event_of("participant.joined")
    frame = {"type": "moderate", "action": "ban", "user_id": target_user.pk, "reason": LONE}
    await owner.comm.send_to(text_data=json.dumps(frame))

    assert (await owner.event_of("error"))["code"] == "invalid"
    assert not await _is_banned(room, target_user)
    await still_works(owner, target, "the moderator is still here")
    await owner.disconnect()
    await target.disconnect()


@database_sync_to_async
def _is_banned(room: Room, user: User) -> bool:
    return Membership.objects.get(room=room, user=user).banned


# -- REST -------------------------------------------------------------------------------


def post_json(client: APIClient, url: str, body: dict, method: str = "post"):
    # json.dumps escapes the surrogate (`\ud800`), as a client's JSON encoder does.
    return getattr(client, method)(url, data=json.dumps(body), content_type="application/json")


def assert_invalid(response) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid", body
    assert "surrogate" in body["detail"].lower(), body


@pytest.mark.django_db
def test_rest_refuses_a_lone_surrogate_anywhere_in_a_json_body():
    """One rule for the whole body, keys included, not a check per serializer field:
    before the parser checked, a key like this went through unnoticed (201)."""
    body = {"username": "newcomer", "password": "a-Long-pass-123", f"note{LONE}": "x"}
    assert_invalid(post_json(APIClient(), "/api/auth/register", body))
    assert not User.objects.filter(username="newcomer").exists()
    body = {"username": "newcomer", "password": "a-Long-pass-123", "extra": {"deep": [LONE]}}
    assert_invalid(post_json(APIClient(), "/api/auth/register", body))


# DRF's CharField refuses surrogates by itself (400 `invalid`); the parser now refuses
# them first. These keep every stored or broadcast text field covered either way.


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["username", "password", "display_name"])
def test_register_refuses_a_lone_surrogate_in_any_field(field):
    body = {"username": "newcomer", "password": "a-Long-pass-123", "display_name": "New"}
    body[field] += LONE
    assert_invalid(post_json(APIClient(), "/api/auth/register", body))
    assert not User.objects.filter(username__startswith="newcomer").exists()


@pytest.mark.django_db
def test_login_refuses_a_lone_surrogate():
    UserFactory(username="someone")
    body = {"username": "someone", "password": "x" + LONE}
    assert_invalid(post_json(APIClient(), "/api/auth/login", body))


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["name", "topic", "password"])
def test_rooms_refuse_a_lone_surrogate_in_what_they_store(field):
    owner = UserFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(owner)}")
    body = {"name": "Lounge", "topic": "music", "password": "door-secret"}
    body[field] += LONE
    assert_invalid(post_json(client, "/api/rooms/", body))
    assert not Room.objects.exists()

    room = RoomFactory(owner=owner)
    assert_invalid(post_json(client, f"/api/rooms/{room.pk}/", {field: body[field]}, "patch"))
    room.refresh_from_db()
    assert LONE not in f"{room.name}{room.topic}"


@pytest.mark.django_db
def test_a_room_password_with_a_lone_surrogate_is_refused_at_join():
    room = RoomFactory(password="door-secret")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(UserFactory())}")
    assert_invalid(post_json(client, f"/api/rooms/{room.pk}/join", {"password": LONE}))


@pytest.mark.django_db(transaction=True)
async def test_a_ban_reason_with_a_lone_surrogate_is_refused_over_rest_and_sockets_live_on(
    channel_layer,
):
    room = await database_sync_to_async(RoomFactory)(seat_count=0)
    owner = await connect(room.pk, await owner_ticket(room), room.owner_id)
    target_user, ticket = await a_member(room)
    target = await connect(room.pk, ticket, target_user.pk)
    await owner.event_of("participant.joined")

    @database_sync_to_async
    def ban():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(room.owner)}")
        url = f"/api/rooms/{room.pk}/members/{target_user.pk}/ban"
        return post_json(client, url, {"reason": f"spam {LONE}"})

    assert_invalid(await ban())
    assert not await _is_banned(room, target_user)
    await still_works(owner, target, "nothing happened")
    await owner.disconnect()
    await target.disconnect()
