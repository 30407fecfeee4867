"""The room socket. Thin: it reads frames, looks them up in one table and runs them.

- text frames: rooms/ws/frames.py (FRAMES: type -> validator, guards, handler; adding a
  frame type is a line there, not a change here), rooms/ws/handlers.py (what each does),
  rooms/ws/guards.py (flood limits, the socket limit, targets in the room, the voice
  gate);
- events from the channel layer (rooms/events.py): the methods at the end, named after
  the event type as Channels dispatches them (`participant.joined` -> participant_joined);
- voice (binary frames) never goes through Channels' dispatch: the socket reader of
  rooms/ws/loop.py hands bytes to `voice()`, straight to the relay.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from accounts.models import User
from realtime import runtime
from realtime.limits import voice_size_ok
from realtime.presence import NODE_ID
from realtime.relay import Endpoint, Relay, stats
from rooms import contract, events, services
from rooms.contract import CloseCode
from rooms.models import Room
from rooms.ws import guards
from rooms.ws.auth import SocketAuth
from rooms.ws.errors import FrameError
from rooms.ws.frames import COST_BAD_FRAME, COST_TEXT_OVER_RATE, FRAMES, dumps, parse_text_frame
from rooms.ws.loop import LeanWebsocketConsumer
from voiceroom.errors import ApplicationError

logger = logging.getLogger(__name__)
_db = database_sync_to_async


class RoomConsumer(LeanWebsocketConsumer):
    room_id: int
    user_id: int  # set once the participant is connected, as are session_id and state
    session_id: str
    state: guards.SpeakState
    flood: guards.Flood
    session_seq: int | None = None  # the voice sequence it attached at; None: not attached
    endpoint: Endpoint | None = None
    closing = False
    left_cleanly = False
    leaving_by_frame = False
    relay: Relay

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.relay = runtime.current().relay
        self.tap = runtime.current().tap

    async def voice(self, data: bytes) -> None:
        """A binary frame, straight from the socket reader (rooms/ws/loop.py)."""
        ep = self.endpoint
        if ep is not None:
            error = self.relay.voice_in(ep, data)
            if error is not None:
                await self._refuse(error, "Voice frames must be 1-4096 bytes.")

    def voice_now(self, data: bytes) -> bool:
        """A binary frame handed over by the server as it was read (rooms/ws/loop.py).
        One the relay would refuse goes the usual way, to be answered with an error."""
        ep = self.endpoint
        if ep is None or not voice_size_ok(len(data)):
            return False
        stats.frames_in_direct += 1
        self.relay.voice_in(ep, data)
        return True

    # -- lifecycle --------------------------------------------------------------------

    async def connect(self) -> None:
        self.room_id = int(self.scope["url_route"]["kwargs"]["room_id"])
        # Accept first, then refuse with a code every client can read.
        await self.accept()
        try:
            await self._enter()
        except (DatabaseError, RedisError):
            logger.warning("socket refused: a dependency is down", exc_info=True)
            if self.session_seq is not None and self.endpoint is None:
                # Registered as connected but never served: leave the resume window open.
                try:
                    await _db(services.participant_disconnect)(
                        room_id=self.room_id,
                        user_id=self.user_id,
                        channel=self.channel_name,
                        seq=self.session_seq,
                    )
                except (DatabaseError, RedisError):
                    pass  # the reaper's reattach/timeouts settle it when Redis is back
            await self._close(CloseCode.UNAVAILABLE)

    async def _enter(self) -> None:
        # Set by rooms.ws.auth.SocketAuthMiddleware; Channels' scope type does not know it.
        auth: SocketAuth | None = self.scope.get("voiceroom_auth")  # type: ignore[assignment]
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
        limit = settings.VOICEROOM_MAX_SOCKETS_PER_USER
        if guards.over_socket_limit(self.relay, limit, self.room_id, auth.user_id):
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
        if result.close_code is not None or result.session is None or result.welcome is None:
            await self._close(result.close_code or CloseCode.UNAVAILABLE)
            return
        self.user_id = auth.user_id
        self.session_id = result.session.session_id
        self.session_seq = result.session.seq
        welcome = result.welcome
        self.state = guards.SpeakState(
            welcome["you"], welcome["room"]["seat_count"], welcome["seats"]
        )
        self.flood = guards.Flood()
        await self._join_groups()
        # A sign-out (password change, deactivation) committed after participant_connect
        # checked the credentials may have missed this socket: its 4001 went to the member
        # group before the socket joined it. Check again now that any later one reaches it.
        if not await _db(services.participant_recheck)(
            room_id=self.room_id,
            user_id=self.user_id,
            session_id=self.session_id,
            epoch=result.credentials_epoch,
        ):
            self.left_cleanly = True  # the service ended the session
            await self._leave_groups()
            await self._close(CloseCode.AUTH_FAILED)
            return
        if result.replaced_live_socket:
            await events.amember_replace(self.room_id, self.user_id, self.channel_name)
        if welcome["room"].get("recording"):
            # The room records: this node records its speakers too (from the start's
            # wall time, so its tracks line up with the other nodes').
            control = await _db(services.recording_active)(room_id=self.room_id)
            if control is not None:
                self._apply_recording(control)
        await self.send(text_data=dumps(welcome))
        # Registered only after the welcome went out, so it is the first frame.
        self.endpoint = Endpoint(
            room_id=self.room_id,
            user_id=self.user_id,
            # The server's ASGI send; asgiref types its messages, the relay sends dicts.
            send=self.base_send,  # type: ignore[arg-type]
            seq=self.session_seq,
            on_abuse=self._abused,
            channel=self.channel_name,
        )
        self.endpoint.can_speak = self.state.can_speak()
        self.relay.add(self.endpoint)
        if self.endpoint.server is not None:
            self.endpoint.server.take_voice(self.voice_arrived)

    async def disconnect(self, code: int) -> None:
        ep = self.endpoint
        if ep is None:
            return
        self.relay.remove(ep)
        self.endpoint = None
        await self._leave_groups()
        if not self.left_cleanly:
            await _db(services.participant_disconnect)(
                room_id=self.room_id, user_id=self.user_id, channel=self.channel_name, seq=ep.seq
            )

    async def _join_groups(self) -> None:
        await self.channel_layer.group_add(events.room_group(self.room_id), self.channel_name)
        await self.channel_layer.group_add(
            events.member_group(self.room_id, self.user_id), self.channel_name
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

    # -- client text frames: rooms/ws/frames.py --------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # A socket being closed (4008, kicked, replaced...) has its last frames still
        # queued: they must not be handled. A flooder's chat would otherwise reach the
        # room after its 4008, and a `pong` would follow the close frame.
        if text_data is None or self.endpoint is None or self.closing:
            return
        if not self.flood.text_allowed():
            await self._refuse("rate_limited", "Too many messages; slow down.", COST_TEXT_OVER_RATE)
            return
        try:
            message = parse_text_frame(text_data)
            await FRAMES[message.type].run(self, message.data)
        except FrameError as exc:
            await self._refuse(exc.code, exc.detail)
        except ApplicationError as exc:
            await self.send_json({"type": "error", "code": exc.code, "detail": exc.detail})
        except (DatabaseError, RedisError):
            # A dependency is down: refuse this frame, keep the socket (voice still flows).
            logger.warning("frame refused, a dependency is down", exc_info=True)
            await self.send_json(
                {
                    "type": "error",
                    "code": "service_unavailable",
                    "detail": "The server cannot do this right now; try again.",
                }
            )

    async def _refuse(self, code: str, detail: str, cost: float = COST_BAD_FRAME) -> None:
        """Refuse one frame with an `error`; a client that keeps at it is closed with 4008."""
        if self.closing:
            return
        if not self.flood.refusal_allowed(cost):
            self._abused()
            return
        await self.send_json({"type": "error", "code": code, "detail": detail})

    def _abused(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.endpoint is not None:
            self.relay.remove(self.endpoint)
            self.endpoint.can_speak = False
        asyncio.get_running_loop().create_task(self.close(code=CloseCode.POLICY))

    # What handlers (rooms/ws/handlers.py, the `Socket` protocol) use of this socket.

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send(text_data=dumps(message))

    async def room(self) -> Room:
        return await _db(Room.objects.get)(pk=self.room_id)

    async def user(self) -> User:
        return await _db(User.objects.get)(pk=self.user_id)

    def apply_participant(self, participant: contract.Participant) -> None:
        self.state.participant_update(participant)
        self._refresh_speak()

    def _refresh_speak(self) -> None:
        if self.endpoint is not None:
            self.endpoint.can_speak = self.state.can_speak()

    # -- events from the channel layer (rooms/events.py) ---------------------------------

    async def _forward(self, event: dict[str, Any]) -> None:
        if not self.closing and self.endpoint is not None:
            await self.send(text_data=dumps(event))

    # Passed on as they are. Seat-request events reach only moderators' and the
    # requester's sockets (rooms/events.py chooses the groups).
    participant_left = chat = whisper = _forward
    seat_requested = seat_request_resolved = seat_request_cancelled = _forward

    async def participant_joined(self, event: dict[str, Any]) -> None:
        if event["participant"]["user_id"] == self.user_id:
            return  # the welcome already told this socket about itself
        await self._forward(event)

    async def participant_updated(self, event: dict[str, Any]) -> None:
        if event["participant"]["user_id"] == self.user_id:
            self.apply_participant(event["participant"])
        await self._forward(event)

    async def seat_updated(self, event: dict[str, Any]) -> None:
        self.state.seat_update(event["seat"])
        self._refresh_speak()
        await self._forward(event)

    async def room_updated(self, event: dict[str, Any]) -> None:
        self.state.seat_count = event["room"]["seat_count"]
        self._refresh_speak()
        await self._forward(event)

    async def room_closed(self, event: dict[str, Any]) -> None:
        await self._forward(event)
        self.left_cleanly = True  # the service already ended every session
        await self._close(CloseCode.ROOM_CLOSED)

    # Reports and recording (rooms/services/reports.py, recording.py): not for clients.

    async def evidence_request(self, event: dict[str, Any]) -> None:
        """Another node (or this one) freezes a report's evidence: answer with what this
        node holds for the member, whichever member of the room it is about."""
        from realtime.evidence import pack

        snap = self.tap.evidence.snapshot(int(event["room_id"]), int(event["user_id"]))
        await self.channel_layer.send(
            event["reply"], {"type": "evidence.reply", "data": pack(snap)}
        )

    async def recording_control(self, event: dict[str, Any]) -> None:
        self._apply_recording(event)

    def _apply_recording(self, control: dict[str, Any]) -> None:
        recordings = self.tap.recordings
        if control["active"]:
            recordings.start(
                self.room_id, control["recording_id"], control["started_at"], control["codec"]
            )
        elif recordings.recording_id(self.room_id) == control["recording_id"]:
            recordings.stop(self.room_id)

    async def member_close(self, event: dict[str, Any]) -> None:
        self.left_cleanly = True  # the service already ended the session
        if self.closing:
            return  # closed already (e.g. by the credentials re-check): one close frame
        code = event["code"]
        if code == CloseCode.LEFT and self.leaving_by_frame:
            code = CloseCode.NORMAL
        await self._close(code)

    async def member_replace(self, event: dict[str, Any]) -> None:
        if event["channel"] != self.channel_name:
            self.left_cleanly = True  # the session lives on in the newer socket
            await self._close(CloseCode.REPLACED)


class UnknownRouteConsumer(AsyncWebsocketConsumer):
    """Any other socket path: accept, then close 4004 so the client can read why."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=int(CloseCode.UNKNOWN_ROOM))  # autobahn wants a plain int
