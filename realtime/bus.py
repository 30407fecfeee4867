"""Voice between nodes over Redis pub/sub: one PUBLISH per frame, one subscriber per process.

With Redis, while another node has sockets in the room, each frame the relay takes is
also queued for ONE `PUBLISH` to the room's voice channel; one task per process
pipelines whatever is queued. One subscriber connection per process listens to the
voice channels of the rooms that have local sockets, and hands other nodes' frames to
the relay (its own come back too and are skipped by the node-id prefix). So a node
receives a frame at most once, only nodes with members in that room receive it, and a
room on a single node costs Redis nothing.

The bus is owned by the process's runtime (realtime/runtime.py), which starts and stops it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import TYPE_CHECKING

from realtime.redis_client import RedisConfig, on_old_master
from realtime.relay import stats

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from realtime.relay import Relay

logger = logging.getLogger(__name__)

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

    def __init__(
        self, relay: Relay, *, redis: RedisConfig | str, prefix: str, node_id: str
    ) -> None:
        self.relay = relay
        self.redis = RedisConfig.of(redis)
        self.prefix = f"{prefix}:v:"
        self.node = node_id.encode()[:16].ljust(16, b"-")
        self.remote: dict[int, dict[bytes, float]] = {}  # room -> other node -> last heard
        self._queue: list[tuple[str, bytes]] = []
        self._wake: asyncio.Event | None = None
        self._watched: set[int] = set()
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task] = []
        self._client: Redis | None = None
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
        # No socket_timeout on these connections: a quiet room is not an error
        # (redis-py 8 raises TimeoutError on idle reads when one is set).
        self._client = self.redis.async_client(
            socket_timeout=None, socket_keepalive=True, health_check_interval=30
        )
        self._wake = asyncio.Event()
        self._tasks = [
            loop.create_task(self._publisher()),
            loop.create_task(self._subscriber()),
            loop.create_task(self._greeter()),
        ]

    def tasks(self) -> list[asyncio.Task]:
        return list(self._tasks)

    def _redis(self) -> Redis:
        # start() connects before it starts the tasks that call this; close() runs after
        # the runtime cancelled them.
        if self._client is None:
            raise RuntimeError("the voice bus is not started")
        return self._client

    def forget_tasks(self) -> None:
        self._tasks = []
        self._pubsub = None

    async def close(self) -> None:
        """Close the Redis connection (after the runtime cancelled the tasks)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                pass

    async def drop_connections(self, master: tuple[str, int] | None = None) -> None:
        """Close the subscriber's connection unless it is on `master` already, and the
        publishers' pool (the Redis master moved): the subscriber reconnects through the
        sentinels, resubscribes its rooms and greets the other nodes again; the next
        publish opens a new connection."""
        pubsub = self._pubsub
        connection = pubsub.connection if pubsub is not None else None
        if connection is not None and on_old_master(connection, master):
            await connection.disconnect()
        if self._client is not None:
            await self._client.connection_pool.disconnect()

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
        wake = self._wake  # start() sets it before it starts this task
        if wake is None:
            raise RuntimeError("the voice bus is not started")
        while True:
            await wake.wait()
            wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            try:
                pipe = self._redis().pipeline(transaction=False)
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
                await asyncio.wait_for(self._redis().ping(), PUBLISH_TIMEOUT_S)
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
        pubsub = self._pubsub
        if pubsub is None:  # Redis lost meanwhile: the subscriber resubscribes every room
            return
        await self._safe(pubsub.subscribe(*[self.channel(r) for r in rooms]))
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
            pubsub = self._redis().pubsub(ignore_subscribe_messages=True)
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
