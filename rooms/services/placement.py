"""Placement: where a room's socket lives (`ws_url`), and the heartbeat that feeds it.

The policy is realtime.placement's (pure, shared with the capacity simulation); this
module wires it to the node's runtime, presence and settings. With no Redis, or no
VOICEROOM_NODE_URL on this node, there is no placement: `ws_url` is the path and any
node serves any room, as before. A Redis error never fails a join or a ticket: the
answer falls back to the path (relative to the REST origin the client already uses).
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from django.conf import settings
from redis.exceptions import RedisError

from realtime import presence, runtime
from realtime.placement import NodeInfo, ws_url_for

logger = logging.getLogger(__name__)


def _dead_after() -> float:
    return float(settings.VOICEROOM_NODE_DEAD_AFTER_S)


def room_ws_url(*, room_id: int, now: float | None = None, place: bool = True) -> str:
    """Where the room's sockets belong now: its home node's `ws_url`, the room placed
    (or placed again, if its home died or is full while the room is idle) first.

    With `place=False` (a closed room, which nobody can join) nothing is placed: the
    answer is its live home if it still has one, else the path."""
    rt = runtime.current()
    if rt.placement is None or not rt.node_url:
        return ws_url_for(room_id, None)
    now = time.time() if now is None else now
    try:
        if not place:
            node = rt.placement.home_of(room_id)
            home = rt.placement.node(node) if node else None
            alive = home is not None and home.alive(now, _dead_after())
            return ws_url_for(room_id, home.url if home is not None and alive else None)
        sessions = presence.store().sessions(room_id)
        # Where the room's members are connected now: a room that must be placed again
        # goes, if it can, where most of them already are (no one has to move).
        prefer = Counter(s.node for s in sessions if s.connected)
        home = rt.placement.place(
            room_id, now=now, dead_after=_dead_after(), idle=not sessions, prefer=prefer
        )
    except RedisError:
        logger.warning("placement unavailable for room %s; answering the path", room_id)
        return ws_url_for(room_id, None)
    return ws_url_for(room_id, home.url if home else None)


def room_unplace(*, room_id: int) -> None:
    """A closed room has no home: it leaves its node's list, so it is not placed again
    when that node dies. Reopened, it is placed again at its next join, ticket or
    detail. A Redis error is only logged."""
    rt = runtime.current()
    if rt.placement is None:
        return
    try:
        rt.placement.forget_room(room_id)
    except RedisError:
        logger.warning("placement unavailable: room %s keeps its home entry", room_id)


def placement_beat(*, sockets: int, now: float | None = None) -> None:
    """This node's placement heartbeat: its public URL, sockets and capacity."""
    rt = runtime.current()
    if rt.placement is None or not rt.node_url:
        return
    rt.placement.beat(
        NodeInfo(
            node=rt.node_id,
            url=rt.node_url,
            seen=time.time() if now is None else now,
            sockets=sockets,
            capacity=rt.node_capacity,
        )
    )


def rooms_rehome(*, node: str, now: float | None = None) -> int:
    """A node was claimed dead: give each room it was home to a live home now (rather
    than at the next join or ticket). Returns the number of rooms placed again."""
    rt = runtime.current()
    if rt.placement is None:
        return 0
    rt.placement.forget_node(node)
    moved = 0
    for room_id in rt.placement.rooms_on(node):
        room_ws_url(room_id=room_id, now=now)
        moved += 1
    if moved:
        logger.warning("node %s is dead: %d rooms placed on live nodes", node, moved)
    return moved
