"""The voice relay: the hot path. Every frame a speaker sends passes through here.

Design (measured in docs/benchmarks.md; facts from the relay probe):
- One `Relay` per process holds room -> {user_id: Endpoint} for the sockets on this node.
- A frame is written to every other local socket straight away through that socket's
  ASGI `send`: no channel layer, no consumer dispatch, no thread hop, no JSON, no
  database. The 9-byte header and the ASGI message are built once per frame.
- A socket whose transport is paused by flow control (its reader stopped) is skipped,
  never awaited: its frames are dropped and counted, so one stalled listener cannot
  hold up its room. The send that found it paused finishes in a task of its own. So a
  listener's backlog is bounded by the server's write buffer (its high-water mark) plus
  the kernel's socket buffer, and voice is what gets dropped; events wait their turn.
- A socket that stays backed up (or stuck closing) for VOICEROOM_STALLED_SOCKET_CLOSE_S
  is hopeless for live voice: it is closed with 4014, and aborted if even that close
  cannot leave (see `Relay._sweep_stalled` and realtime/servers/sockets.py).
- With Redis, while another node has sockets in the room, each frame is also queued
  for ONE `PUBLISH` to the room's voice channel; one task per process pipelines
  whatever is queued. One subscriber connection per process listens to the voice
  channels of the rooms that have local sockets, and relays other nodes' frames
  locally (its own come back too and are skipped by the node-id prefix). So a node
  receives a frame at most once, only nodes with members in that room receive it, and
  a room on a single node costs Redis nothing (see VoiceBus).
Control events (joins, moderation, chat) keep the ordinary channel-layer path.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from realtime.servers.sockets import ServerSocket, server_socket
from rooms.ws.frames import (
    ABUSE_BUDGET,
    ABUSE_REFILL,
    COST_VOICE_OVER_RATE,
    HEADER,
    MAX_VOICE_BYTES,
    VOICE_BURST,
    VOICE_RATE,
    VOICE_ROOM,
    VOICE_WHISPER,
    Bucket,
)

logger = logging.getLogger(__name__)

# A coroutine function, not any awaitable: Endpoint.offer() drives it step by step.
Send = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


class Stats:
    """Plain counters, read by the Prometheus collector at scrape time (no cost per frame)."""

    __slots__ = (
        "aborted_stalled",
        "bus_dropped",
        "bus_published",
        "bus_received",
        "closed_stalled",
        "deliveries",
        "dropped_backlog",
        "dropped_muted",
        "dropped_overload",
        "dropped_rate",
        "frames_in",
        "frames_oversized",
        "frames_relayed",
        "refused_limit",
    )
    # Declared for the type checker; __init__ sets every slot to 0.
    aborted_stalled: int
    bus_dropped: int
    bus_published: int
    bus_received: int
    closed_stalled: int
    deliveries: int
    dropped_backlog: int
    dropped_muted: int
    dropped_overload: int
    dropped_rate: int
    frames_in: int
    frames_oversized: int
    frames_relayed: int
    refused_limit: int

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)


stats = Stats()


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
            await self.send({"type": "websocket.close", "code": code})
        except Exception:  # aborted meanwhile, or gone: nothing left to tell it
            pass


CLOSE_TOO_SLOW = 4014  # the socket stopped taking data: resume when you read again
STALL_GRACE_S = 2.0  # after the 4014 close was queued, before the connection is aborted

# Load shedding: when the event loop runs this late, the process is past what one core
# can relay. Voice that late is useless, so new frames are dropped (and counted) until
# the loop catches up, instead of queueing and making every listener's latency grow.
LAG_PROBE_S = 0.05


class Relay:
    def __init__(self) -> None:
        self.rooms: dict[int, dict[int, Endpoint]] = {}
        self.bus: VoiceBus | None = None
        self.overloaded = False
        self._lag_task: asyncio.Task | None = None
        self._lag_loop: asyncio.AbstractEventLoop | None = None
        self._stall_task: asyncio.Task | None = None
        self._stall_loop: asyncio.AbstractEventLoop | None = None
        self._users: dict[int, int] = {}  # user -> local sockets (all rooms)
        self._closing: set[asyncio.Future] = set()  # 4014 closes under way

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
                        "user %s in room %s took no data for %.1f s: closing with %d",
                        ep.user_id,
                        ep.room_id,
                        stalled,
                        CLOSE_TOO_SLOW,
                    )
                    task = asyncio.ensure_future(ep.close_stalled(CLOSE_TOO_SLOW))
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
                await ep.send({"type": "websocket.close", "code": code})
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
        if size > MAX_VOICE_BYTES or size == 0:
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
        stats.frames_relayed += 1
        room = self.rooms.get(ep.room_id)
        other: Endpoint | None  # a peer in the room loop, the target in a whisper
        target = ep.target
        if target is None:
            data = HEADER.pack(VOICE_ROOM, ep.user_id, seq) + payload
            message = {"type": "websocket.send", "bytes": data}
            if room is not None:
                stats.deliveries += len(room) - 1
                for other in room.values():
                    if other is not ep:
                        other.offer(message)
            if self.bus is not None:
                self.bus.publish(ep.room_id, 0, data)
        else:
            data = HEADER.pack(VOICE_WHISPER, ep.user_id, seq) + payload
            other = room.get(target) if room is not None else None
            if other is not None:
                stats.deliveries += 1
                other.offer({"type": "websocket.send", "bytes": data})
            elif self.bus is not None:
                self.bus.publish(ep.room_id, target, data)
        return None

    def deliver_remote(self, room_id: int, target: int, data: bytes) -> None:
        """A frame relayed by another node: hand it to the local sockets it is for."""
        room = self.rooms.get(room_id)
        if room is None:
            return
        message = {"type": "websocket.send", "bytes": data}
        if target:
            ep = room.get(target)
            if ep is not None:
                stats.deliveries += 1
                ep.offer(message)
            return
        sender = int.from_bytes(data[1:5], "big")
        for user_id, ep in room.items():
            if user_id != sender:
                stats.deliveries += 1
                ep.offer(message)


_ROUTE = struct.Struct(">I")  # target user id (0: the whole room)
_HELLO = 0xFFFFFFFF  # "this node has sockets in the room" (also the answer to a hello)
_BYE = 0xFFFFFFFE  # "this node no longer has sockets in the room"
HELLO_EVERY_S = 5.0
FORGET_AFTER_S = 15.0
ASSUME_OTHERS_FOR_S = 2.0
_ASSUMED = b"?"  # stands for "nodes not heard from yet" in VoiceBus.remote
PUBLISH_TIMEOUT_S = 1.0  # voice older than this is not worth delivering


class VoiceBus:
    """Voice between nodes over Redis pub/sub: one PUBLISH per frame, one subscriber.

    A node publishes a room's frames only while another node has sockets in that room.
    Nodes learn about each other on the room's voice channel itself: a node that starts
    watching a room says hello there, the nodes already in it answer, and every node
    repeats its hello every few seconds; a node not heard from for FORGET_AFTER_S (it
    died without saying bye) is forgotten. So a room that lives on one node costs Redis
    nothing, and a node receives a frame at most once, only for rooms it has sockets in.
    """

    def __init__(self, relay: Relay, *, url: str, prefix: str, node_id: str) -> None:
        self.relay = relay
        self.url = url
        self.prefix = f"{prefix}:v:"
        self.node = node_id.encode()[:16].ljust(16, b"-")
        self.remote: dict[int, dict[bytes, float]] = {}  # room -> other node -> last heard
        self._queue: list[tuple[str, bytes]] = []
        self._wake: asyncio.Event | None = None
        self._watched: set[int] = set()
        self._pubsub: Any = None  # a redis.asyncio PubSub while subscribed
        self._tasks: list[asyncio.Task] = []
        # A redis.asyncio.Redis once start() ran (imported there, lazily); redis-py types
        # its replies as Awaitable | Any anyway.
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def channel(self, room_id: int) -> str:
        return f"{self.prefix}{room_id}"

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._tasks and self._loop is loop:
            return
        # First start, or a new event loop (tests run one loop per test).
        self._loop = loop
        self._pubsub = None
        self.remote = {}
        import redis.asyncio as aioredis

        # No socket_timeout on these connections: a quiet room is not an error
        # (redis-py 8 raises TimeoutError on idle reads when one is set).
        self._client = aioredis.Redis.from_url(
            self.url, socket_timeout=None, socket_keepalive=True, health_check_interval=30
        )
        self._wake = asyncio.Event()
        self._tasks = [
            loop.create_task(self._publisher()),
            loop.create_task(self._subscriber()),
            loop.create_task(self._greeter()),
        ]

    def publish(self, room_id: int, target: int, data: bytes) -> None:
        if not self.remote.get(room_id):
            return  # no other node has sockets in this room
        stats.bus_published += 1
        self._send(room_id, target, data)

    def _send(self, room_id: int, route: int, data: bytes = b"") -> None:
        self._queue.append((self.channel(room_id), self.node + _ROUTE.pack(route) + data))
        if self._wake is not None and not self._wake.is_set():
            self._wake.set()

    async def _publisher(self) -> None:
        while True:
            assert self._wake is not None  # start() makes it before it starts this task
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            try:
                pipe = self._client.pipeline(transaction=False)
                for channel, message in batch:
                    pipe.publish(channel, message)
                # A hung Redis must not hold the publisher: frames would pile up here
                # and reach the other nodes seconds late, all at once, when it wakes.
                await asyncio.wait_for(pipe.execute(), PUBLISH_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                stats.bus_dropped += len(batch)
                logger.warning("voice publish of %d messages timed out; dropped", len(batch))
                await self._wait_for_redis()
            except Exception:
                stats.bus_dropped += len(batch)
                logger.warning("voice publish of %d messages failed", len(batch), exc_info=True)
                await asyncio.sleep(0.5)

    async def _wait_for_redis(self) -> None:
        """Publish nothing more until Redis answers again: what a hung Redis was sent
        (even on a connection given up since) is still carried out when it wakes, so
        every frame sent meanwhile would arrive late, in one burst. Frames queued while
        waiting are stale by then, and dropped."""
        while True:
            try:
                await asyncio.wait_for(self._client.ping(), PUBLISH_TIMEOUT_S)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.2)
        stats.bus_dropped += len(self._queue)
        self._queue = []

    def watch(self, room_id: int) -> None:
        self._watched.add(room_id)
        # Until the other nodes have answered the hello, assume they are there: a member
        # who speaks the moment it arrives must be heard everywhere.
        self.remote.setdefault(room_id, {})[_ASSUMED] = (
            time.monotonic() - FORGET_AFTER_S + ASSUME_OTHERS_FOR_S
        )
        if self._pubsub is not None:
            asyncio.get_running_loop().create_task(self._subscribe_and_greet([room_id]))

    def unwatch(self, room_id: int) -> None:
        self._watched.discard(room_id)
        self.remote.pop(room_id, None)
        self._send(room_id, _BYE)
        if self._pubsub is not None:
            asyncio.get_running_loop().create_task(
                self._safe(self._pubsub.unsubscribe(self.channel(room_id)))
            )

    async def _subscribe_and_greet(self, rooms: list[int]) -> None:
        await self._safe(self._pubsub.subscribe(*[self.channel(r) for r in rooms]))
        for room_id in rooms:
            self._send(room_id, _HELLO)

    @staticmethod
    async def _safe(awaitable) -> None:
        try:
            await awaitable
        except Exception:
            logger.warning("voice bus subscription change failed", exc_info=True)

    async def _greeter(self) -> None:
        last_hello = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if now - last_hello >= HELLO_EVERY_S:
                last_hello = now
                for room_id in list(self._watched):
                    self._send(room_id, _HELLO)
            for nodes in list(self.remote.values()):
                for node, heard in list(nodes.items()):
                    if now - heard > FORGET_AFTER_S:
                        del nodes[node]

    async def _subscriber(self) -> None:
        node = self.node
        relay = self.relay
        remote = self.remote
        plen = len(self.prefix)
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                self._pubsub = pubsub
                await pubsub.subscribe(f"{self.prefix}__node__")
                if self._watched:
                    await self._subscribe_and_greet(list(self._watched))
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message["type"] != "message":
                        continue
                    data = message["data"]
                    sender = data[:16]
                    if sender == node:
                        continue
                    room_id = int(message["channel"][plen:])
                    route = _ROUTE.unpack_from(data, 16)[0]
                    nodes = remote.get(room_id)
                    if route == _BYE:
                        if nodes is not None:
                            nodes.pop(sender, None)
                        continue
                    if room_id not in self._watched:
                        continue
                    if nodes is None:
                        nodes = remote[room_id] = {}
                    known = sender in nodes
                    nodes[sender] = time.monotonic()
                    if route == _HELLO:
                        if not known:
                            self._send(room_id, _HELLO)  # let the newcomer know us too
                        continue
                    stats.bus_received += 1
                    relay.deliver_remote(room_id, route, data[20:])
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("voice bus subscriber lost Redis; reconnecting", exc_info=True)
                self._pubsub = None
                await asyncio.sleep(0.5)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass


relay = Relay()


def ensure_bus() -> None:
    """Start the relay's background tasks once per process (and event loop): the lag
    watch, and the Redis voice bus when REDIS_URL is set."""
    from django.conf import settings

    from realtime.presence import NODE_ID

    relay.watch_lag(settings.VOICEROOM_SHED_AFTER_LAG_MS / 1000)
    relay.watch_stalls(settings.VOICEROOM_STALLED_SOCKET_CLOSE_S)
    _drain_on_daphne_shutdown()
    if not settings.REDIS_URL:
        return
    if relay.bus is None:
        relay.bus = VoiceBus(
            relay, url=settings.REDIS_URL, prefix=settings.VOICEROOM_REDIS_PREFIX, node_id=NODE_ID
        )
    relay.bus.start()


async def _drain_and_settle(limit_s: float = 5.0) -> None:
    """Close every socket, then wait until the sync work their closing started is done.

    A closed socket's disconnect handler runs in asgiref's thread-sensitive executor,
    and that code hops back into the event loop to broadcast (`async_to_sync`). Once
    the reactor has stopped, a thread still waiting for the loop never finishes, and the
    process never exits (seen: a daphne node stuck for good after SIGTERM). So the
    reactor is held until a no-op queued behind that work runs at once.
    """
    from asgiref.sync import sync_to_async

    await relay.drain(CLOSE_DRAINING)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    await asyncio.sleep(0.1)  # disconnect handlers reach their sync step
    while loop.time() < deadline:
        started = loop.time()
        await sync_to_async(_nothing, thread_sensitive=True)()
        if loop.time() - started < 0.02:
            return
        await asyncio.sleep(0.05)


def _nothing() -> None:
    pass


_drain_installed = False
CLOSE_DRAINING = 4013  # daphne's stand-in for 1012, see below


def _drain_on_daphne_shutdown() -> None:
    """uvicorn closes sockets with 1012 on SIGTERM by itself; daphne drops them (1006).

    Under daphne (whose Twisted reactor is already installed and running), a "before
    shutdown" trigger, Twisted's public API for this, closes them first. Autobahn lets an
    application close only with 1000 or 3000-4999, so daphne's drain code is 4013
    ("node shutting down: resume elsewhere now"), which clients treat like 1012.
    """
    global _drain_installed
    if _drain_installed or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    def before_shutdown():
        logger.info(
            "shutting down: closing %d sockets with %d",
            sum(map(len, relay.rooms.values())),
            CLOSE_DRAINING,
        )
        return defer.Deferred.fromFuture(asyncio.ensure_future(_drain_and_settle()))

    # Twisted declares this on a zope Interface (no `self`), which mypy reads shifted by one.
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[arg-type]
    _drain_installed = True
