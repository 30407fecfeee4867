"""The realtime runtime: one object that owns every per-process singleton and background task.

A process has one `Runtime` (`current()`), made from settings on first use:
- the relay registry (room -> local sockets) and its two watches (event-loop lag for
  load shedding, stalled sockets);
- the presence store (Redis or in-process) and the Redis voice bus with its tasks;
- with Redis, the placement directory (realtime/placement.py: heartbeats, room homes);
- the jobs other apps register (`register_job`): the rooms app registers its
  housekeeping loop (heartbeats, dead nodes, expired resume windows; rooms/reaper.py)
  and the speak re-check (`set_speak_check`), so realtime never imports rooms' models
  or services;
- under daphne, the drain of every socket before the reactor stops.

Nothing starts when a module is imported. The background work starts once, on the
running event loop, the first time a socket needs it (`started()`, from the room
consumer): uvicorn runs with `--lifespan off` and daphne has no lifespan, so the first
socket is the one moment both servers (and Channels' test communicator) share. It starts
again only if the event loop changed (a test's new loop). `stop()` ends it all. Tests
make a fresh runtime for each test (`install`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from realtime.bus import VoiceBus
from realtime.placement import Directory, check_node_url
from realtime.presence import NODE_ID, LocalStore, RedisStore, Store
from realtime.redis_client import RedisConfig, drop_channel_layer_connections, follow_master
from realtime.relay import Relay
from realtime.tap import FrameTap

logger = logging.getLogger(__name__)

# A coroutine function: each job becomes a task of its own (loop.create_task).
Job = Callable[["Runtime"], Coroutine[Any, Any, None]]
# {room_id: [user_id, ...]} of the local sockets -> {(room_id, user_id): may speak now}
SpeakCheck = Callable[[dict[int, list[int]]], Awaitable[dict[tuple[int, int], bool]]]

# [room_id, ...] -> {room_id: control message of its running recording} (none: absent)
RecordingCheck = Callable[[list[int]], Awaitable[dict[int, dict[str, Any]]]]

_jobs: dict[str, Job] = {}
_speak_check: SpeakCheck | None = None
_recording_check: RecordingCheck | None = None


def register_job(name: str, job: Job) -> None:
    """Run `job(runtime)` as a background task of every runtime (once per name)."""
    _jobs[name] = job


def set_speak_check(check: SpeakCheck | None) -> None:
    """Where the speak re-check reads who may speak (the rooms app's database)."""
    global _speak_check
    _speak_check = check


def set_recording_check(check: RecordingCheck | None) -> None:
    """Where the re-check reads which rooms record (the rooms app's database)."""
    global _recording_check
    _recording_check = check


class Runtime:
    def __init__(
        self,
        *,
        node_id: str = NODE_ID,
        redis: RedisConfig | str | None = None,
        redis_prefix: str = "vr",
        shed_after_lag_s: float = 0.0,
        stalled_close_s: float = 0.0,
        speak_recheck_s: float = 0.0,
        node_url: str = "",
        node_capacity: int = 5000,
    ) -> None:
        self.node_id = node_id
        self.redis = RedisConfig.of(redis) if redis else None
        # Placement (realtime/placement.py): only with Redis, where the homes are kept.
        self.node_url = check_node_url(node_url)
        self.node_capacity = node_capacity
        self.placement: Directory | None = Directory(redis, redis_prefix) if redis else None
        self.relay = Relay()
        self.store: Store = RedisStore(redis, redis_prefix) if redis else LocalStore()
        self.bus: VoiceBus | None = None
        if redis:
            self.bus = VoiceBus(self.relay, redis=redis, prefix=redis_prefix, node_id=node_id)
        self.relay.bus = self.bus
        self.tap = FrameTap()  # evidence rings and recorders (realtime/tap.py)
        self.relay.tap = self.tap
        self.shed_after_lag_s = shed_after_lag_s
        self.stalled_close_s = stalled_close_s
        self.speak_recheck_s = speak_recheck_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []

    @classmethod
    def from_settings(cls) -> Runtime:
        from django.conf import settings

        return cls(
            redis=settings.REDIS,
            redis_prefix=settings.VOICEROOM_REDIS_PREFIX,
            shed_after_lag_s=settings.VOICEROOM_SHED_AFTER_LAG_MS / 1000,
            stalled_close_s=float(settings.VOICEROOM_STALLED_SOCKET_CLOSE_S),
            speak_recheck_s=float(settings.VOICEROOM_SPEAK_RECHECK_S),
            node_url=settings.VOICEROOM_NODE_URL,
            node_capacity=settings.VOICEROOM_NODE_CAPACITY,
        )

    @property
    def running(self) -> bool:
        return bool(self._tasks) and self._loop is not None and not self._loop.is_closed()

    def start(self) -> None:
        """Start the background work on the running loop; a no-op once it runs there."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._tasks:
            return
        self.cancel()  # what ran on an earlier loop (closed by now)
        self._loop = loop
        self.relay.watch_lag(self.shed_after_lag_s)
        self.relay.watch_stalls(self.stalled_close_s)
        if self.bus is not None:
            self.bus.start()
        tasks: list[asyncio.Task[None]] = [
            loop.create_task(job(self), name=f"runtime:{name}") for name, job in _jobs.items()
        ]
        tasks.append(loop.create_task(self._sweep_evidence(), name="runtime:evidence"))
        if self.speak_recheck_s > 0:
            tasks.append(loop.create_task(self._recheck_speakers(), name="runtime:speak"))
        if self.redis is not None and self.redis.sentinel:
            follow = follow_master(self.redis, self._master_moved)
            tasks.append(loop.create_task(follow, name="runtime:redis-master"))
        self._tasks = tasks
        from realtime.servers import daphne

        daphne.drain_on_shutdown()

    def cancel(self) -> None:
        """Cancel every background task (those of a closed loop are simply dropped)."""
        tasks = self._tasks + self.relay.tasks() + (self.bus.tasks() if self.bus else [])
        self._tasks = []
        for task in tasks:
            if not task.get_loop().is_closed():
                task.cancel()
        self.relay.forget_tasks()
        if self.bus is not None:
            self.bus.forget_tasks()

    async def stop(self) -> None:
        """Stop cleanly: cancel the tasks, wait for them, close the bus's connection."""
        tasks = self._tasks + self.relay.tasks() + (self.bus.tasks() if self.bus else [])
        self.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.bus is not None:
            await self.bus.close()
        self._loop = None

    async def _master_moved(self, address: tuple[str, int]) -> None:
        """Sentinel promoted another master: drop every asyncio connection that may still
        be on the old one (a dead host or a hung master never closes them). Presence and
        the cache need nothing: their commands time out and reconnect through the
        sentinels."""
        if self.bus is not None:
            await self.bus.drop_connections(address)
        from channels.layers import get_channel_layer

        await drop_channel_layer_connections(get_channel_layer(), address)

    async def _sweep_evidence(self) -> None:
        """Forget the evidence of speakers quiet for longer than its window."""
        while True:
            await asyncio.sleep(10.0)
            self.tap.evidence.sweep()

    async def _recheck_speakers(self) -> None:
        """Re-read who may speak and which rooms record, so neither rests on events alone.

        The consumer keeps `Endpoint.can_speak` current from `participant.updated`,
        `seat.updated` and `room.updated` events, which are best effort: one lost (a
        channel layer at capacity, a node restarting) would leave a muted member heard
        for ever. Every `speak_recheck_s` the state is read again from where it is kept
        (membership, seats, presence) and applied, so a muted member is silenced within
        that period plus one read, whatever happened to the event. A lost
        `recording.control` is made good the same way (`Recordings.reconcile`).
        """
        every = self.speak_recheck_s
        while True:
            await asyncio.sleep(every)
            rooms = {room_id: list(room) for room_id, room in self.relay.rooms.items()}
            await self._recheck_recordings(rooms)
            check = _speak_check
            if check is None or not rooms:
                continue
            try:
                allowed = await check(rooms)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is down: keep what the events said
                logger.warning("speak re-check failed; retrying", exc_info=True)
                continue
            for room_id, users in rooms.items():
                for user_id in users:
                    ep = self.relay.local(room_id, user_id)
                    if ep is not None:
                        ep.can_speak = allowed.get((room_id, user_id), False)

    async def _recheck_recordings(self, rooms: dict[int, list[int]]) -> None:
        """Rooms with local sockets or a local recorder: start or stop their recorders
        as the database says (an event since the read wins)."""
        check = _recording_check
        recordings = self.tap.recordings
        room_ids = sorted(set(rooms) | set(recordings.active))
        if check is None or not room_ids:
            return
        read_at = time.monotonic()
        try:
            controls = await check(room_ids)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("recording re-check failed; retrying", exc_info=True)
            return
        for room_id in room_ids:
            recordings.reconcile(room_id, controls.get(room_id), read_at)
        recordings.forget_changes(read_at - 60.0)


_current: Runtime | None = None
_lock = threading.Lock()


def current() -> Runtime:
    """This process's runtime, made from settings on first use (any thread)."""
    global _current
    rt = _current
    if rt is None:
        with _lock:
            if _current is None:
                _current = Runtime.from_settings()
            rt = _current
    return rt


def started() -> Runtime:
    """`current()`, with its background work running on this event loop."""
    rt = current()
    rt.start()
    return rt


def install(rt: Runtime | None) -> Runtime | None:
    """Make `rt` this process's runtime (None: make one from settings when next needed);
    returns the one it replaces, whose tasks are cancelled. Tests use a fresh one each."""
    global _current
    with _lock:
        old, _current = _current, rt
    if old is not None and old is not rt:
        old.cancel()
    return old
