"""Reads for the admin's Live page: the rooms people are in now, busiest first.

For each live room: its participants (connected, and in their resume window), the nodes
their sockets are on, who may speak now (the relay's own rule, rooms.policy.may_speak,
as the speak re-check reads it), whether the room is being recorded (a `Recording`
without `ended_at`) and how many of its reports are open.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import Count

from realtime import presence
from rooms.models import Membership, Recording, Report, Room
from rooms.reaper import speak_states

LIVE_LIMIT = 100
_CHUNK = 500


def _recording(room_ids: list[int]) -> set[int]:
    return set(
        Recording.objects.filter(room_id__in=room_ids, ended_at__isnull=True).values_list(
            "room_id", flat=True
        )
    )


def _open_reports(room_ids: list[int]) -> dict[int, int]:
    return dict(
        Report.objects.filter(room_id__in=room_ids, status=Report.Status.OPEN)
        .order_by()
        .values_list("room_id")
        .annotate(n=Count("id"))
    )


def live_rooms(*, limit: int = LIVE_LIMIT) -> list[dict[str, Any]]:
    """The open rooms with participants, most participants first (at most `limit`)."""
    store = presence.store()
    open_ids = list(Room.objects.filter(status=Room.Status.OPEN).values_list("pk", flat=True))
    counts: dict[int, int] = {}
    for start in range(0, len(open_ids), _CHUNK):
        counts.update(store.counts(open_ids[start : start + _CHUNK]))
    busiest = sorted((n, room_id) for room_id, n in counts.items() if n > 0)
    busiest = busiest[::-1][:limit]
    if not busiest:
        return []
    room_ids = [room_id for _, room_id in busiest]
    rooms = Room.objects.select_related("owner").in_bulk(room_ids)
    sessions = {room_id: store.sessions(room_id) for room_id in room_ids}
    allowed = speak_states(
        {room_id: [s.user_id for s in sessions[room_id] if s.connected] for room_id in room_ids}
    )
    names = dict(
        Membership.objects.filter(
            room_id__in=room_ids,
            user_id__in={s.user_id for found in sessions.values() for s in found},
        ).values_list("user_id", "user__username")
    )
    recording = _recording(room_ids)
    reports = _open_reports(room_ids)
    out = []
    for room_id in room_ids:
        room = rooms.get(room_id)
        if room is None:
            continue
        found = sessions[room_id]
        connected = [s for s in found if s.connected]
        speakers = sorted(
            names.get(s.user_id, f"#{s.user_id}")
            for s in connected
            if allowed.get((room_id, s.user_id))
        )
        row: dict[str, Any] = {
            "id": room_id,
            "name": room.name,
            "owner": room.owner.username,
            "participants": len(found),
            "connected": len(connected),
            "resuming": len(found) - len(connected),
            "nodes": dict(sorted(Counter(s.node for s in connected).items())),
            "speakers": speakers,
            "recording": room_id in recording,
            "open_reports": reports.get(room_id, 0),
        }
        out.append(row)
    out.sort(key=lambda r: (-r["participants"], r["id"]))
    return out
