"""The room socket, end to end through the ASGI application (WebsocketCommunicator)."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest
from channels.db import database_sync_to_async

from rooms import services
from rooms.models import Membership
from tests.rooms.realtime import a_member, a_room, communicator, connect, owner_ticket, refused

pytestmark = [pytest.mark.django_db(transaction=True)]


def header(frame: bytes) -> tuple[int, int, int]:
    return struct.unpack(">BII", frame[:9])


async def two_members(**room_kwargs):
    room = await a_room(**room_kwargs)
    a_user, a_ticket = await a_member(room)
    b_user, b_ticket = await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    b = await connect(room.pk, b_ticket, b_user.pk)
    await a.event_of("participant.joined")  # b arrived
    return room, a, b


# -- connecting ------------------------------------------------------------------------


async def test_welcome_is_the_first_frame_with_room_you_participants_seats_and_session():
    room = await a_room(seat_count=4)
    user, ticket = await a_member(room)
    client = await connect(room.pk, ticket, user.pk)
    w = client.welcome
    assert w["room"]["id"] == room.pk and w["room"]["online_count"] == 1
    assert w["you"] == {
        "user_id": user.pk,
        "username": user.username,
        "display_name": user.username,
        "role": "member",
        "muted": False,
        "self_muted": False,
        "seat": None,
        "connected": True,
    }
    assert [p["user_id"] for p in w["participants"]] == [user.pk]
    assert [s["index"] for s in w["seats"]] == [0, 1, 2, 3]
    assert all(s["user_id"] is None and not s["locked"] for s in w["seats"])
    assert len(w["session"]["resume_token"]) >= 32 and w["session"]["resume_window_s"] == 20
    assert w["resumed"] is False
    await client.disconnect()


async def test_others_see_participant_joined_but_not_the_joiner_itself():
    room, a, b = await two_members()
    await b.nothing()
    await a.disconnect()
    await b.disconnect()


async def test_token_header_authenticates():
    from rest_framework.authtoken.models import Token

    room = await a_room()
    user, _ = await a_member(room)
    token = await database_sync_to_async(lambda: Token.objects.create(user=user).key)()
    comm = communicator(room.pk, headers=[(b"authorization", f"Token {token}".encode())])
    assert (await comm.connect())[0]
    welcome = json.loads((await comm.receive_output(3))["text"])
    assert welcome["type"] == "welcome" and welcome["you"]["user_id"] == user.pk
    await comm.disconnect()


@pytest.mark.parametrize(
    "query,headers",
    [
        ("", None),
        ("ticket=forged", None),
        ("resume=unknown-token", None),
        ("", [(b"authorization", b"Token not-a-token")]),
        ("", [(b"authorization", b"Bearer whatever")]),
    ],
)
async def test_bad_credentials_close_4001_after_the_handshake(query, headers):
    room = await a_room()
    assert await refused(room.pk, query, headers) == 4001


async def test_a_ticket_works_once():
    room = await a_room()
    user, ticket = await a_member(room)
    client = await connect(room.pk, ticket, user.pk)
    await client.disconnect()
    assert await refused(room.pk, f"ticket={ticket}") == 4001


async def test_a_ticket_for_another_room_is_refused():
    room, other = await a_room(), await a_room()
    _, ticket = await a_member(other)
    assert await refused(room.pk, f"ticket={ticket}") == 4001


async def test_unknown_room_closes_4004():
    assert await refused(999999, "ticket=x") == 4004


async def test_unknown_path_closes_4004():
    from channels.testing import WebsocketCommunicator

    from voiceroom.asgi import application

    comm = WebsocketCommunicator(application, "/ws/elsewhere/")
    assert (await comm.connect())[0]
    assert (await comm.receive_output(2))["code"] == 4004


async def test_not_a_member_closes_4003():
    room = await a_room()
    user, ticket = await a_member(room)
    await database_sync_to_async(services.member_leave)(room=room, user=user)
    ticket2 = await database_sync_to_async(services.ticket_issue)(room=room, user=user)
    assert await refused(room.pk, f"ticket={ticket2[0]}") == 4003


async def test_banned_closes_4003():
    room = await a_room()
    user, ticket = await a_member(room)
    await database_sync_to_async(services.member_ban)(room=room, actor=room.owner, user_id=user.pk)
    assert await refused(room.pk, f"ticket={ticket}") == 4003


async def test_closed_room_closes_4011():
    room = await a_room()
    user, ticket = await a_member(room)
    await database_sync_to_async(lambda: Membership.objects.filter(user=user).update(active=True))()
    await database_sync_to_async(services.room_close)(room=room, actor=room.owner)
    await database_sync_to_async(lambda: Membership.objects.filter(user=user).update(active=True))()
    assert await refused(room.pk, f"ticket={ticket}") == 4011


async def test_full_room_closes_4009():
    room = await a_room(capacity=2)
    a_user, a_ticket = await a_member(room)
    owner = await connect(room.pk, await owner_ticket(room), room.owner_id)
    a = await connect(room.pk, a_ticket, a_user.pk)
    # A third member got in while the room was bigger; now it is full of participants.
    room.capacity = 3
    await database_sync_to_async(room.save)()
    b_user, b_ticket = await a_member(room)
    room.capacity = 2
    await database_sync_to_async(room.save)()
    assert await refused(room.pk, f"ticket={b_ticket}") == 4009
    await owner.disconnect()
    await a.disconnect()


async def test_second_socket_of_the_same_user_replaces_the_first_with_4012():
    room, a, b = await two_members()
    ticket = (await database_sync_to_async(services.ticket_issue)(room=room, user=a_user_of(a)))[0]
    newer = await connect(room.pk, ticket, a.user_id)
    assert await a.closed() == 4012
    # The others never saw the user leave: only an update.
    event = await b.event()
    assert event["type"] == "participant.updated" and event["participant"]["connected"] is True
    await b.nothing()
    assert newer.welcome["you"]["connected"] is True
    await newer.disconnect()
    await b.disconnect()


def a_user_of(client):
    from accounts.models import User

    return User(pk=client.user_id)


# -- chat, whisper, ping, leave ----------------------------------------------------------


async def test_chat_reaches_everyone_including_the_sender():
    room, a, b = await two_members()
    await a.send(type="chat", text="hello")
    for client in (a, b):
        event = await client.event_of("chat")
        assert event["from"] == a.user_id and event["text"] == "hello" and event["ts"].endswith("Z")
    await a.disconnect()
    await b.disconnect()


async def test_whisper_reaches_only_sender_and_target():
    room, a, b = await two_members()
    c_user, c_ticket = await a_member(room)
    c = await connect(room.pk, c_ticket, c_user.pk)
    await a.event_of("participant.joined")
    await b.event_of("participant.joined")
    await a.send(type="whisper", to=b.user_id, text="psst")
    for client in (a, b):
        event = await client.event_of("whisper")
        assert (event["from"], event["to"], event["text"]) == (a.user_id, b.user_id, "psst")
    await c.nothing(0.5)
    for client in (a, b, c):
        await client.disconnect()


async def test_whisper_to_someone_not_in_the_room_is_an_error():
    room, a, b = await two_members()
    await a.send(type="whisper", to=987654, text="psst")
    event = await a.event_of("error")
    assert event["code"] == "not_in_room"
    await a.disconnect()
    await b.disconnect()


async def test_ping_pong():
    room, a, b = await two_members()
    await a.send(type="ping")
    assert (await a.event_of("pong"))["ts"].endswith("Z")
    await a.disconnect()
    await b.disconnect()


async def test_clean_leave_tells_the_others_at_once_and_frees_the_seat():
    room, a, b = await two_members(seat_count=2)
    await a.send(type="seat.take", index=1)
    await b.event_of("seat.updated")
    await a.send(type="leave")
    assert await a.closed() == 1000
    left = await b.event_of("participant.left")
    assert left == {"type": "participant.left", "user_id": a.user_id, "reason": "left"}
    seat = await b.event_of("seat.updated")
    assert seat["seat"] == {"index": 1, "user_id": None, "locked": False, "muted": False}
    await b.disconnect()


async def test_rest_leave_closes_the_socket_with_4000():
    room, a, b = await two_members()
    await database_sync_to_async(services.member_leave)(room=room, user=a_user_of(a))
    assert await a.closed() == 4000
    assert (await b.event_of("participant.left"))["reason"] == "left"
    await b.disconnect()


async def test_unclean_disconnect_is_an_update_not_a_leave():
    room, a, b = await two_members()
    await a.disconnect()
    event = await b.event()
    assert event["type"] == "participant.updated"
    assert event["participant"]["user_id"] == a.user_id
    assert event["participant"]["connected"] is False
    await b.nothing()
    await b.disconnect()


# -- voice -------------------------------------------------------------------------------


async def test_voice_is_relayed_with_the_header_and_never_echoed():
    room, a, b = await two_members()
    await a.voice(b"\x01\x02opus-frame")
    frame = await b.frame()
    assert frame[:9] == bytes([1]) + a.user_id.to_bytes(4, "big") + (1).to_bytes(4, "big")
    assert frame[9:] == b"\x01\x02opus-frame"
    await a.nothing()
    await a.disconnect()
    await b.disconnect()


async def test_hundred_frames_arrive_in_order_with_consecutive_sequence():
    room, a, b = await two_members()
    c_user, c_ticket = await a_member(room)
    c = await connect(room.pk, c_ticket, c_user.pk)
    for i in range(100):
        await a.voice(i.to_bytes(2, "big") + b"x" * 100)
        await asyncio.sleep(0.011)  # 90 frames/s: under the rate limit
    for listener in (b, c):
        frames = await listener.frames()
        assert len(frames) == 100
        assert [header(f) for f in frames] == [(1, a.user_id, i + 1) for i in range(100)]
        assert [int.from_bytes(f[9:11], "big") for f in frames] == list(range(100))
    for client in (a, b, c):
        await client.disconnect()


async def test_voice_target_sends_whisper_voice_to_one_member_only():
    room, a, b = await two_members()
    c_user, c_ticket = await a_member(room)
    c = await connect(room.pk, c_ticket, c_user.pk)
    await a.send(type="voice.target", to=b.user_id)
    await asyncio.sleep(0.05)
    await a.voice(b"secret")
    frame = await b.frame()
    assert header(frame) == (2, a.user_id, 1) and frame[9:] == b"secret"
    assert await c.frames() == []
    # null returns to the room; the sequence is shared by room and whisper voice.
    await a.send(type="voice.target", to=None)
    await asyncio.sleep(0.05)
    await a.voice(b"public")
    assert header(await b.frame()) == (1, a.user_id, 2)
    assert header(await c.frame()) == (1, a.user_id, 2)
    for client in (a, b, c):
        await client.disconnect()


async def test_voice_target_must_be_in_the_room():
    room, a, b = await two_members()
    await a.send(type="voice.target", to=424242)
    assert (await a.event_of("error"))["code"] == "not_in_room"
    await a.send(type="voice.target", to=a.user_id)
    assert (await a.event_of("error"))["code"] == "invalid_target"
    await a.disconnect()
    await b.disconnect()


async def test_frames_of_a_moderator_muted_member_are_dropped():
    room, a, b = await two_members()
    await database_sync_to_async(services.member_mute)(
        room=room, actor=room.owner, user_id=a.user_id, muted=True
    )
    await a.event_of("participant.updated")
    await a.voice(b"hello")
    assert await b.frames() == []
    await database_sync_to_async(services.member_mute)(
        room=room, actor=room.owner, user_id=a.user_id, muted=False
    )
    await a.event_of("participant.updated")
    await a.voice(b"hello")
    assert header(await b.frame()) == (1, a.user_id, 1)
    await a.disconnect()
    await b.disconnect()


async def test_self_muted_frames_are_dropped():
    room, a, b = await two_members()
    await a.send(type="mute.self", muted=True)
    event = await b.event_of("participant.updated")
    assert event["participant"]["self_muted"] is True
    await a.voice(b"hello")
    assert await b.frames() == []
    await a.send(type="mute.self", muted=False)
    await b.event_of("participant.updated")
    await a.voice(b"hello")
    assert header(await b.frame())[2] == 1
    await a.disconnect()
    await b.disconnect()


async def test_with_seats_only_seated_members_speak_and_not_on_a_muted_seat():
    room, a, b = await two_members(seat_count=2)
    await a.voice(b"unseated")
    assert await b.frames() == []
    await a.send(type="seat.take")
    await a.event_of("participant.updated")
    await a.voice(b"seated")
    assert (await b.frame())[9:] == b"seated"
    await database_sync_to_async(services.seat_mute)(
        room=room, actor=room.owner, index=0, muted=True
    )
    await a.event_of("seat.updated")
    await a.voice(b"muted seat")
    assert await b.frames() == []
    await a.disconnect()
    await b.disconnect()


# -- bad input and limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,code",
    [
        ("not json", "malformed_json"),
        ("[1,2]", "malformed_json"),
        ('{"no":"type"}', "invalid_message"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":"chat"}', "invalid_message"),
        ('{"type":"chat","text":""}', "invalid_message"),
        ('{"type":"chat","text":' + json.dumps("x" * 501) + "}", "text_too_long"),
        ('{"type":"whisper","to":"bob","text":"x"}', "invalid_message"),
        ('{"type":"mute.self","muted":"yes"}', "invalid_message"),
        ('{"type":"voice.target"}', "invalid_message"),
        ('{"type":"moderate","action":"explode","user_id":1}', "invalid_message"),
        ('{"type":"seat.lock","index":-1,"locked":true}', "invalid_message"),
        ("x" * 9000, "frame_too_large"),
    ],
)
async def test_bad_text_frames_get_an_error_and_the_socket_stays_open(raw, code):
    room, a, b = await two_members()
    await a.comm.send_to(text_data=raw)
    event = await a.event_of("error")
    assert event["code"] == code and event["detail"]
    await a.voice(b"still here")
    assert (await b.frame())[9:] == b"still here"
    await a.disconnect()
    await b.disconnect()


async def test_oversized_and_empty_voice_frames_get_an_error_and_are_not_relayed():
    room, a, b = await two_members()
    await a.voice(b"x" * 4097)
    assert (await a.event_of("error"))["code"] == "frame_too_large"
    await a.voice(b"x" * 4096)
    assert len(await b.frame()) == 9 + 4096
    assert await b.frames() == []
    await a.disconnect()
    await b.disconnect()


async def test_moderation_by_a_plain_member_is_an_error_frame():
    room, a, b = await two_members()
    await a.send(type="moderate", action="kick", user_id=b.user_id)
    assert (await a.event_of("error"))["code"] == "forbidden"
    await b.nothing()
    await a.disconnect()
    await b.disconnect()


async def test_voice_over_the_rate_limit_is_dropped():
    room, a, b = await two_members()
    for _ in range(400):  # all at once: far above 100/s
        await a.voice(b"x")
    got = await b.frames()
    assert 100 <= len(got) <= 160, len(got)
    await a.disconnect()
    await b.disconnect()


async def test_persistent_flooding_closes_4008_and_others_carry_on():
    room, a, b = await two_members()
    c_user, c_ticket = await a_member(room)
    c = await connect(room.pk, c_ticket, c_user.pk)
    for _ in range(40):
        await a.voice(b"x" * 5000)
    assert await a.closed() == 4008
    await b.send(type="chat", text="still fine")
    assert (await c.event_of("chat"))["text"] == "still fine"
    await b.voice(b"voice")
    assert (await c.frame())[9:] == b"voice"
    await b.disconnect()
    await c.disconnect()


async def test_text_flooding_closes_4008():
    room, a, b = await two_members()
    for _ in range(300):
        await a.comm.send_to(text_data="garbage")
    assert await a.closed(5) == 4008
    await b.disconnect()


# -- resume --------------------------------------------------------------------------------


async def test_resume_keeps_seat_and_mute_and_others_see_only_updates(settings):
    room, a, b = await two_members(seat_count=2)
    await a.send(type="seat.take", index=1)
    await a.send(type="mute.self", muted=True)
    await b.event_where("participant.updated", lambda e: e["participant"]["self_muted"])
    token = a.welcome["session"]["resume_token"]
    await a.disconnect()
    gone = await b.event_where(
        "participant.updated", lambda e: e["participant"]["connected"] is False
    )
    assert gone["participant"]["seat"] == 1 and gone["participant"]["self_muted"] is True

    comm = communicator(room.pk, f"resume={token}")
    assert (await comm.connect())[0]
    welcome = json.loads((await comm.receive_output(3))["text"])
    assert welcome["resumed"] is True
    assert welcome["you"]["seat"] == 1 and welcome["you"]["self_muted"] is True
    back = await b.event_of("participant.updated")
    assert back["participant"]["connected"] is True
    await b.nothing()
    await comm.disconnect()
    await b.disconnect()


async def test_resumed_voice_sequence_continues():
    room, a, b = await two_members()
    await a.voice(b"1")
    await a.voice(b"2")
    assert [header(f)[2] for f in [await b.frame(), await b.frame()]] == [1, 2]
    token = a.welcome["session"]["resume_token"]
    await a.disconnect()
    await b.event_of("participant.updated")
    comm = communicator(room.pk, f"resume={token}")
    assert (await comm.connect())[0]
    await comm.receive_output(3)
    await comm.send_to(bytes_data=b"3")
    assert header(await b.frame())[2] == 3
    await comm.disconnect()
    await b.disconnect()


async def test_after_the_window_the_participant_times_out_and_the_seat_is_freed(settings):
    from rooms import reaper

    settings.VOICEROOM_RESUME_WINDOW_S = 1
    room, a, b = await two_members(seat_count=2)
    await a.send(type="seat.take", index=0)
    await b.event_of("seat.updated")
    token = a.welcome["session"]["resume_token"]
    await a.disconnect()
    await b.event_of("participant.updated")
    await asyncio.sleep(1.1)
    await database_sync_to_async(reaper.tick)()
    left = await b.event_of("participant.left")
    assert left["user_id"] == a.user_id and left["reason"] == "timeout"
    seat = await b.event_of("seat.updated")
    assert seat["seat"]["user_id"] is None
    assert await refused(room.pk, f"resume={token}") == 4001
    await b.disconnect()


# -- credentials, sequences and failing dependencies ---------------------------------------


async def test_a_ticket_contradicted_by_the_token_header_is_refused_and_not_used_up():
    from rest_framework.authtoken.models import Token

    room = await a_room()
    user, ticket = await a_member(room)
    other, _ = await a_member(room)
    other_token = await database_sync_to_async(lambda: Token.objects.create(user=other).key)()
    header = [(b"authorization", f"Token {other_token}".encode())]
    assert await refused(room.pk, f"ticket={ticket}", header) == 4001
    client = await connect(room.pk, ticket, user.pk)  # still good for its owner
    await client.disconnect()


async def test_the_voice_sequence_never_goes_backwards_when_a_socket_is_replaced():
    room, a, b = await two_members()
    for _ in range(3):
        await a.voice(b"x")
    assert [header(await b.frame())[2] for _ in range(3)] == [1, 2, 3]
    ticket = (await database_sync_to_async(services.ticket_issue)(room=room, user=a_user_of(a)))[0]
    newer = await connect(room.pk, ticket, a.user_id)
    assert await a.closed() == 4012
    await newer.voice(b"y")
    assert header(await b.frame())[2] > 3
    await newer.disconnect()
    await b.disconnect()


async def test_a_frame_that_needs_a_database_that_is_down_gets_an_error_not_a_dropped_socket(
    monkeypatch,
):
    from django.db import OperationalError

    room, a, b = await two_members(seat_count=2)

    def down(**kwargs):
        raise OperationalError("server has gone away")

    monkeypatch.setattr(services, "seat_take", down)
    await a.send(type="seat.take", index=0)
    assert (await a.event_of("error"))["code"] == "service_unavailable"
    await a.send(type="ping")
    assert (await a.event_of("pong"))["type"] == "pong"
    await a.disconnect()
    await b.disconnect()


async def test_a_refused_leave_keeps_the_member_in_the_room(monkeypatch):
    from django.db import OperationalError

    room, a, b = await two_members()

    def down(**kwargs):
        raise OperationalError("server has gone away")

    monkeypatch.setattr(services, "member_leave", down)
    await a.send(type="leave")
    assert (await a.event_of("error"))["code"] == "service_unavailable"
    monkeypatch.undo()
    # Still a participant: a drop now is an unclean disconnect, seen as an update.
    await a.disconnect()
    event = await b.event_where(
        "participant.updated", lambda e: e["participant"]["user_id"] == a.user_id
    )
    assert event["participant"]["connected"] is False
    await b.disconnect()


async def test_chat_that_cannot_be_sent_is_an_error_for_the_sender(monkeypatch):
    from channels.layers import get_channel_layer
    from redis.exceptions import ConnectionError as RedisConnectionError

    room, a, b = await two_members()

    async def down(*args, **kwargs):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(get_channel_layer(), "group_send", down)
    await a.send(type="chat", text="hello?")
    assert (await a.event_of("error"))["code"] == "service_unavailable"
    await a.disconnect()
    await b.disconnect()


# -- sockets per user ----------------------------------------------------------------------


async def test_sockets_over_the_per_user_limit_close_4029_but_a_reconnect_replaces(settings):
    settings.VOICEROOM_MAX_SOCKETS_PER_USER = 2
    from accounts.models import User

    user = await database_sync_to_async(User.objects.create_user)(
        username="busy", password="a-Long-pass-123"
    )
    rooms = [await a_room() for _ in range(3)]
    tickets = [
        (await database_sync_to_async(services.member_join)(room=room, user=user)).ticket
        for room in rooms
    ]
    one = await connect(rooms[0].pk, tickets[0], user.pk)
    two = await connect(rooms[1].pk, tickets[1], user.pk)
    assert await refused(rooms[2].pk, f"ticket={tickets[2]}") == 4029

    # Reconnecting in a room where the user already has a socket replaces it (4012).
    ticket = (await database_sync_to_async(services.ticket_issue)(room=rooms[0], user=user))[0]
    newer = await connect(rooms[0].pk, ticket, user.pk)
    assert await one.closed() == 4012

    # Once a socket is gone, the user may open another.
    await two.disconnect()
    ticket = (await database_sync_to_async(services.ticket_issue)(room=rooms[2], user=user))[0]
    third = await connect(rooms[2].pk, ticket, user.pk)
    await newer.disconnect()
    await third.disconnect()


async def test_a_resume_token_is_bound_to_its_user_room_and_session():
    from rest_framework.authtoken.models import Token

    room, a, b = await two_members()
    other_room = await a_room()
    await database_sync_to_async(services.member_join)(room=other_room, user=a_user_of(a))
    token = a.welcome["session"]["resume_token"]
    await a.disconnect()
    await b.event_of("participant.updated")

    # Another room: refused.
    assert await refused(other_room.pk, f"resume={token}") == 4001
    # Another user's Token header beside it: refused.
    b_token = await database_sync_to_async(lambda: Token.objects.create(user_id=b.user_id).key)()
    header = [(b"authorization", f"Token {b_token}".encode())]
    assert await refused(room.pk, f"resume={token}", header) == 4001
    # A guessed token: refused.
    assert await refused(room.pk, "resume=" + "A" * 43) == 4001
    # Its own room and user: resumed.
    comm = communicator(room.pk, f"resume={token}")
    assert (await comm.connect())[0]
    assert json.loads((await comm.receive_output(3))["text"])["resumed"] is True
    # After leaving and joining again the member has a new session: the old token is dead.
    await comm.send_to(text_data=json.dumps({"type": "leave"}))
    await b.event_of("participant.left")
    result = await database_sync_to_async(services.member_join)(room=room, user=a_user_of(a))
    newer = await connect(room.pk, result.ticket, a.user_id)
    assert newer.welcome["session"]["resume_token"] != token
    assert await refused(room.pk, f"resume={token}") == 4001
    await newer.disconnect()
    await comm.disconnect()
    await b.disconnect()


async def test_a_socket_opened_while_redis_is_down_closes_4503_not_a_server_error(monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from rooms.ws import auth

    room = await a_room()
    _, ticket = await a_member(room)

    def down(*args, **kwargs):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(auth.presence, "store", down)  # resume tokens live in Redis
    assert await refused(room.pk, "resume=abc") == 4503
    monkeypatch.setattr(auth.services, "ticket_redeem", down)  # used tickets too
    assert await refused(room.pk, f"ticket={ticket}") == 4503
    monkeypatch.undo()  # before the fixtures' teardown, which clears presence


async def test_a_socket_opened_while_the_database_is_down_closes_4503(monkeypatch):
    from django.db import OperationalError

    room = await a_room()
    user, ticket = await a_member(room)

    def down(**kwargs):
        raise OperationalError("server has gone away")

    monkeypatch.setattr(services, "participant_connect", down)
    assert await refused(room.pk, f"ticket={ticket}") == 4503
    monkeypatch.undo()
    # Nothing was left half-done: with the database back, a fresh ticket gets in.
    ticket = (await database_sync_to_async(services.ticket_issue)(room=room, user=user))[0]
    client = await connect(room.pk, ticket, user.pk)
    await client.disconnect()
