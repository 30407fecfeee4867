"""The room socket. Thin: it validates frames and calls services, the relay and events.

Voice (binary frames) never goes through Channels' dispatch: the socket reader hands
bytes straight to the relay, so a frame costs no handler lookup, no
`aclose_old_connections` thread hop, no task and no channel-layer message. Everything
else takes the ordinary path.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from realtime import runtime
from realtime.presence import NODE_ID
from realtime.relay import Endpoint, Relay, stats
from rooms import events, policy, services
from rooms.contract import CloseCode
from rooms.models import Room
from rooms.ws.auth import refuse
from rooms.ws.frames import (
    ABUSE_BUDGET,
    ABUSE_REFILL,
    COST_BAD_FRAME,
    COST_TEXT_OVER_RATE,
    TEXT_BURST,
    TEXT_RATE,
    Bucket,
    FrameError,
    dumps,
    parse_text_frame,
)
from voiceroom.errors import ApplicationError

logger = logging.getLogger(__name__)


def _db(fn):
    return database_sync_to_async(fn)


class RoomConsumer(AsyncWebsocketConsumer):
    room_id: int
    user_id: int | None = None
    endpoint: Endpoint | None = None
    session = None
    closing = False
    left_cleanly = False
    leaving_by_frame = False
    relay: Relay

    # -- the fast path ----------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        """Channels' consumer loop, leaner: one task reads the socket, one the channel layer.

        AsyncConsumer multiplexes both with asyncio.wait() and a new task per message;
        for 1,000 voice frames a second that bookkeeping costs more than relaying them.
        Here the socket reader hands binary frames straight to the relay, and every other
        message goes through `dispatch` one at a time (a lock keeps Channels' guarantee
        that handlers never overlap, and keeps a client's frames in the order sent).
        """
        self.scope = scope
        self.relay = runtime.current().relay
        self.tap = runtime.current().tap
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        try:
            self.channel_name = await self.channel_layer.new_channel()
        except (RedisError, OSError):
            # The Redis layer subscribes the new channel at once; without Redis that
            # fails before the handshake, which servers turn into an HTTP 500.
            logger.warning("socket refused: the channel layer is down", exc_info=True)
            await refuse(receive, send, CloseCode.UNAVAILABLE)
            return
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.base_send = send
        self._serial = asyncio.Lock()
        layer_reader = asyncio.ensure_future(self._read_layer())
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    data = message.get("bytes")
                    if data is not None:
                        if self._serial.locked():  # a handler is busy: keep the order
                            async with self._serial:
                                await self._voice(data)
                        else:
                            await self._voice(data)
                        continue
                async with self._serial:
                    await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            layer_reader.cancel()
            try:
                await layer_reader
            except (asyncio.CancelledError, Exception):
                pass

    async def _read_layer(self) -> None:
        while True:
            message = await self.channel_receive()
            async with self._serial:
                try:
                    await self.dispatch(message)
                except StopConsumer:
                    return
                except OSError:
                    # The socket went away under an event (uvicorn's ClientDisconnected):
                    # nothing to tell it any more; its disconnect handler cleans up.
                    logger.debug("event for a closed socket dropped", exc_info=True)
                except Exception:
                    logger.exception(
                        "handling %s failed (room %s, user %s)",
                        message.get("type"),
                        getattr(self, "room_id", None),
                        self.user_id,
                    )

    async def _voice(self, data: bytes) -> None:
        ep = self.endpoint
        if ep is not None:
            error = self.relay.voice_in(ep, data)
            if error is not None:
                await self._refuse(error, "Voice frames must be 1-4096 bytes.")

    # -- lifecycle --------------------------------------------------------------------

    async def connect(self):
        self.room_id = int(self.scope["url_route"]["kwargs"]["room_id"])
        # Accept first, then refuse with a code every client can read.
        await self.accept()
        try:
            await self._enter()
        except (DatabaseError, RedisError):
            logger.warning("socket refused: a dependency is down", exc_info=True)
            if self.session is not None and self.endpoint is None:
                # Registered as connected but never served: leave the resume window open.
                try:
                    await _db(services.participant_disconnect)(
                        room_id=self.room_id,
                        user_id=self.user_id,
                        channel=self.channel_name,
                        seq=self.session.seq,
                    )
                except (DatabaseError, RedisError):
                    pass  # the reaper's reattach/timeouts settle it when Redis is back
            await self._close(CloseCode.UNAVAILABLE)

    async def _enter(self) -> None:
        auth = self.scope.get("voiceroom_auth")
        if auth is not None and auth.method == "unavailable":
            await self._close(CloseCode.UNAVAILABLE)
            return
        if auth is None or auth.user_id is None:
            # An unknown room is reported as such even to a bad credential.
            exists = await _db(Room.objects.filter(pk=self.room_id).exists)()
            code = CloseCode.AUTH_FAILED if exists else CloseCode.UNKNOWN_ROOM
            await self._close(code)
            return
        runtime.started()  # the relay's watches, the voice bus, housekeeping: once
        if self._over_socket_limit(auth.user_id):
            stats.refused_limit += 1
            await self._close(CloseCode.TOO_MANY_SOCKETS)
            return
        result = await _db(services.participant_connect)(
            room_id=self.room_id,
            user_id=auth.user_id,
            resume_session=auth.resume_session,
            resume_token=auth.resume_token,
            node=NODE_ID,
            channel=self.channel_name,
            credentials_epoch=auth.epoch,
        )
        if result.close_code is not None:
            await self._close(result.close_code)
            return
        self.user_id = auth.user_id
        self.session = result.session
        self.state = _SpeakState(result.welcome)
        now = time.monotonic()
        self.text_bucket = Bucket(TEXT_RATE, TEXT_BURST, now)
        self.abuse = Bucket(ABUSE_REFILL, ABUSE_BUDGET, now)
        await self.channel_layer.group_add(events.room_group(self.room_id), self.channel_name)
        await self.channel_layer.group_add(
            events.member_group(self.room_id, self.user_id), self.channel_name
        )
        # A sign-out (password change, deactivation) committed after participant_connect
        # checked the credentials may have missed this socket: its 4001 went to the member
        # group before the socket joined it. Check again now that any later one reaches it.
        if not await _db(services.participant_recheck)(
            room_id=self.room_id,
            user_id=self.user_id,
            session_id=self.session.session_id,
            epoch=result.credentials_epoch,
        ):
            self.left_cleanly = True  # the service ended the session
            await self._leave_groups()
            await self._close(CloseCode.AUTH_FAILED)
            return
        if result.replaced_live_socket:
            await events.amember_replace(self.room_id, self.user_id, self.channel_name)
        if result.welcome["room"].get("recording"):
            # The room records: this node records its speakers too (from the start's
            # wall time, so its tracks line up with the other nodes').
            control = await _db(services.recording_active)(room_id=self.room_id)
            if control is not None:
                self._apply_recording(control)
        await self.send(text_data=dumps(result.welcome))
        # Registered only after the welcome went out, so it is the first frame.
        self.endpoint = Endpoint(
            room_id=self.room_id,
            user_id=self.user_id,
            send=self.base_send,
            seq=self.session.seq,
            on_abuse=self._abused,
            channel=self.channel_name,
        )
        self.endpoint.can_speak = self.state.can_speak()
        self.relay.add(self.endpoint)

    def _over_socket_limit(self, user_id: int) -> bool:
        """VOICEROOM_MAX_SOCKETS_PER_USER on this node, over all rooms; a socket that will
        replace this user's socket in this room (a resume, a reconnect) does not count."""
        limit = settings.VOICEROOM_MAX_SOCKETS_PER_USER
        if not limit:
            return False
        relay = self.relay
        others = relay.sockets_of(user_id) - (relay.local(self.room_id, user_id) is not None)
        return others >= limit

    async def disconnect(self, code):
        ep = self.endpoint
        if ep is None:
            return
        self.relay.remove(ep)
        self.endpoint = None
        await self.channel_layer.group_discard(events.room_group(self.room_id), self.channel_name)
        await self.channel_layer.group_discard(
            events.member_group(self.room_id, self.user_id), self.channel_name
        )
        if not self.left_cleanly:
            await _db(services.participant_disconnect)(
                room_id=self.room_id, user_id=self.user_id, channel=self.channel_name, seq=ep.seq
            )

    async def _leave_groups(self) -> None:
        await self.channel_layer.group_discard(events.room_group(self.room_id), self.channel_name)
        await self.channel_layer.group_discard(
            events.member_group(self.room_id, self.user_id), self.channel_name
        )

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        # A plain int on the wire: daphne (autobahn) refuses an int subclass (CloseCode).
        if code is not None and not isinstance(code, bool):
            code = int(code)
        await super().close(code=code, reason=reason)

    async def _close(self, code: int) -> None:
        self.closing = True
        await self.close(code=code)

    # -- client text frames -----------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        # A socket being closed (4008, kicked, replaced...) has its last frames still
        # queued: they must not be handled. A flooder's chat would otherwise reach the
        # room after its 4008, and a `pong` would follow the close frame.
        if text_data is None or self.endpoint is None or self.closing:
            return
        now = time.monotonic()
        if not self.text_bucket.take(now):
            await self._refuse("rate_limited", "Too many messages; slow down.", COST_TEXT_OVER_RATE)
            return
        try:
            message = parse_text_frame(text_data)
            await self._handle(message.type, message.data)
        except FrameError as exc:
            await self._refuse(exc.code, exc.detail)
        except ApplicationError as exc:
            await self._send_json({"type": "error", "code": exc.code, "detail": exc.detail})
        except (DatabaseError, RedisError):
            # A dependency is down: refuse this frame, keep the socket (voice still flows).
            logger.warning("frame refused, a dependency is down", exc_info=True)
            await self._send_json(
                {
                    "type": "error",
                    "code": "service_unavailable",
                    "detail": "The server cannot do this right now; try again.",
                }
            )

    async def _handle(self, kind: str, data: dict) -> None:
        if kind == "ping":
            await self._send_json({"type": "pong", "ts": events._now()})
        elif kind == "chat":
            await events.achat(self.room_id, self.user_id, data["text"])
            self.tap.evidence.said(self.room_id, self.user_id, data["text"])
        elif kind == "whisper":
            await self._require_participant(data["to"])
            await events.awhisper(self.room_id, self.user_id, data["to"], data["text"])
        elif kind == "voice.target":
            if data["to"] is not None:
                await self._require_participant(data["to"])
            self.endpoint.target = data["to"]
        elif kind == "mute.self":
            participant = await _db(services.participant_self_mute)(
                room_id=self.room_id,
                user_id=self.user_id,
                session_id=self.session.session_id,
                muted=data["muted"],
            )
            if participant is not None:
                self._apply_participant(participant)
        elif kind == "leave":
            # Set before the service runs: its member.close may arrive before it returns.
            self.left_cleanly = self.leaving_by_frame = True
            try:
                await _db(services.member_leave)(room=await self._room(), user=await self._user())
            except BaseException:
                self.left_cleanly = self.leaving_by_frame = False  # still in the room
                raise
        elif kind == "seat.take":
            await _db(services.seat_take)(
                room=await self._room(), user=await self._user(), index=data["index"]
            )
        elif kind == "seat.leave":
            await _db(services.seat_leave)(room=await self._room(), user=await self._user())
        elif kind == "seat.lock":
            await _db(services.seat_lock)(
                room=await self._room(),
                actor=await self._user(),
                index=data["index"],
                locked=data["locked"],
            )
        elif kind == "seat.mute":
            await _db(services.seat_mute)(
                room=await self._room(),
                actor=await self._user(),
                index=data["index"],
                muted=data["muted"],
            )
        elif kind == "seat.request":
            await _db(services.seat_request_create)(
                room=await self._room(), user=await self._user(), index=data["index"]
            )
        elif kind == "seat.request.cancel":
            await _db(services.seat_request_cancel)(
                room=await self._room(), user=await self._user()
            )
        elif kind == "seat.request.accept":
            await _db(services.seat_request_accept)(
                room=await self._room(),
                actor=await self._user(),
                user_id=data["user_id"],
                index=data["index"],
            )
        elif kind == "seat.request.refuse":
            await _db(services.seat_request_refuse)(
                room=await self._room(), actor=await self._user(), user_id=data["user_id"]
            )
        elif kind == "moderate":
            await self._moderate(data)

    async def _moderate(self, data: dict) -> None:
        # frames.MODERATE_ACTIONS (validated before) are keys of services.MODERATION_ACTS.
        room, actor = await self._room(), await self._user()
        await _db(services.moderate)(
            room=room,
            actor=actor,
            act=data["action"],
            user_id=data.get("user_id"),
            reason=data.get("reason", ""),
        )

    async def _require_participant(self, user_id: int) -> None:
        if user_id == self.user_id:
            raise FrameError("invalid_target", "You cannot target yourself.")
        if self.relay.local(self.room_id, user_id) is None:
            from realtime import presence

            session = await _db(presence.store().get)(self.room_id, user_id)
            if session is None:
                raise FrameError("not_in_room", "That user is not in this room.")

    async def _room(self) -> Room:
        return await _db(Room.objects.get)(pk=self.room_id)

    async def _user(self):
        from accounts.models import User

        return await _db(User.objects.get)(pk=self.user_id)

    async def _refuse(self, code: str, detail: str, cost: float = COST_BAD_FRAME) -> None:
        """Refuse one frame with an `error`; a client that keeps at it is closed with 4008."""
        if self.closing:
            return
        if not self.abuse.take(time.monotonic(), cost):
            self._abused()
            return
        await self._send_json({"type": "error", "code": code, "detail": detail})

    def _abused(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.endpoint is not None:
            self.relay.remove(self.endpoint)
            self.endpoint.can_speak = False
        asyncio.get_running_loop().create_task(self.close(code=CloseCode.POLICY))

    async def _send_json(self, message: dict) -> None:
        await self.send(text_data=dumps(message))

    # -- events from the channel layer (rooms/events.py) ---------------------------------

    async def _forward(self, event: dict) -> None:
        if not self.closing and self.endpoint is not None:
            await self.send(text_data=dumps(event))

    async def participant_joined(self, event):
        if event["participant"]["user_id"] == self.user_id:
            return  # the welcome already told this socket about itself
        await self._forward(event)

    async def participant_left(self, event):
        await self._forward(event)

    async def participant_updated(self, event):
        if event["participant"]["user_id"] == self.user_id:
            self._apply_participant(event["participant"])
        await self._forward(event)

    async def seat_updated(self, event):
        self.state.seat_update(event["seat"])
        self._refresh_speak()
        await self._forward(event)

    async def room_updated(self, event):
        self.state.seat_count = event["room"]["seat_count"]
        self._refresh_speak()
        await self._forward(event)

    async def room_closed(self, event):
        await self._forward(event)
        self.left_cleanly = True  # the service already ended every session
        await self._close(CloseCode.ROOM_CLOSED)

    async def chat(self, event):
        await self._forward(event)

    # Reports and recording (rooms/services/reports.py, recording.py): not for clients.

    async def evidence_request(self, event):
        """Another node (or this one) freezes a report's evidence: answer with what this
        node holds for the member, whichever member of the room it is about."""
        from realtime.evidence import pack

        snap = self.tap.evidence.snapshot(int(event["room_id"]), int(event["user_id"]))
        await self.channel_layer.send(
            event["reply"], {"type": "evidence.reply", "data": pack(snap)}
        )

    async def recording_control(self, event):
        self._apply_recording(event)

    def _apply_recording(self, control: dict) -> None:
        recordings = self.tap.recordings
        if control["active"]:
            recordings.start(
                self.room_id, control["recording_id"], control["started_at"], control["codec"]
            )
        elif recordings.recording_id(self.room_id) == control["recording_id"]:
            recordings.stop(self.room_id)

    # Seat requests: rooms/events.py sends these to moderators' and the requester's sockets.

    async def seat_requested(self, event):
        await self._forward(event)

    async def seat_request_resolved(self, event):
        await self._forward(event)

    async def seat_request_cancelled(self, event):
        await self._forward(event)

    async def whisper(self, event):
        await self._forward(event)

    async def member_close(self, event):
        self.left_cleanly = True  # the service already ended the session
        if self.closing:
            return  # closed already (e.g. by the credentials re-check): one close frame
        code = event["code"]
        if code == CloseCode.LEFT and self.leaving_by_frame:
            code = CloseCode.NORMAL
        await self._close(code)

    async def member_replace(self, event):
        if event["channel"] != self.channel_name:
            self.left_cleanly = True  # the session lives on in the newer socket
            await self._close(CloseCode.REPLACED)

    def _apply_participant(self, participant: dict) -> None:
        self.state.participant_update(participant)
        self._refresh_speak()

    def _refresh_speak(self) -> None:
        if self.endpoint is not None:
            self.endpoint.can_speak = self.state.can_speak()


class _SpeakState:
    """What decides whether this socket's frames are relayed; kept current by events."""

    def __init__(self, welcome: dict) -> None:
        you = welcome["you"]
        self.seat_count = welcome["room"]["seat_count"]
        self.muted = you["muted"]
        self.self_muted = you["self_muted"]
        self.seat = you["seat"]
        self.seat_muted = {s["index"]: s["muted"] for s in welcome["seats"]}

    def participant_update(self, participant: dict) -> None:
        self.muted = participant["muted"]
        self.self_muted = participant["self_muted"]
        self.seat = participant["seat"]

    def seat_update(self, seat: dict) -> None:
        self.seat_muted[seat["index"]] = seat["muted"]

    def can_speak(self) -> bool:
        return policy.may_speak(
            muted=self.muted,
            self_muted=self.self_muted,
            seat=self.seat,
            seat_count=self.seat_count,
            seat_muted=self.seat is not None and self.seat_muted.get(self.seat, False),
        )


class UnknownRouteConsumer(AsyncWebsocketConsumer):
    """Any other socket path: accept, then close 4004 so the client can read why."""

    async def connect(self):
        await self.accept()
        await self.close(code=int(CloseCode.UNKNOWN_ROOM))  # autobahn wants a plain int
