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
from rooms.relay import relay

logger = logging.getLogger(__name__)

_task: asyncio.Task | None = None
_loop: asyncio.AbstractEventLoop | None = None


ABSENT_EVERY_S = 30.0
# The first pass waits a full period after start: members of an embedded node that just
# restarted get time to reconnect before anyone is released.
_last_absent_reap = time.time()


def tick(now: float | None = None, sequences: list[tuple[int, int, str, int]] = ()) -> None:
    """One round of housekeeping (synchronous; runs in a worker thread)."""
    global _last_absent_reap
    store = presence.store()
    now = time.time() if now is None else now
    store.heartbeat(presence.NODE_ID, now)
    for room_id, user_id, channel, seq in sequences:
        services.participant_voice_seq(room_id=room_id, user_id=user_id, channel=channel, seq=seq)
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
    if now - _last_absent_reap >= ABSENT_EVERY_S:
        _last_absent_reap = now
        # Joined but never connected (tickets expired), or lost with an embedded node.
        grace = settings.VOICEROOM_TICKET_TTL_S + settings.VOICEROOM_RESUME_WINDOW_S + 30
        ended = services.members_absent_reap(older_than_s=grace)
        if ended:
            logger.info("ended %d memberships of members who never came or came back", ended)


async def _run() -> None:
    interval = min(1.0, float(settings.VOICEROOM_NODE_HEARTBEAT_S))
    while True:
        try:
            await database_sync_to_async(tick)(sequences=relay.unsaved_sequences())
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
