"""The per-process housekeeping loop: node heartbeats, dead nodes, expired resume windows.

Every node runs one. Work is claimed atomically in the presence store (a dead node's
heartbeat entry, an expired deadline), so when several nodes reap at once each item is
handled exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.db import database_sync_to_async
from django.conf import settings

from rooms import presence, services

logger = logging.getLogger(__name__)

_task: asyncio.Task | None = None
_loop: asyncio.AbstractEventLoop | None = None


def tick(now: float | None = None) -> None:
    """One round of housekeeping (synchronous; runs in a worker thread)."""
    store = presence.store()
    now = time.time() if now is None else now
    store.heartbeat(presence.NODE_ID, now)
    for node in store.claim_dead_nodes(now, float(settings.VOICEROOM_NODE_DEAD_AFTER_S)):
        logger.warning(
            "node %s stopped heartbeating; its participants enter their resume window", node
        )
        services.participants_detached(sessions=store.detach_node(node))
    for room_id, user_id, session_id in store.pop_expired(now):
        try:
            services.participant_timeout(room_id=room_id, user_id=user_id, session_id=session_id)
        except Exception:
            logger.exception("timing out user %s in room %s failed", user_id, room_id)


async def _run() -> None:
    interval = min(1.0, float(settings.VOICEROOM_NODE_HEARTBEAT_S))
    while True:
        try:
            await database_sync_to_async(tick)()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("presence housekeeping failed; retrying", exc_info=True)
        await asyncio.sleep(interval)


def ensure_running() -> None:
    global _task, _loop
    loop = asyncio.get_running_loop()
    if _task is not None and not _task.done() and _loop is loop:
        return
    _loop = loop
    _task = loop.create_task(_run())


async def stop() -> None:
    global _task
    if _task is not None:
        _task.cancel()
        try:
            await _task
        except (asyncio.CancelledError, Exception):
            pass
        _task = None
