"""Reads. Live state (who is online) comes from realtime.presence; stored state from the
database."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from realtime import presence
from realtime.presence import Session
from rooms import contract, policy
from rooms.models import (
    Membership,
    Recording,
    RecordingTrack,
    Report,
    Room,
    Seat,
    SeatRequest,
)
from voiceroom.errors import Forbidden, NotFound


def room_get(*, room_id: int | str) -> Room:
    try:
        return Room.objects.select_related("owner").get(pk=int(room_id))
    except (Room.DoesNotExist, ValueError, TypeError, OverflowError):
        raise NotFound("No such room.") from None


def room_list(*, status: str | None = None) -> QuerySet[Room]:
    qs = Room.objects.select_related("owner").order_by("-created_at", "-id")
    if status:
        qs = qs.filter(status=status)
    return qs


def membership_find(*, room_id: int, user_id: int) -> Membership | None:
    return (
        Membership.objects.select_related("user").filter(room_id=room_id, user_id=user_id).first()
    )


def membership_get(*, room_id: int, user_id: int | str) -> Membership:
    try:
        found = membership_find(room_id=room_id, user_id=int(user_id))
    except (ValueError, TypeError, OverflowError):
        found = None
    if found is None:
        raise NotFound("No such member in this room.")
    return found


def member_list(*, room_id: int) -> QuerySet[Membership]:
    """Members now in the room, and the banned (so moderators can find whom to unban)."""
    from django.db.models import Q

    return (
        Membership.objects.select_related("user")
        .filter(Q(active=True) | Q(banned=True), room_id=room_id)
        .order_by("joined_at", "id")
    )


def member_list_visible(*, room: Room, viewer: User) -> QuerySet[Membership]:
    """`member_list` for a viewer who may see it (rooms.policy.may_see_members)."""
    if not policy.may_see_members(room=room, user=viewer):
        raise Forbidden("Only members of the room and staff may list its members.")
    return member_list(room_id=room.pk)


def online_count(*, room_id: int) -> int:
    return presence.store().counts([room_id]).get(room_id, 0)


_online_count = online_count  # room_dict's own, which takes an argument of that name


def online_counts(*, room_ids: list[int]) -> dict[int, int]:
    return presence.store().counts(list(room_ids))


def online_user_ids(*, room_id: int) -> set[int]:
    return {s.user_id for s in presence.store().sessions(room_id)}


# --- the payloads of rooms.contract: each shape is built here and only here ---------------


def _drf_datetime(moment: datetime) -> str:
    """A datetime as the REST API always wrote it (DRF's ISO 8601: the current time zone,
    microseconds when there are any, `Z` for UTC), so REST and WebSocket agree."""
    text = moment.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def room_dict(room: Room, *, online_count: int | None = None) -> contract.Room:
    """The room as the wire shows it. `online_count` reads presence when not given: call
    this outside transactions that hold row locks (services do, after commit)."""
    owner = room.owner
    return {
        "id": room.pk,
        "name": room.name,
        "topic": room.topic,
        "owner": {"id": owner.pk, "username": owner.username, "display_name": owner.display_name},
        "status": room.status,
        "capacity": room.capacity,
        "seat_count": room.seat_count,
        "codec": room.codec,
        "is_private": room.is_private,
        "online_count": (
            online_count if online_count is not None else _online_count(room_id=room.pk)
        ),
        "created_at": _drf_datetime(room.created_at),
        "recording": room.recording,
    }


def room_codec(room: Room) -> str:
    """The room's codec ("opus" or "pcm16"), as evidence and recordings are written."""
    return room.codec


def seat_dict(seat: Seat, user_id: int | None) -> contract.Seat:
    return {"index": seat.index, "user_id": user_id, "locked": seat.locked, "muted": seat.muted}


def participant_dict(membership: Membership, session: Session) -> contract.Participant:
    user = membership.user
    return {
        "user_id": user.pk,
        "username": user.username,
        "display_name": user.display_name or user.username,
        "role": membership.role,
        "muted": membership.muted,
        "self_muted": session.self_muted,
        "seat": membership.seat,
        "connected": session.connected,
    }


def participant_list(*, room_id: int) -> list[contract.Participant]:
    sessions = {s.user_id: s for s in presence.store().sessions(room_id)}
    if not sessions:
        return []
    memberships = Membership.objects.select_related("user").filter(
        room_id=room_id, user_id__in=list(sessions)
    )
    return [participant_dict(m, sessions[m.user_id]) for m in memberships]


def seat_list(*, room: Room) -> list[contract.Seat]:
    seated = dict(
        Membership.objects.filter(room=room, seat__isnull=False).values_list("seat", "user_id")
    )
    return [
        seat_dict(seat, seated.get(seat.index))
        for seat in Seat.objects.filter(room=room, index__lt=room.seat_count)
    ]


def seat_get(*, room: Room, index: int) -> contract.Seat:
    seat = Seat.objects.get(room=room, index=index)
    holder = (
        Membership.objects.filter(room=room, seat=index).values_list("user_id", flat=True).first()
    )
    return seat_dict(seat, holder)


# --- moderators and seat requests -------------------------------------------------------


def moderator_user_ids(*, room_id: int) -> list[int]:
    """The owner and admins who are in the room now (active members)."""
    return list(
        Membership.objects.filter(
            room_id=room_id, active=True, role__in=policy.MODERATOR_ROLES
        ).values_list("user_id", flat=True)
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seat_request_dict(request: SeatRequest) -> contract.SeatRequest:
    return {"user_id": request.user_id, "index": request.index, "ts": _iso(request.created_at)}


def seat_request_list(*, room_id: int, user_id: int | None = None) -> list[contract.SeatRequest]:
    """Pending seat requests, oldest first; only `user_id`'s when given."""
    qs = SeatRequest.objects.filter(room_id=room_id).order_by("created_at", "id")
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    return [seat_request_dict(r) for r in qs]


def seat_request_list_visible(*, room: Room, viewer: User) -> list[contract.SeatRequest]:
    """The queue, for whom rooms.policy.may_see_seat_requests allows."""
    if not policy.may_see_seat_requests(room=room, user=viewer):
        raise Forbidden("Only the room's owner, its admins or staff may see seat requests.")
    return seat_request_list(room_id=room.pk)


# --- reports and recordings ---------------------------------------------------------------


def report_list_visible(*, room: Room, viewer: User) -> QuerySet[Report]:
    """The room's reports, newest first, for its owner, admins and staff."""
    if not policy.may_review(room=room, user=viewer):
        raise Forbidden("Only the room's owner, its admins or staff may see its reports.")
    return (
        Report.objects.select_related("reporter", "reported")
        .filter(room=room)
        .order_by("-created_at", "-id")
    )


def recording_list_visible(*, room: Room, viewer: User) -> QuerySet[Recording]:
    if not policy.may_review(room=room, user=viewer):
        raise Forbidden("Only the room's owner, its admins or staff may see its recordings.")
    return (
        Recording.objects.filter(room=room)
        .prefetch_related("tracks__user")
        .order_by("-started_at", "-id")
    )


def track_measure(track: RecordingTrack) -> tuple[int, float]:
    """(bytes, seconds) of a track: as stored when it was closed; measured from its file
    while it grows or when its node died before closing it."""
    if track.finished:
        return track.bytes, track.duration_s
    from django.core.files.storage import default_storage

    from realtime.ogg import RATE, last_granule

    try:
        name = track.file.name or ""
        size = default_storage.size(name)
        with default_storage.open(name, "rb") as f:
            f.seek(max(0, size - 65536))
            tail = f.read()
    except OSError:
        return 0, 0.0
    granule = last_granule(tail)
    return size, max(0.0, (granule - 312) / RATE) if granule else 0.0
