"""Property-based fuzzing of the room socket (hypothesis), in process.

Bad input of any shape gets a documented answer, never a crash of the consumer, and the
rest of the room does not notice: after every example another member still hears a
third one's chat and voice.

- text frames: arbitrary text, arbitrary JSON, JSON objects of every known `type` with
  random or wrong-typed fields, text with lone surrogates (`"\ud800"`, which JSON
  allows and UTF-8 cannot carry) in chat, whisper and anywhere else; with the
  in-memory channel layer and, marked `redis`, the Redis one (tests/rooms/conftest.py);
- a ban reason of any text over REST, with both layers;
- binary frames: 0 to ~5000 arbitrary bytes;
- the handshake: arbitrary paths under /ws/, query strings and header values.

The consumer's and the relay's clocks (their `time` module) are replaced by one the test
moves forward a second per example: the rate limits and the abuse budget keep working,
but on a schedule the test knows, so every answer can be checked exactly and a run is
reproducible. The abuse budget still runs out now and then (4008); the fuzzer then
reconnects and carries on.

Every text frame a socket receives is checked to be UTF-8 encodable (tests/rooms/
realtime.py): a real server must encode it to send it, a communicator would not.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from rooms import services
from rooms.models import Room
from rooms.ws.frames import (
    ABUSE_BUDGET,
    ABUSE_REFILL,
    COST_BAD_FRAME,
    COST_TEXT_OVER_RATE,
    MAX_TEXT_FRAME_BYTES,
    MAX_VOICE_BYTES,
    TEXT_BURST,
    TEXT_RATE,
)
from tests.factories import token_for
from tests.rooms.realtime import Client, a_member, a_room, communicator, connect

pytestmark = [pytest.mark.django_db(transaction=True)]

# Reproducible: tests/conftest.py loads the derandomized "ci" profile.
FUZZ = settings(
    max_examples=150,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Every `error` code a socket may answer with (docs/protocol.md, section 8).
ERROR_CODES = {
    "invalid",
    "malformed_json",
    "invalid_message",
    "unknown_type",
    "text_too_long",
    "frame_too_large",
    "empty_frame",
    "invalid_target",
    "not_in_room",
    "rate_limited",
    "forbidden",
    "not_found",
    "not_a_member",
    "invalid_seat",
    "seat_taken",
    "seat_locked",
    "no_free_seat",
    "not_seated",
    "already_seated",
    "seat_request_pending",
    "no_seat_request",
    "service_unavailable",
}
# Events a socket may receive (docs/protocol.md, section 7).
EVENT_TYPES = {
    "welcome",
    "participant.joined",
    "participant.left",
    "participant.updated",
    "seat.updated",
    "room.updated",
    "room.closed",
    "chat",
    "whisper",
    "error",
    "pong",
    "seat.requested",
    "seat.request.resolved",
    "seat.request.cancelled",
}
# Close codes a socket of a plain member may get while fuzzing: its own `leave` (1000)
# and persistent abuse (4008).
FUZZER_CLOSES = {1000, 4008}
# Close codes that refuse a handshake (api-v1, "Close codes").
REFUSALS = {4001, 4003, 4004, 4009, 4011}

FRAME_TYPES = [
    "ping",
    "leave",
    "chat",
    "whisper",
    "mute.self",
    "voice.target",
    "seat.take",
    "seat.leave",
    "seat.lock",
    "seat.mute",
    "moderate",
    "seat.request",
    "seat.request.cancel",
    "seat.request.accept",
    "seat.request.refuse",
]


class Clock:
    """Stands in for the `time` module of rooms.ws.guards (text rate, abuse budget) and
    realtime.relay (voice rate)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    import realtime.relay
    import rooms.ws.guards

    fake = Clock()
    monkeypatch.setattr(rooms.ws.guards, "time", fake)
    monkeypatch.setattr(realtime.relay, "time", fake)
    return fake


# -- strategies ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A member's user id, known only once the room exists."""

    who: str  # "fuzzer", "listener", "speaker", "owner"


# Any code point, lone surrogates (category Cs) included: st.characters() leaves them out.
any_char = st.characters() | st.characters(categories=["Cs"])
surrogate_texts = st.text(alphabet=any_char, min_size=1, max_size=40) | st.sampled_from(
    ["\ud800", "hi \udfff", "\udc00\ud800", "\ud83d\ude00"]  # the last: a pair, one character
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=30)
    | surrogate_texts
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
user_ids = (
    st.sampled_from([Ref("fuzzer"), Ref("listener"), Ref("speaker"), Ref("owner")])
    | st.integers(min_value=-5, max_value=2**33)
    | json_values
)
indexes = st.integers(min_value=-2, max_value=4) | st.sampled_from([2**32, 2**64]) | json_values
texts = (
    st.text(max_size=40)
    | surrogate_texts
    | st.text(min_size=495, max_size=505)
    | st.sampled_from(["", "   ", "\x00", "中" * 3000])
    | json_values
)
typed_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(FRAME_TYPES) | st.text(max_size=12)},
    optional={
        "text": texts,
        "to": user_ids,
        "user_id": user_ids,
        "index": indexes,
        "muted": st.booleans() | json_values,
        "locked": st.booleans() | json_values,
        "action": st.sampled_from(
            ["mute", "unmute", "kick", "ban", "seat.remove", "mute_all", "unmute_all"]
        )
        | json_values,
        "reason": st.text(max_size=300) | surrogate_texts | json_values,
    },
)

# Frames of the right shape, so that the services' rules answer, not the parser.
a_user = st.sampled_from([Ref("fuzzer"), Ref("listener"), Ref("speaker"), Ref("owner")]) | (
    st.integers(min_value=0, max_value=2**32 - 1)
)
a_seat = st.none() | st.integers(min_value=0, max_value=3)
chat_text = st.text(min_size=1, max_size=510) | surrogate_texts
well_formed = st.one_of(
    st.sampled_from(["ping", "seat.leave", "seat.request.cancel", "leave"]).map(
        lambda kind: {"type": kind}
    ),
    st.fixed_dictionaries({"type": st.just("chat"), "text": chat_text}),
    st.fixed_dictionaries({"type": st.just("whisper"), "to": a_user, "text": chat_text}),
    st.fixed_dictionaries({"type": st.just("mute.self"), "muted": st.booleans()}),
    st.fixed_dictionaries({"type": st.just("voice.target"), "to": st.none() | a_user}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["seat.take", "seat.request"])}, optional={"index": a_seat}
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["seat.lock", "seat.mute"]),
            "index": a_seat,
            "locked": st.booleans(),
            "muted": st.booleans(),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("moderate"),
            "action": st.sampled_from(
                ["mute", "unmute", "kick", "ban", "seat.remove", "mute_all", "unmute_all"]
            ),
            "user_id": a_user,
        },
        optional={"reason": st.text(max_size=300) | surrogate_texts},
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["seat.request.accept", "seat.request.refuse"]),
            "user_id": a_user,
        },
        optional={"index": a_seat},
    ),
)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


text_frames = st.one_of(
    st.text(max_size=60),  # mostly not JSON
    st.text(min_size=8150, max_size=8250),  # around the frame limit
    json_values.map(json.dumps),
    typed_frames,  # dumped once the ids are known
    typed_frames,
    well_formed,
    well_formed,
    # Deep nesting: json.loads raises RecursionError, not ValueError, past ~1000 levels.
    (st.integers(min_value=1, max_value=4000) | st.sampled_from([1000, 1001, 4000])).map(_nested),
    st.sampled_from(["", " ", "{", "null", '{"type": null}', '{"type": 1}', "[]", "\ud7ff"]),
    # Raw text a server could not have decoded from UTF-8 (only in process).
    st.text(alphabet=any_char, max_size=20),
    st.sampled_from(['"\\ud800"', '{"type":"chat","text":"\\udbff"}', '{"\\udc00":1}']),
)


# -- the room --------------------------------------------------------------------------


class FuzzRoom:
    """A room with a plain member who fuzzes, and two others who must not notice.

    The speaker sits on seat 0 (the room has seats, so seats matter), the listener
    listens; the fuzzer is a plain member and so cannot mute or kick them.
    """

    def __init__(self, room: Room, owner_id: int) -> None:
        self.room = room
        self.ids = {"owner": owner_id}
        self.fuzzer: Client | None = None
        self.listener: Client | None = None
        self.speaker: Client | None = None
        self.speaker_seq = 0
        self.rounds = 0
        self.limits: Limits | None = None

    @classmethod
    async def create(cls, *, seat_count: int) -> FuzzRoom:
        room = await a_room(seat_count=seat_count)
        self = cls(room, room.owner_id)
        for name in ("speaker", "listener", "fuzzer"):
            user, ticket = await a_member(room)
            self.ids[name] = user.pk
            if name == "speaker" and seat_count:
                await database_sync_to_async(services.seat_take)(room=room, user=user, index=0)
            setattr(self, name, await connect(room.pk, ticket, user.pk))
        return self

    def resolve(self, value):
        if isinstance(value, Ref):
            return self.ids[value.who]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    async def reconnect_fuzzer(self, clock: Clock) -> None:
        """After a documented close: join again (a `leave` ended the membership)."""
        if not self.fuzzer.comm.future.done():
            await self.fuzzer.comm.disconnect()
        user_id = self.ids["fuzzer"]

        @database_sync_to_async
        def ticket() -> str:
            from accounts.models import User

            return services.member_join(room=self.room, user=User.objects.get(pk=user_id)).ticket

        self.fuzzer = await connect(self.room.pk, await ticket(), user_id)
        self.limits = Limits(clock.now)  # a new socket, new buckets

    async def heal(self, clock: Clock) -> None:
        """After a failed example (while hypothesis shrinks), start from working sockets."""
        if any(c.comm.future.done() for c in (self.listener, self.speaker)):
            await self.close()
            fresh = await FuzzRoom.create(seat_count=self.room.seat_count)
            self.__dict__.update(fresh.__dict__)
            self.limits = Limits(clock.now)
        elif self.fuzzer.comm.future.done():
            await self.reconnect_fuzzer(clock)

    async def assert_room_still_works(self, clock: Clock) -> None:
        """The listener hears the speaker's chat and voice."""
        self.rounds += 1
        clock.now += 1.0
        text = f"still here {self.rounds}"
        await self.speaker.send(type="chat", text=text)
        event = await self.listener.event_where(
            "chat", lambda e: e["from"] == self.ids["speaker"] and e["text"] == text
        )
        assert event["text"] == text
        payload = b"voice-%d" % self.rounds
        await self.speaker.voice(payload)
        frame = await self.listener.frame()
        kind, sender, seq = struct.unpack(">BII", frame[:9])
        assert (kind, sender, frame[9:]) == (1, self.ids["speaker"], payload), frame
        assert seq == self.speaker_seq + 1 or self.speaker_seq == 0
        self.speaker_seq = seq
        # Anything else the listener and the speaker got in between is well-formed.
        for client in (self.listener, self.speaker):
            await drain(client)

    async def close(self) -> None:
        for client in (self.fuzzer, self.listener, self.speaker):
            if not client.comm.future.done():
                await client.comm.disconnect()


async def drain(client: Client) -> list[dict]:
    """Every text event waiting for `client`, each checked; binary frames are skipped."""
    events = []
    while not await client.comm.receive_nothing(0.01):
        out = await client.comm.receive_output(1)
        assert out["type"] == "websocket.send", out
        if out.get("text") is not None:
            out["text"].encode("utf-8")  # as a real server must, to send it
            events.append(check_event(json.loads(out["text"])))
    return events


def check_event(event: dict) -> dict:
    assert isinstance(event, dict) and event.get("type") in EVENT_TYPES, event
    if event["type"] == "error":
        assert event["code"] in ERROR_CODES, event
        assert isinstance(event["detail"], str) and event["detail"], event
    return event


def not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def holds_lone_surrogate(data) -> bool:
    """A string anywhere in a parsed JSON document (keys too) that UTF-8 cannot carry."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and not_utf8(item):
            return True
        if isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def expected_refusal(raw: str) -> str | None:
    """The error code the frame must get from its shape alone, if any (in the order of
    docs/protocol.md, section 8: size, text, JSON, type)."""
    if len(raw) > MAX_TEXT_FRAME_BYTES:
        return "frame_too_large"
    if not_utf8(raw):
        return "invalid"
    if len(raw.encode("utf-8")) > MAX_TEXT_FRAME_BYTES:
        return "frame_too_large"
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return "malformed_json"
    if holds_lone_surrogate(data):
        return "invalid"
    if not isinstance(data, dict):
        return "malformed_json"
    if not isinstance(data.get("type"), str):
        return "invalid_message"
    if data["type"] not in FRAME_TYPES:
        return "unknown_type"
    return None


async def send_text(comm: WebsocketCommunicator, raw: str) -> None:
    # send_to() refuses an empty string; a client can send an empty text frame.
    await comm.send_input({"type": "websocket.receive", "text": raw})


async def answers_until(client: Client, markers: int) -> tuple[list[dict], int | None]:
    """The fuzzer's events up to the `markers`-th `pong` or `rate_limited` error, or up to
    its close (then with the code).

    A socket's frames are handled one at a time in the order sent, so every `error`
    before a ping's answer answers the frames sent before that ping.
    """
    events: list[dict] = []
    while True:
        out = await client.comm.receive_output(3)  # re-raises the consumer's exception
        if out["type"] == "websocket.close":
            return events, out.get("code", 1000)
        assert out["type"] == "websocket.send", out
        if out.get("text") is None:
            continue  # voice from the others
        out["text"].encode("utf-8")  # as a real server must, to send it
        event = check_event(json.loads(out["text"]))
        events.append(event)
        if event["type"] == "pong" or event.get("code") == "rate_limited":
            markers -= 1
            if markers == 0:
                return events, None


class TokenBucket:
    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate, self.capacity, self.tokens, self.last = rate, capacity, capacity, now

    def take(self, now: float, cost: float = 1.0, *, dry: bool = False) -> bool:
        tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        if dry:
            return tokens >= cost
        self.last = now
        self.tokens = tokens - cost if tokens >= cost else tokens
        return tokens >= cost


class Limits:
    """A socket's text rate and abuse budget, as docs/protocol.md section 10 states them."""

    def __init__(self, now: float) -> None:
        self.text = TokenBucket(TEXT_RATE, TEXT_BURST, now)
        self.abuse = TokenBucket(ABUSE_REFILL, ABUSE_BUDGET, now)


# Refusals that cost abuse points (docs/protocol.md, section 8). A plain member's
# `not_in_room` comes from a whisper or voice.target (its kick is `forbidden` first).
COSTLY = {
    "invalid",
    "malformed_json",
    "invalid_message",
    "unknown_type",
    "text_too_long",
    "frame_too_large",
    "invalid_target",
    "not_in_room",
}


@pytest.fixture
async def fuzz_room(clock, channel_layer):
    room = await FuzzRoom.create(seat_count=2)
    room.limits = Limits(clock.now)
    yield room
    await room.close()


@FUZZ
@given(
    pause=st.sampled_from([0.0, 0.0, 0.3, 1.0, 30.0]),
    frames=st.lists(text_frames, min_size=1, max_size=8),
    repeat=st.sampled_from([1, 1, 1, 5]),  # 5: over the text rate at once
)
@example(pause=1.0, frames=[{"type": "chat", "text": "\ud800"}], repeat=1)
@example(
    pause=1.0, frames=[{"type": "whisper", "to": Ref("listener"), "text": "a\udfff"}], repeat=1
)
@example(pause=1.0, frames=[{"type": "chat", "text": "\ud83d\ude00"}], repeat=1)
async def test_text_frames_get_an_answer_or_an_error_and_the_room_keeps_working(
    fuzz_room, clock, pause, frames, repeat
):
    """Each frame is followed by a ping; the answers in between are the frame's."""
    room = fuzz_room
    await room.heal(clock)
    clock.now += pause
    now = clock.now
    for frame in frames * repeat:
        raw = json.dumps(room.resolve(frame)) if isinstance(frame, dict) else frame
        expected = expected_refusal(raw)
        kind = json.loads(raw)["type"] if expected is None else None
        limits = room.limits
        limited = not limits.text.take(now)
        ping_limited = not limits.text.take(now)
        await send_text(room.fuzzer.comm, raw)
        await room.fuzzer.send(type="ping")
        events, closed = await answers_until(room.fuzzer, 2 if limited or kind == "ping" else 1)
        codes = [e["code"] for e in events if e["type"] == "error"]
        event(f"closed {closed}" if closed else f"error {codes[0]}" if codes else f"{kind} ok")

        # The frame's own answer.
        if limited:
            expected = "rate_limited"
            if not limits.abuse.take(now, COST_TEXT_OVER_RATE):
                assert (closed, codes) == (4008, []), (raw[:100], events)
                await room.reconnect_fuzzer(clock)
                break
            assert codes[:1] == ["rate_limited"], (raw[:100], events)
            own, codes = codes[:1], codes[1:]
        else:
            own = [c for c in codes if c != "rate_limited"]
            codes = [c for c in codes if c == "rate_limited"]
            assert len(own) <= 1, (raw[:100], events)
        if own and own[0] in COSTLY:
            assert limits.abuse.take(now, COST_BAD_FRAME), ("paid beyond the budget", events)
        if expected is not None and not own:
            # Refused without an error only when the refusal overdrew the budget.
            assert closed == 4008 and not limits.abuse.take(now, COST_BAD_FRAME, dry=True)
            await room.reconnect_fuzzer(clock)
            break
        if expected is not None:
            assert own == [expected], (raw[:100], events)
        elif own:
            assert own[0] not in {"malformed_json", "unknown_type", "rate_limited"}, events

        # The ping's answer.
        if closed == 4008:
            if not own and kind is not None:
                # A valid-looking frame may be refused (overdrawing) or not.
                assert not limits.abuse.take(now, COST_BAD_FRAME, dry=True), events
            else:
                assert ping_limited and not limits.abuse.take(now, COST_TEXT_OVER_RATE)
            await room.reconnect_fuzzer(clock)
            break
        if closed == 1000:
            # A clean leave; the close may overtake the ping (a closing socket handles
            # no more frames).
            assert kind == "leave" and not own and not limited, (raw[:100], events)
            await room.reconnect_fuzzer(clock)
            break
        assert closed is None, (raw[:100], closed, events)
        if ping_limited:
            assert codes == ["rate_limited"], events
            assert limits.abuse.take(now, COST_TEXT_OVER_RATE), events
        else:
            assert codes == [] and events[-1]["type"] == "pong", events
        if kind == "leave" and not own and not limited:
            # A clean leave: the server closes with 1000 once the service is done.
            assert await room.fuzzer.closed(3) == 1000
            await room.reconnect_fuzzer(clock)
            break
    await room.assert_room_still_works(clock)


# -- a ban reason over REST ------------------------------------------------------------

reasons = st.text(max_size=210) | surrogate_texts | st.text(alphabet=any_char, max_size=210)


@pytest.fixture
async def ban_room(clock, channel_layer):
    room = await FuzzRoom.create(seat_count=0)
    room.limits = Limits(clock.now)
    yield room
    await room.close()


@database_sync_to_async
def rest_ban(room: FuzzRoom, reason: str) -> tuple[int, dict | None]:
    from accounts.models import User

    client = APIClient()
    owner = User.objects.get(pk=room.ids["owner"])
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(owner)}")
    url = f"/api/rooms/{room.room.pk}/members/{room.ids['fuzzer']}/ban"
    # json.dumps writes a lone surrogate as its escape, as a client's encoder does.
    response = client.post(
        url, data=json.dumps({"reason": reason}), content_type="application/json"
    )
    return response.status_code, response.json() if response.content else None


@database_sync_to_async
def unban(room: FuzzRoom) -> None:
    services.member_unban(room=room.room, actor=room.room.owner, user_id=room.ids["fuzzer"])


@settings(FUZZ, max_examples=60)  # each example is a REST request and maybe a reconnect
@given(reason=reasons)
@example(reason="\ud800")
@example(reason="spam \udfff")
async def test_a_ban_reason_over_rest_is_stored_or_refused_and_the_room_keeps_working(
    ban_room, clock, reason
):
    """A moderator's ban reason is refused with 400 `invalid` when UTF-8 cannot carry it
    (nobody is banned, every socket lives on), else the ban closes its target with 4003."""
    room = ban_room
    await room.heal(clock)
    status, body = await rest_ban(room, reason)
    event("banned" if status == 204 else f"{status} {body and body.get('code')}")
    if holds_lone_surrogate(json.loads(json.dumps(reason))):
        assert (status, body["code"]) == (400, "invalid"), (reason, body)
    else:
        # Otherwise only the serializer's rules (200 characters, no NUL) may refuse it.
        assert status == 204 or (status, body["code"]) == (400, "invalid"), (reason, body)
    if status == 204:
        assert await room.fuzzer.closed(3) == 4003
        await unban(room)
        await room.reconnect_fuzzer(clock)
    else:
        await room.fuzzer.send(type="ping")
        events, closed = await answers_until(room.fuzzer, 1)
        assert closed is None and events[-1]["type"] == "pong", events
    await room.assert_room_still_works(clock)


# -- binary frames ---------------------------------------------------------------------

payloads = st.one_of(
    st.binary(max_size=5000),
    st.integers(min_value=MAX_VOICE_BYTES - 2, max_value=MAX_VOICE_BYTES + 2).map(
        lambda n: bytes([n % 256]) * n
    ),
    st.just(b""),
)


@pytest.fixture
async def voice_room(clock):
    room = await FuzzRoom.create(seat_count=0)  # everybody may speak
    yield room
    await room.close()


@FUZZ
@given(frames=st.lists(payloads, min_size=1, max_size=4))
async def test_binary_frames_are_relayed_with_the_header_or_refused(voice_room, clock, frames):
    room = voice_room
    await room.heal(clock)
    clock.now += 1.0
    for payload in frames:
        # send_to() refuses an empty frame; a client can send one.
        await room.fuzzer.comm.send_input({"type": "websocket.receive", "bytes": payload})
        if 1 <= len(payload) <= MAX_VOICE_BYTES:
            frame = await room.listener.frame()
            kind, sender, _ = struct.unpack(">BII", frame[:9])
            assert (kind, sender) == (1, room.ids["fuzzer"])
            assert frame[9:] == payload
            # Never echoed: the fuzzer's next output is the answer to its ping.
            await room.fuzzer.send(type="ping")
            events, closed = await answers_until(room.fuzzer, 1)
            assert closed is None and not [e for e in events if e["type"] == "error"]
        else:
            await room.fuzzer.send(type="ping")
            events, closed = await answers_until(room.fuzzer, 1)
            if closed is not None:
                assert closed == 4008
                await room.reconnect_fuzzer(clock)
                break
            codes = [e["code"] for e in events if e["type"] == "error"]
            assert codes == ["frame_too_large" if payload else "empty_frame"], codes
    # Refused frames were not relayed: the listener's next frame is the speaker's.
    await room.assert_room_still_works(clock)


# -- the handshake ---------------------------------------------------------------------


@dataclass(frozen=True)
class Valid:
    what: str  # "ticket" | "token"


query_keys = st.sampled_from(["ticket", "resume", "junk", "ticket[]", "", "TICKET"]) | st.text(
    alphabet="abcdefghij", max_size=5
)
query_values = st.one_of(
    st.just(Valid("ticket")),
    st.text(max_size=40).map(quote),
    st.text(max_size=20),  # unquoted: '&', '=', '#', spaces, non-ASCII
    st.sampled_from(["%ff%fe", "%C3%28", "%", "%%", "%zz", "a%00b", "x" * 3000]),
)
query_strings = st.one_of(
    st.lists(st.tuples(query_keys, query_values), max_size=5),
    st.binary(max_size=100),  # raw bytes, as a server may pass them on
)
auth_values = st.one_of(
    st.just(Valid("token")),
    st.binary(max_size=80),
    st.text(max_size=40).map(lambda s: ("Token " + s).encode()),
    st.sampled_from([b"Token ", b"Token  ", b"Bearer x", b"Token \xff\xfe", b"token"]),
)
origin_values = st.one_of(
    st.sampled_from(
        [
            b"http://testserver",
            b"http://evil.example",
            b"http://[",
            b"http://[::1",
            b"http://testserver:99999",
            b"http://testserver:abc",
            b"null",
        ]
    ),
    st.text(max_size=30).map(lambda s: ("http://" + s).encode()),
    st.binary(max_size=40),
)
headers_lists = st.lists(
    st.one_of(
        st.tuples(st.just(b"authorization"), auth_values),
        st.tuples(st.just(b"origin"), origin_values),
        st.tuples(
            st.sampled_from([b"cookie", b"sec-websocket-protocol", b"host", b"x-junk"]),
            st.binary(max_size=80) | st.just(b"sessionid=x; csrftoken=y"),
        ),
    ),
    max_size=4,
)
paths = st.one_of(
    st.just("ROOM"),
    st.integers(min_value=0, max_value=2**70).map(lambda n: f"/ws/rooms/{n}/"),
    st.text(max_size=30).map(lambda s: "/ws/" + s),
    st.sampled_from(["/ws/rooms/ROOM", "/ws/rooms/-1/", "/ws/rooms/0x1/", "/ws/rooms//"]),
)
ALLOWED_ORIGINS = {b"http://testserver", b"http://localhost", b"http://127.0.0.1"}


@pytest.mark.parametrize("origin", [b"http://[", b"http://[::1", b"https://app.example:99999"])
async def test_an_origin_that_is_not_a_url_is_refused_not_a_server_error(settings, origin):
    """Found by the handshake fuzzer: Channels' validator let urlparse's ValueError out."""
    from rooms.ws.auth import OriginValidator

    settings.VOICEROOM_ALLOWED_ORIGINS = ["https://app.example"]  # ports are compared
    reached = []

    async def app(scope, receive, send):
        reached.append(scope)

    comm = WebsocketCommunicator(OriginValidator(app), "/ws/rooms/1/", [(b"origin", origin)])
    assert await comm.connect(timeout=3) == (False, 1000)  # HTTP 403 on the upgrade
    assert reached == []


async def test_frames_queued_behind_a_4008_are_not_handled():
    """Found by the text fuzzer: a flooder's last frames were still handled after its
    4008 was decided, so its chat reached the room and a pong followed the close."""
    room = await a_room()
    (a_user, a_ticket), (b_user, b_ticket) = await a_member(room), await a_member(room)
    a = await connect(room.pk, a_ticket, a_user.pk)
    b = await connect(room.pk, b_ticket, b_user.pk)
    await a.event_of("participant.joined")
    for _ in range(21):  # 20 errors use up the budget of 500; the 21st closes
        await send_text(a.comm, "not json")
    await a.send(type="chat", text="after the abuse")
    await a.send(type="ping")
    assert [(await a.event())["code"] for _ in range(20)] == ["malformed_json"] * 20
    assert (await a.comm.receive_output(2))["code"] == 4008
    assert await a.comm.receive_nothing(0.3)  # no pong after the close
    await b.nothing(0.3)  # and no chat from a socket being closed for abuse
    await a.disconnect()
    await b.disconnect()


@pytest.fixture
async def handshake_room():
    room = await a_room()
    user, _ = await a_member(room)
    token = await database_sync_to_async(token_for)(user)
    return room, user, token


@FUZZ
@given(
    path=paths,
    query=query_strings,
    headers=headers_lists,
)
@example(path="ROOM", query=[], headers=[(b"origin", b"http://[")])  # urlparse raises
async def test_any_handshake_is_accepted_then_closed_with_a_documented_code(
    handshake_room, path, query, headers
):
    room, user, token = handshake_room
    path = path.replace("ROOM", str(room.pk))
    gave_ticket = gave_token = False
    if isinstance(query, bytes):
        query_string = query
    else:
        parts = []
        for key, value in query:
            if isinstance(value, Valid):
                value = quote(await _ticket(room, user))
                gave_ticket = True
            parts.append(f"{key}={value}")
        query_string = "&".join(parts).encode("utf-8")
    raw_headers = []
    for name, value in headers:
        if isinstance(value, Valid):
            value = f"Token {token}".encode()
            gave_token = True
        raw_headers.append((name, value))

    comm = communicator(0, headers=raw_headers)
    comm.scope["path"] = path
    comm.scope["query_string"] = query_string
    accepted, _ = await comm.connect(timeout=3)
    origins = [v for n, v in raw_headers if n == b"origin"]
    if not accepted:
        # Refused on the upgrade (HTTP 403): only for a browser Origin that is not allowed.
        assert origins and origins[-1] not in ALLOWED_ORIGINS, (path, raw_headers)
        return
    out = await comm.receive_output(3)
    if out["type"] == "websocket.close":
        assert out["code"] in REFUSALS, out
        await comm.disconnect()
        return
    welcome = json.loads(out["text"])
    assert welcome["type"] == "welcome", welcome
    # Only a real credential, on the room's own path, opens a socket.
    assert path == f"/ws/rooms/{room.pk}/" and (gave_ticket or gave_token), (path, query)
    assert welcome["you"]["user_id"] == user.pk
    await comm.disconnect()


@database_sync_to_async
def _ticket(room, user) -> str:
    return services.ticket_issue(room=room, user=user)[0]


async def test_valid_credentials_among_junk_still_open_the_socket(handshake_room):
    """The handshake fuzzer's oracle is not vacuous: a good ticket or token connects."""
    room, user, token = handshake_room
    ticket = await _ticket(room, user)
    for query, headers in [
        (f"junk=1&ticket={quote(ticket)}&x=%ff", [(b"cookie", b"\xff\x00")]),
        ("a=b", [(b"authorization", f"Token {token}".encode()), (b"origin", b"http://testserver")]),
    ]:
        comm = communicator(room.pk, query, headers)
        assert (await comm.connect())[0]
        assert json.loads((await comm.receive_output(3))["text"])["type"] == "welcome"
        await comm.disconnect()
