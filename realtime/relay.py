"""The voice relay: the hot path. Every frame a speaker sends passes through here.

Design (measured in docs/benchmarks.md; facts from the relay probe):
- One `Relay` per process holds room -> {user_id: Endpoint} for the sockets on this node.
- A frame is written to every other local socket straight away: no channel layer, no
  consumer dispatch, no thread hop, no JSON, no database. The 9-byte header is built
  once per frame, and so is the rest: under our uvicorn protocol class the whole
  WebSocket frame is encoded once and handed to each socket's fast path
  (`ServerSocket.write`, realtime/servers/), which writes each socket's frames of one
  loop turn at once; any other socket (daphne, Channels' test communicator) gets one
  ASGI message, built once, through its `send`.
- A socket whose transport is paused by flow control (its reader stopped) is skipped,
  never awaited: its frames are dropped and counted, so one stalled listener cannot
  hold up its room. The server reports the pause and the resume to the endpoint where
  it can (`flow_paused`/`flow_resumed`: our uvicorn protocol, daphne's producer);
  otherwise an ASGI send that suspends marks it, and finishes in a task of its own. So a
  listener's backlog is bounded by the server's write buffer (its high-water mark) plus
  the kernel's socket buffer, and voice is what gets dropped; events wait their turn.
- A socket that stays backed up (or stuck closing) for VOICEROOM_STALLED_SOCKET_CLOSE_S
  is hopeless for live voice: it is closed with 4014, and aborted if even that close
  cannot leave (see `Relay._sweep_stalled` and realtime/servers/sockets.py).
- With Redis, frames also go to the other nodes that have sockets in the room through
  the voice bus (realtime/bus.py).
- Whether a socket may speak is carried with its endpoint (`can_speak`), kept current by
  its consumer from events and re-read on a timer by the runtime (realtime/runtime.py),
  so a lost event cannot leave a muted member speaking.
Control events (joins, moderation, chat) keep the ordinary channel-layer path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from realtime.limits import (
    ABUSE_BUDGET,
    ABUSE_REFILL,
    COST_VOICE_OVER_RATE,
    HEADER,
    VOICE_BURST,
    VOICE_RATE,
    VOICE_ROOM,
    VOICE_WHISPER,
    Bucket,
    voice_size_ok,
)
from realtime.servers import ServerSocket, server_socket
from realtime.servers.wire import binary_frame
from realtime.stats import LagHistogram, Stats, loop_lag, stats
from rooms.contract import CloseCode

if TYPE_CHECKING:
    from realtime.bus import VoiceBus

logger = logging.getLogger(__name__)

__all__ = ["Endpoint", "LagHistogram", "Relay", "Stats", "loop_lag", "stats"]

# A coroutine, not any awaitable: `Endpoint.offer` drives it by hand with `.send(None)`.
Send = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


class Endpoint:
    """One socket's place in the relay."""

    __slots__ = (
        "abuse",
        "busy",
        "can_speak",
        "channel",
        "dropped",
        "on_abuse",
        "room_id",
        "saved_seq",
        "send",
        "seq",
        "server",
        "stall_close_sent",
        "stalled_since",
        "target",
        "user_id",
        "voice_bucket",
        "write",
    )

    def __init__(
        self,
        *,
        room_id: int,
        user_id: int,
        send: Send,
        seq: int = 0,
        on_abuse: Callable[[], None] | None = None,
        channel: str = "",
    ) -> None:
        now = time.monotonic()
        self.channel = channel
        self.saved_seq = seq
        self.room_id = room_id
        self.user_id = user_id
        self.send = send
        self.busy = False
        self.can_speak = False
        self.target: int | None = None
        self.seq = seq
        self.dropped = 0
        self.voice_bucket = Bucket(VOICE_RATE, VOICE_BURST, now)
        self.abuse = Bucket(ABUSE_REFILL, ABUSE_BUDGET, now)
        self.on_abuse = on_abuse
        # Since when the socket could not take data (0.0: it can), whether the 4014 close
        # was tried, and the server's view of the connection (None under a test harness).
        self.stalled_since = 0.0
        self.stall_close_sent = False
        self.server: ServerSocket | None = server_socket(send, self)
        # The fast path: one encoded frame, written without the ASGI send (or None).
        self.write = self.server.write if self.server is not None else None

    def flow_paused(self) -> None:
        """The server's write buffer passed its high-water mark: voice is dropped."""
        self.busy = True
        if not self.stalled_since:
            self.stalled_since = time.monotonic()

    def flow_resumed(self) -> None:
        self.busy = False
        self.stalled_since = 0.0

    def offer(self, message: dict[str, Any]) -> None:
        """Write now if the socket can take it; drop (and count) if it is backed up."""
        if self.busy:
            self.dropped += 1
            stats.dropped_backlog += 1
            return
        coro = self.send(message)
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
        except Exception:  # the socket is gone; its consumer cleans up
            return
        # The server's send suspended (flow control paused the transport). Let it finish
        # on its own; until it does, this socket gets no more voice.
        self.busy = True
        if not self.stalled_since:
            self.stalled_since = time.monotonic()
        asyncio.get_running_loop().create_task(self._finish(coro, waiting_on))

    async def _finish(self, coro, waiting_on) -> None:
        try:
            while True:
                if waiting_on is None:
                    await asyncio.sleep(0)
                else:
                    # Wait for the future the send is blocked on without awaiting it: it
                    # was already yielded once (the C Future refuses a second await), and
                    # its outcome reaches the send coroutine when it is resumed below.
                    await asyncio.wait((waiting_on,))
                try:
                    waiting_on = coro.send(None)
                except StopIteration:
                    return
        except asyncio.CancelledError:
            coro.close()
            raise
        except Exception:
            coro.close()
        finally:
            self.busy = False
            self.stalled_since = 0.0  # it took data again

    def stuck(self) -> bool:
        """Whether the socket cannot take data now (backed up, or closing and not gone)."""
        return self.busy or (self.server is not None and self.server.stuck())

    async def close_stalled(self, code: int) -> None:
        try:
            # int(): daphne (autobahn) refuses an int subclass such as CloseCode.
            await self.send({"type": "websocket.close", "code": int(code)})
        except Exception:  # aborted meanwhile, or gone: nothing left to tell it
            pass


STALL_GRACE_S = 2.0  # after the 4014 close was queued, before the connection is aborted

# Load shedding: when the event loop runs this late, the process is past what one core
# can relay. Voice that late is useless, so new frames are dropped (and counted) until
# the loop catches up, instead of queueing and making every listener's latency grow.
LAG_PROBE_S = 0.05


class Relay:
    def __init__(self) -> None:
        self.rooms: dict[int, dict[int, Endpoint]] = {}
        self.bus: VoiceBus | None = None
        # Sees each relayed frame once (evidence, recording: realtime/tap.py).
        self.tap: Callable[[int, int, bytes, float, int | None], None] | None = None
        self.overloaded = False
        self._lag_task: asyncio.Task | None = None
        self._lag_loop: asyncio.AbstractEventLoop | None = None
        self._stall_task: asyncio.Task | None = None
        self._stall_loop: asyncio.AbstractEventLoop | None = None
        self._users: dict[int, int] = {}  # user -> local sockets (all rooms)
        self._closing: set[asyncio.Future] = set()  # 4014 closes under way

    def tasks(self) -> list[asyncio.Task]:
        """The watches' tasks (the runtime stops them)."""
        return [t for t in (self._lag_task, self._stall_task) if t is not None]

    def forget_tasks(self) -> None:
        self._lag_task = self._stall_task = None
        self._lag_loop = self._stall_loop = None

    def watch_stalls(self, limit_s: float) -> None:
        """Close hopeless sockets: see `sweep_stalled`. Once per process and event loop."""
        if limit_s <= 0:
            return
        loop = asyncio.get_running_loop()
        if self._stall_task is not None and not self._stall_task.done():
            if self._stall_loop is loop:
                return
        self._stall_loop = loop
        self._stall_task = loop.create_task(self._watch_stalls(limit_s))

    async def _watch_stalls(self, limit_s: float) -> None:
        every = min(1.0, limit_s / 4)
        while True:
            await asyncio.sleep(every)
            try:
                self.sweep_stalled(limit_s, time.monotonic())
            except Exception:  # never let the watch die
                logger.exception("stalled-socket sweep failed")

    def sweep_stalled(self, limit_s: float, now: float) -> None:
        """A socket that could not take data for `limit_s` is hopeless for live voice.

        It is closed with 4014 (the close frame leaves if the client reads again in
        time); if it is still stuck STALL_GRACE_S later, the connection is aborted, as a
        client that does not read cannot receive a close. Either way its consumer sees the
        disconnect and the member enters the resume window, like any dropped socket.
        """
        for room in list(self.rooms.values()):
            for ep in list(room.values()):
                if not ep.stuck():
                    ep.stalled_since = 0.0
                    continue
                if not ep.stalled_since:
                    ep.stalled_since = now
                    continue
                stalled = now - ep.stalled_since
                if stalled < limit_s:
                    continue
                if not ep.stall_close_sent:
                    ep.stall_close_sent = True
                    stats.closed_stalled += 1
                    logger.warning(
                        "user %s in room %s took no data for %.1f s (%d bytes waiting):"
                        " closing with %d",
                        ep.user_id,
                        ep.room_id,
                        stalled,
                        ep.server.buffered() if ep.server is not None else -1,
                        CloseCode.TOO_SLOW,
                    )
                    task = asyncio.ensure_future(ep.close_stalled(CloseCode.TOO_SLOW))
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)
                elif stalled >= limit_s + STALL_GRACE_S and ep.server is not None:
                    if ep.server.abort():
                        stats.aborted_stalled += 1
                        logger.warning(
                            "user %s in room %s still stuck: connection aborted",
                            ep.user_id,
                            ep.room_id,
                        )

    def watch_lag(self, limit_s: float) -> None:
        if limit_s <= 0:
            return  # shedding turned off
        loop = asyncio.get_running_loop()
        if self._lag_task is not None and not self._lag_task.done() and self._lag_loop is loop:
            return
        self._lag_loop = loop
        self._lag_task = loop.create_task(self._measure_lag(limit_s))

    async def _measure_lag(self, limit_s: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            lag = loop.time() - started - LAG_PROBE_S
            loop_lag.observe(max(lag, 0.0))
            if lag > limit_s and not self.overloaded:
                logger.warning("event loop %.0f ms late: shedding voice frames", lag * 1000)
            self.overloaded = lag > limit_s

    # -- membership of the local registry --------------------------------------------

    def add(self, endpoint: Endpoint) -> None:
        room = self.rooms.get(endpoint.room_id)
        if room is None:
            room = self.rooms[endpoint.room_id] = {}
            if self.bus is not None:
                self.bus.watch(endpoint.room_id)
        if room.get(endpoint.user_id) is None:
            self._users[endpoint.user_id] = self._users.get(endpoint.user_id, 0) + 1
        room[endpoint.user_id] = endpoint

    def remove(self, endpoint: Endpoint) -> None:
        room = self.rooms.get(endpoint.room_id)
        if room is None or room.get(endpoint.user_id) is not endpoint:
            return
        del room[endpoint.user_id]
        left = self._users.get(endpoint.user_id, 1) - 1
        if left > 0:
            self._users[endpoint.user_id] = left
        else:
            self._users.pop(endpoint.user_id, None)
        if not room:
            del self.rooms[endpoint.room_id]
            if self.bus is not None:
                self.bus.unwatch(endpoint.room_id)

    async def drain(self, code: int = 1012) -> None:
        """Close every local socket with `code` (1012: service restart), so clients resume
        on another node at once instead of waiting for a timeout."""
        endpoints = [ep for room in self.rooms.values() for ep in room.values()]
        for ep in endpoints:
            try:
                await ep.send({"type": "websocket.close", "code": int(code)})
            except Exception:
                pass
        # Give the close frames time to leave before the server drops the connections.
        for _ in range(30):
            if all(not room for room in self.rooms.values()):
                break
            await asyncio.sleep(0.05)

    def unsaved_sequences(self) -> list[tuple[int, int, str, int]]:
        """(room, user, channel, seq) of sockets whose voice sequence moved since the last
        call, marked saved; the reaper stores them so a resume after a crash continues."""
        moved = []
        for room in self.rooms.values():
            for ep in room.values():
                if ep.seq != ep.saved_seq and ep.channel:
                    ep.saved_seq = ep.seq
                    moved.append((ep.room_id, ep.user_id, ep.channel, ep.seq))
        return moved

    def sockets_of(self, user_id: int) -> int:
        """How many rooms this user has a socket in on this node."""
        return self._users.get(user_id, 0)

    def local(self, room_id: int, user_id: int) -> Endpoint | None:
        return self.rooms.get(room_id, {}).get(user_id)

    # -- the hot path ----------------------------------------------------------------

    def voice_in(self, ep: Endpoint, payload: bytes) -> str | None:
        """Relay one frame from `ep`. Returns an error code for the client, or None."""
        stats.frames_in += 1
        size = len(payload)
        if not voice_size_ok(size):
            stats.frames_oversized += 1
            return "frame_too_large" if size else "empty_frame"
        if self.overloaded:
            stats.dropped_overload += 1
            return None
        now = time.monotonic()
        if not ep.voice_bucket.take(now):
            stats.dropped_rate += 1
            if not ep.abuse.take(now, COST_VOICE_OVER_RATE) and ep.on_abuse is not None:
                ep.on_abuse()
            return None
        if not ep.can_speak:
            stats.dropped_muted += 1
            return None
        ep.seq = seq = (ep.seq + 1) & 0xFFFFFFFF
        other: Endpoint | None
        stats.frames_relayed += 1
        room = self.rooms.get(ep.room_id)
        target = ep.target
        if self.tap is not None:
            self.tap(ep.room_id, ep.user_id, payload, now, target)
        if target is None:
            data = HEADER.pack(VOICE_ROOM, ep.user_id, seq) + payload
            if room is not None and len(room) > 1:
                stats.deliveries += len(room) - 1
                _fan_out(room.values(), ep, data)
            if self.bus is not None:
                self.bus.publish(ep.room_id, 0, data)
        else:
            data = HEADER.pack(VOICE_WHISPER, ep.user_id, seq) + payload
            other = room.get(target) if room is not None else None
            if other is not None:
                stats.deliveries += 1
                _fan_out((other,), None, data)
            elif self.bus is not None:
                self.bus.publish(ep.room_id, target, data)
        return None

    def deliver_remote(self, room_id: int, target: int, data: bytes) -> None:
        """A frame relayed by another node: hand it to the local sockets it is for."""
        room = self.rooms.get(room_id)
        if room is None:
            return
        if target:
            ep = room.get(target)
            if ep is not None:
                stats.deliveries += 1
                _fan_out((ep,), None, data)
            return
        sender = room.get(int.from_bytes(data[1:5], "big"))
        count = len(room) - (sender is not None)
        if count > 0:
            stats.deliveries += count
            _fan_out(room.values(), sender, data)


def _fan_out(endpoints: Iterable[Endpoint], skip: Endpoint | None, data: bytes) -> None:
    """Give `data` (header and payload) to every endpoint but `skip`.

    The WebSocket frame and the ASGI message are each built once, when first needed. A
    backed-up socket is skipped and its drop counted, whichever path it has.
    """
    frame = message = None
    direct = 0
    for ep in endpoints:
        if ep is skip:
            continue
        if ep.busy:
            ep.dropped += 1
            stats.dropped_backlog += 1
            continue
        write = ep.write
        if write is not None:
            if frame is None:
                frame = binary_frame(data)
            write(frame)
            direct += 1
        else:
            if message is None:
                message = {"type": "websocket.send", "bytes": data}
            ep.offer(message)
    if direct:
        stats.deliveries_direct += direct
