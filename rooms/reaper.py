"""The per-process housekeeping loop: node heartbeats (presence and placement), dead nodes
(their participants and their rooms), expired resume windows;
and the speak re-check's database read.

Every node runs one: the rooms app registers `run` as a job of the realtime runtime
(rooms/apps.py), which starts it with the rest of its background work. Work is claimed
atomically in the presence store (a dead node's heartbeat entry, an expired deadline),
so when several nodes reap at once each item is handled exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from channels.db import database_sync_to_async
from django.conf import settings

from realtime import presence
from realtime.relay import Relay
from realtime.runtime import Runtime
from rooms import services
from rooms.models import Membership, Room, Seat
from rooms.policy import may_speak

logger = logging.getLogger(__name__)

ABSENT_EVERY_S = 30.0
SPOOL_EVERY_S = 60.0  # spooled recording tracks whose writer died: uploaded this often
_last_beat: float | None = None  # time.monotonic() of this process's last heartbeat
_judge_others_after = 0.0
RETRY_TIMEOUT_S = 1.0  # a resume window whose timeout failed is tried again this much later
# The first pass waits a full period after start: members of an embedded node that just
# restarted get time to reconnect before anyone is released.
_last_absent_reap = time.time()


def tick(
    now: float | None = None,
    sequences: Sequence[tuple[int, int, str, int]] = (),
    sockets: int = 0,
) -> bool:
    """One round of housekeeping (synchronous; runs in a worker thread).

    Returns True when this node's heartbeat entry was missing: presence may have lost
    this node's sockets (Redis restarted empty, or this node was declared dead), and the
    caller must reattach them (`services.participants_reattach`).
    """
    global _last_absent_reap, _last_beat, _judge_others_after
    store = presence.store()
    now = time.time() if now is None else now
    dead_after = float(settings.VOICEROOM_NODE_DEAD_AFTER_S)
    lost = store.heartbeat(presence.NODE_ID, now)
    services.placement_beat(sockets=sockets, now=now)
    beat = time.monotonic()
    if _last_beat is None or beat - _last_beat > dead_after / 2:
        # Our own heartbeats stopped for a while (Redis down or hung, or this process
        # stalled), or this is our first: the other nodes' heartbeats may have been held
        # up as well, as far as we can tell. Declare nobody dead until they have had
        # time to beat again.
        _judge_others_after = beat + dead_after
    _last_beat = beat
    if lost:
        # Give every node time to reattach its sockets before members who look absent
        # are released.
        _last_absent_reap = now
    for room_id, user_id, channel, seq in sequences:
        services.participant_voice_seq(room_id=room_id, user_id=user_id, channel=channel, seq=seq)
    if beat >= _judge_others_after:
        for node in store.claim_dead_nodes(now, dead_after):
            logger.warning(
                "node %s stopped heartbeating; its participants enter their resume window", node
            )
            services.participants_detached(sessions=store.detach_node(node))
            # Its rooms get live homes now, so `ws_url` names a live node before their
            # members come back for it (contract v1.1: within 10 s of the death).
            services.rooms_rehome(node=node, now=now)
    for room_id, user_id, session_id in store.pop_expired(now):
        try:
            services.participant_timeout(room_id=room_id, user_id=user_id, session_id=session_id)
        except Exception:
            logger.exception("timing out user %s in room %s failed", user_id, room_id)
            # The claim removed its deadline: put it back, or the session would stay in
            # the room for ever once the database (or Redis) answers again.
            try:
                store.defer(room_id, user_id, session_id, now + RETRY_TIMEOUT_S)
            except Exception:
                logger.warning("could not put back the deadline", exc_info=True)
    if now - _last_absent_reap >= ABSENT_EVERY_S:
        _last_absent_reap = now
        # Joined but never connected (tickets expired), or lost with an embedded node.
        grace = settings.VOICEROOM_TICKET_TTL_S + settings.VOICEROOM_RESUME_WINDOW_S + 30
        ended = services.members_absent_reap(older_than_s=grace)
        if ended:
            logger.info("ended %d memberships of members who never came or came back", ended)
    return lost


def _local_sockets(relay: Relay) -> list[tuple[int, int, str, int]]:
    return [
        (ep.room_id, ep.user_id, ep.channel, ep.seq)
        for room in relay.rooms.values()
        for ep in room.values()
        if ep.channel
    ]


async def run(rt: Runtime) -> None:
    """The housekeeping loop of one runtime (a job: realtime.runtime.register_job)."""
    relay = rt.relay
    interval = min(1.0, float(settings.VOICEROOM_NODE_HEARTBEAT_S))
    reattach = False
    pruned = time.monotonic()
    spool_swept: float | None = None
    while True:
        if spool_swept is None or time.monotonic() - spool_swept >= SPOOL_EVERY_S:
            spool_swept = time.monotonic()
            await _recover_spool()
        try:
            lost = await database_sync_to_async(tick)(
                sequences=relay.unsaved_sequences(),
                sockets=sum(len(room) for room in relay.rooms.values()),
            )
            if time.monotonic() - pruned > ABSENT_EVERY_S:
                pruned = time.monotonic()
                # Memory only: the sessions kept for `reattach`, of sockets now gone.
                rt.store.keep_only({s[2] for s in _local_sockets(relay)})
            if lost or reattach:
                # Sockets may have come or gone unrecorded, or presence lost them.
                await database_sync_to_async(services.participants_reattach)(
                    node=rt.node_id, sockets=_local_sockets(relay)
                )
                reattach = False
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("presence housekeeping failed; retrying", exc_info=True)
            reattach = True
        await asyncio.sleep(interval)


async def _recover_spool() -> None:
    try:
        await database_sync_to_async(services.recording_spool_recover)()
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.warning("spooled recording tracks could not be recovered", exc_info=True)


def speak_states(rooms: dict[int, list[int]]) -> dict[tuple[int, int], bool]:
    """Whether each of these participants may speak now, read from the database (role,
    mute, seat, seat mutes, seat count) and presence (self-mute): the speak re-check's
    source (realtime.runtime), so the relay's gate holds even when an event is lost.
    Three queries and one presence read (a single Redis round trip) for all the rooms: it
    runs every VOICEROOM_SPEAK_RECHECK_S for every local socket, so its cost grows with
    the sockets a node holds (docs/benchmarks.md, issue 13)."""
    room_ids = list(rooms)
    seat_counts = dict(
        Room.objects.filter(pk__in=room_ids, status=Room.Status.OPEN).values_list(
            "pk", "seat_count"
        )
    )
    muted_seats = set(
        Seat.objects.filter(room_id__in=room_ids, muted=True).values_list("room_id", "index")
    )
    members = {
        (room_id, user_id): (muted, seat)
        # Every active member of these rooms, not `user_id__in` the local ones: a room holds
        # at most its capacity, and Django prepares each value of an IN list one by one,
        # which cost more than the few extra rows of members on other nodes.
        for room_id, user_id, muted, seat in Membership.objects.filter(
            room_id__in=room_ids, active=True, banned=False
        ).values_list("room_id", "user_id", "muted", "seat")
    }
    sessions = presence.store().sessions_of_rooms(room_ids)
    allowed: dict[tuple[int, int], bool] = {}
    for room_id, user_ids in rooms.items():
        seat_count = seat_counts.get(room_id)
        self_muted = {s.user_id: s.self_muted for s in sessions[room_id]}
        for user_id in user_ids:
            member = members.get((room_id, user_id))
            if seat_count is None or member is None or user_id not in self_muted:
                allowed[(room_id, user_id)] = False
                continue
            muted, seat = member
            allowed[(room_id, user_id)] = may_speak(
                muted=muted,
                self_muted=self_muted[user_id],
                seat=seat,
                seat_count=seat_count,
                seat_muted=(room_id, seat) in muted_seats,
            )
    return allowed


async def speak_check(rooms: dict[int, list[int]]) -> dict[tuple[int, int], bool]:
    """`speak_states` from the event loop (the runtime's speak re-check calls this)."""
    return await database_sync_to_async(speak_states)(rooms)


async def recording_check(room_ids: list[int]) -> dict[int, dict]:
    """`services.recording_controls` from the event loop (the runtime's re-check)."""
    return await database_sync_to_async(services.recording_controls)(room_ids=room_ids)
