"""Writes. Every change of a room, a membership or a seat goes through a function here.

REST views, WebSocket frames, admin actions and management commands call these and
nothing else, so a kick is one thing however it is made. Each service checks policy,
writes (with the audit log where a moderator acted), then broadcasts through
rooms.events after the transaction commits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User, credentials_epoch
from realtime import presence
from rooms import events, policy, selectors
from rooms.api.serializers import RoomSerializer, seat_dict
from rooms.models import (
    CAPACITY_MAX,
    CAPACITY_MIN,
    SEATS_MAX,
    SEATS_MIN,
    Membership,
    ModerationAction,
    Room,
    Seat,
    SeatRequest,
)
from voiceroom.errors import ApplicationError, Conflict, Forbidden, NotFound

Role = Membership.Role
Action = ModerationAction.Action

# WebSocket close codes of the contract.
CLOSE_LEFT = 4000
CLOSE_AUTH = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_UNKNOWN_ROOM = 4004
CLOSE_POLICY = 4008
CLOSE_FULL = 4009
CLOSE_KICKED = 4010
CLOSE_ROOM_CLOSED = 4011
CLOSE_REPLACED = 4012
CLOSE_TOO_SLOW = 4014  # sent by realtime.relay (it does not import this module)
CLOSE_TOO_MANY_SOCKETS = 4029
CLOSE_UNAVAILABLE = 4503  # the database or Redis is down: try again shortly


# --- helpers -------------------------------------------------------------------------


def _room_payload(room: Room) -> dict:
    return dict(RoomSerializer(room).data)


def _audit(
    *,
    room: Room,
    actor: User | None,
    action: str,
    target: User | None = None,
    reason: str = "",
    detail: dict | None = None,
) -> None:
    ModerationAction.objects.create(
        room=room, actor=actor, target=target, action=action, reason=reason, detail=detail or {}
    )


def _check_range(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApplicationError(f"{name} must be an integer from {low} to {high}.", code="invalid")
    return value


def _lock_room(room_id: int) -> Room:
    try:
        return Room.objects.select_for_update().select_related("owner").get(pk=room_id)
    except Room.DoesNotExist:
        raise NotFound("No such room.") from None


def _lock_member(room: Room, user_id: int) -> Membership:
    found = (
        Membership.objects.select_for_update()
        .select_related("user")
        .filter(room=room, user_id=user_id)
        .first()
    )
    if found is None:
        raise NotFound("No such member in this room.")
    return found


def _participant_changed(membership: Membership) -> None:
    """Tell the room a participant's stored state changed (role, mute, seat)."""
    session = presence.store().get(membership.room_id, membership.user_id)
    if session is not None:
        events.participant_updated(
            membership.room_id, selectors.participant_dict(membership, session)
        )


def _seat_changed(room: Room, index: int) -> None:
    if index < room.seat_count:
        events.seat_updated(room.pk, selectors.seat_get(room=room, index=index))


def _ensure_seats(room: Room) -> None:
    have = set(Seat.objects.filter(room=room).values_list("index", flat=True))
    Seat.objects.bulk_create(
        [Seat(room=room, index=i) for i in range(room.seat_count) if i not in have]
    )


def _end_presence(membership: Membership, *, reason: str, close_code: int | None) -> None:
    """The member is out of the room: free the seat, forget the session, tell everyone."""
    room = membership.room
    freed = membership.seat
    membership.seat = None
    membership.active = False
    membership.save(update_fields=["seat", "active", "muted", "banned", "ban_reason", "updated_at"])
    session = presence.store().remove(room.pk, membership.user_id)
    if close_code is not None:
        events.member_close(room.pk, membership.user_id, close_code, reason)
    if session is not None:
        events.participant_left(room.pk, membership.user_id, reason)
    if freed is not None:
        _seat_changed(room, freed)
    _seat_request_drop(room, membership.user_id, reason=reason)


def _seat_request_drop(room: Room, user_id: int, *, reason: str) -> bool:
    """Cancel the member's pending seat request, if any, and tell the moderators why."""
    deleted, _ = SeatRequest.objects.filter(room=room, user_id=user_id).delete()
    if deleted:
        events.seat_request_cancelled(room.pk, user_id, reason)
    return bool(deleted)


# --- rooms ---------------------------------------------------------------------------


@transaction.atomic
def room_create(
    *,
    owner: User,
    name: str,
    topic: str = "",
    capacity: int = 50,
    seat_count: int = 8,
    password: str | None = None,
) -> Room:
    _check_range("capacity", capacity, CAPACITY_MIN, CAPACITY_MAX)
    _check_range("seat_count", seat_count, SEATS_MIN, SEATS_MAX)
    room = Room(owner=owner, name=name, topic=topic or "", capacity=capacity, seat_count=seat_count)
    room.set_password(password)
    room.full_clean(exclude=["password_hash"])
    room.save()
    _ensure_seats(room)
    Membership.objects.create(room=room, user=owner, role=Role.OWNER)
    _audit(room=room, actor=owner, action=Action.ROOM_CREATE)
    return room


_UNSET = object()


@transaction.atomic
def room_update(
    *,
    room: Room,
    actor: User,
    name: str | None = None,
    topic: str | None = None,
    capacity: int | None = None,
    seat_count: int | None = None,
    password: object = _UNSET,
) -> Room:
    """Change a room's fields; the room's sockets get `room.updated`.

    Changing `seat_count` keeps every member whose seat still exists on it; members on
    seats that disappear are unseated, and each seat so freed gets a `seat.updated`
    (user_id null), as does each new seat. Removed seats forget their lock and mute, so
    they come back empty and open if the count grows again.
    """
    policy.require_moderator(room=room, actor=actor, permission=policy.CHANGE_ROOM)
    room = _lock_room(room.pk)
    changed: dict[str, object] = {}
    if name is not None:
        room.name = name
        changed["name"] = name
    if topic is not None:
        room.topic = topic
        changed["topic"] = topic
    if capacity is not None:
        room.capacity = _check_range("capacity", capacity, CAPACITY_MIN, CAPACITY_MAX)
        changed["capacity"] = capacity
    old_seats = room.seat_count
    if seat_count is not None:
        room.seat_count = _check_range("seat_count", seat_count, SEATS_MIN, SEATS_MAX)
        changed["seat_count"] = seat_count
    if password is not _UNSET:
        assert password is None or isinstance(password, str)  # _UNSET is ruled out above
        room.set_password(password or None)
        changed["password"] = "set" if password else "removed"
    room.full_clean(exclude=["password_hash"])
    room.save()
    if changed:
        _audit(room=room, actor=actor, action=Action.ROOM_UPDATE, detail=changed)
        # First, so that clients know the new seat count before the seat events.
        events.room_updated(room.pk, _room_payload(room))
    if seat_count is not None and seat_count != old_seats:
        _seats_resized(room, old_seats)
    return room


def _seats_resized(room: Room, old_count: int) -> None:
    new_count = room.seat_count
    _ensure_seats(room)
    if new_count > old_count:
        for index in range(old_count, new_count):
            _seat_changed(room, index)
        return
    unseated = list(
        Membership.objects.select_for_update()
        .select_related("user")
        .filter(room=room, seat__gte=new_count)
        .order_by("seat")
    )
    freed = [m.seat for m in unseated if m.seat is not None]  # all are: seat__gte above
    for membership in unseated:
        membership.seat = None
        membership.save(update_fields=["seat", "updated_at"])
    Seat.objects.filter(room=room, index__gte=new_count).update(locked=False, muted=False)
    for index in freed:
        seat = Seat.objects.get(room=room, index=index)
        events.seat_updated(room.pk, seat_dict(seat, None))
    for membership in unseated:
        _participant_changed(membership)
    if new_count == 0:
        for user_id in SeatRequest.objects.filter(room=room).values_list("user_id", flat=True):
            _seat_request_drop(room, user_id, reason="no_seats")


@transaction.atomic
def room_close(*, room: Room, actor: User | None) -> Room:
    """Close the room: every socket gets room.closed then close 4011; joins are refused."""
    if actor is not None:
        policy.require_owner(room=room, actor=actor, permission=policy.CHANGE_ROOM)
    room = _lock_room(room.pk)
    if room.status == Room.Status.CLOSED:
        return room
    room.status = Room.Status.CLOSED
    room.save(update_fields=["status", "updated_at"])
    Membership.objects.filter(room=room).exclude(seat=None).update(seat=None)
    Membership.objects.filter(room=room, active=True).update(active=False)
    # Every socket is about to close; the requests go without an event each.
    SeatRequest.objects.filter(room=room).delete()
    for session in presence.store().sessions(room.pk):
        presence.store().remove(room.pk, session.user_id)
    _audit(room=room, actor=actor, action=Action.ROOM_CLOSE)
    events.room_updated(room.pk, _room_payload(room))
    events.room_closed(room.pk)
    return room


@transaction.atomic
def room_open(*, room: Room, actor: User | None) -> Room:
    if actor is not None:
        policy.require_owner(room=room, actor=actor, permission=policy.CHANGE_ROOM)
    room = _lock_room(room.pk)
    if room.status == Room.Status.OPEN:
        return room
    room.status = Room.Status.OPEN
    room.save(update_fields=["status", "updated_at"])
    _audit(room=room, actor=actor, action=Action.ROOM_OPEN)
    events.room_updated(room.pk, _room_payload(room))
    return room


# --- joining, tickets, leaving ----------------------------------------------------------


@dataclass
class JoinResult:
    room: Room
    membership: Membership
    ticket: str
    ticket_expires_in: int


@transaction.atomic
def member_join(*, room: Room, user: User, password: str | None = None) -> JoinResult:
    """Become a member of an open room (within capacity) and get a ticket for the socket.

    The room row is locked, so concurrent joins cannot push the room past capacity.
    """
    room = _lock_room(room.pk)
    membership = Membership.objects.select_for_update().filter(room=room, user=user).first()
    if membership is not None and membership.banned:
        raise Forbidden("You are banned from this room.", code="banned")
    if room.status != Room.Status.OPEN:
        raise Conflict("The room is closed.", code="room_closed")
    is_owner = room.owner_id == user.pk
    needs_password = not policy.may_enter_without_password(room=room, user=user)
    if needs_password and not room.check_password(password):
        raise Forbidden("Wrong or missing room password.", code="bad_password")
    if membership is None or not membership.active:
        present = Membership.objects.filter(room=room, active=True).count()
        if present >= room.capacity:
            raise Conflict("The room is full.", code="room_full")
    if membership is None:
        membership = Membership.objects.create(
            room=room, user=user, role=Role.OWNER if is_owner else Role.MEMBER
        )
    else:
        # Rejoining (or joining again while a member) restarts the absent-member clock.
        membership.active = True
        membership.save(update_fields=["active", "updated_at"])
    ticket, ttl = ticket_issue(room=room, user=user)
    membership.user = user
    return JoinResult(room=room, membership=membership, ticket=ticket, ticket_expires_in=ttl)


_TICKET_SALT = "voiceroom.rooms.ticket"


def ticket_issue(*, room: Room, user: User) -> tuple[str, int]:
    """A signed, single-use ticket to open one socket to this room within the TTL.

    It carries the user's credentials epoch: once they sign out, change their password
    or are deactivated, the socket refuses it (participant_connect)."""
    ttl = int(settings.VOICEROOM_TICKET_TTL_S)
    payload = {
        "r": room.pk,
        "u": user.pk,
        "n": secrets.token_urlsafe(12),
        "e": user.credentials_epoch,
    }
    return signing.dumps(payload, salt=_TICKET_SALT, compress=False), ttl


def ticket_member_issue(*, room: Room, user: User) -> tuple[str, int]:
    membership = Membership.objects.filter(room=room, user=user, active=True).first()
    if membership is None:
        raise Forbidden("Join the room first.", code="not_a_member")
    if membership.banned:
        raise Forbidden("You are banned from this room.", code="banned")
    # A fresh ticket shows the member is still coming: not absent (see members_absent_reap).
    membership.save(update_fields=["updated_at"])
    return ticket_issue(room=room, user=user)


class TicketHolder(NamedTuple):
    user_id: int
    epoch: float  # the user's credentials epoch when the ticket was issued


def ticket_redeem(*, ticket: str, room_id: int, user_id: int | None = None) -> TicketHolder | None:
    """Who a ticket was issued to, if it is genuine, fresh, for this room and unused.

    With `user_id`, a ticket issued to someone else is refused without being used up.
    Whether the user's credentials were revoked since is for participant_connect to say.
    """
    try:
        payload = signing.loads(
            ticket, salt=_TICKET_SALT, max_age=int(settings.VOICEROOM_TICKET_TTL_S)
        )
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or payload.get("r") != room_id:
        return None
    if user_id is not None and payload.get("u") != user_id:
        return None
    # cache.add is atomic in Redis (SET NX) and in the local cache: a ticket works once.
    if not cache.add(f"ticket-used:{payload['n']}", 1, int(settings.VOICEROOM_TICKET_TTL_S) + 5):
        return None
    return TicketHolder(int(payload["u"]), float(payload.get("e", 0.0)))


@transaction.atomic
def member_leave(*, room: Room, user: User, reason: str = "left") -> None:
    """Leave the room (REST leave or a clean `leave` frame). An open socket closes with 4000."""
    room = _lock_room(room.pk)
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "room")
        .filter(room=room, user=user)
        .first()
    )
    if membership is None or not membership.active:
        raise Forbidden("You are not in this room.", code="not_a_member")
    membership.room = room
    _end_presence(membership, reason=reason, close_code=CLOSE_LEFT)


# --- moderation ----------------------------------------------------------------------


@transaction.atomic
def member_mute(*, room: Room, actor: User | None, user_id: int, muted: bool) -> Membership:
    room = _lock_room(room.pk)
    target = _lock_member(room, user_id)
    if actor is not None:
        policy.require_moderator(room=room, actor=actor, target=target)
    if target.muted != muted:
        target.muted = muted
        target.save(update_fields=["muted", "updated_at"])
        _audit(
            room=room,
            actor=actor,
            target=target.user,
            action=Action.MUTE if muted else Action.UNMUTE,
        )
        _participant_changed(target)
    return target


@transaction.atomic
def room_mute_all(*, room: Room, actor: User | None, muted: bool) -> list[Membership]:
    """Mute (or unmute) every member in the room but its moderators, in one act.

    Applies to the active plain members now (not the owner, not admins, not the actor);
    one audit row lists whose state changed; each of them who is in the room gets a
    `participant.updated`. Returns the members it applies to, in their new state.
    """
    room = _lock_room(room.pk)
    if actor is not None:
        policy.require_moderator(room=room, actor=actor)
    members = Membership.objects.select_for_update().select_related("user")
    targets = list(members.filter(room=room, active=True, role=Role.MEMBER))
    if actor is not None:
        targets = [m for m in targets if m.user_id != actor.pk]
    changed = [m for m in targets if m.muted != muted]
    if changed:
        Membership.objects.filter(pk__in=[m.pk for m in changed]).update(
            muted=muted, updated_at=timezone.now()
        )
        for membership in changed:
            membership.muted = muted
    _audit(
        room=room,
        actor=actor,
        action=Action.MUTE_ALL if muted else Action.UNMUTE_ALL,
        detail={"user_ids": [m.user_id for m in changed]},
    )
    if changed:
        sessions = {s.user_id: s for s in presence.store().sessions(room.pk)}  # one lookup
        for membership in changed:
            session = sessions.get(membership.user_id)
            if session is not None:
                events.participant_updated(room.pk, selectors.participant_dict(membership, session))
    return targets


@transaction.atomic
def member_kick(*, room: Room, actor: User | None, user_id: int) -> None:
    """Out of the room now (socket closed 4010); may join again."""
    room = _lock_room(room.pk)
    target = _lock_member(room, user_id)
    if actor is not None:
        policy.require_moderator(room=room, actor=actor, target=target)
    if not target.active:
        raise Conflict("That member is not in the room.", code="not_in_room")
    target.room = room
    _audit(room=room, actor=actor, target=target.user, action=Action.KICK)
    _end_presence(target, reason="kicked", close_code=CLOSE_KICKED)


@transaction.atomic
def member_ban(*, room: Room, actor: User | None, user_id: int, reason: str = "") -> None:
    """Out of the room (socket closed 4003) and refused until unbanned."""
    room = _lock_room(room.pk)
    target = _lock_member(room, user_id)
    if actor is not None:
        policy.require_moderator(room=room, actor=actor, target=target)
    target.room = room
    target.banned = True
    target.ban_reason = reason or ""
    _audit(room=room, actor=actor, target=target.user, action=Action.BAN, reason=reason or "")
    _end_presence(target, reason="banned", close_code=CLOSE_FORBIDDEN)


@transaction.atomic
def member_unban(*, room: Room, actor: User | None, user_id: int) -> None:
    room = _lock_room(room.pk)
    target = _lock_member(room, user_id)
    if actor is not None:
        policy.require_moderator(room=room, actor=actor, target=target)
    if target.banned:
        target.banned = False
        target.ban_reason = ""
        target.save(update_fields=["banned", "ban_reason", "updated_at"])
        _audit(room=room, actor=actor, target=target.user, action=Action.UNBAN)


@transaction.atomic
def member_set_role(*, room: Room, actor: User | None, user_id: int, role: str) -> Membership:
    if role not in (Role.ADMIN, Role.MEMBER):
        raise ApplicationError("role must be 'admin' or 'member'.", code="invalid")
    room = _lock_room(room.pk)
    if actor is not None:
        policy.require_owner(room=room, actor=actor, permission=policy.MODERATE_MEMBERS)
    target = _lock_member(room, user_id)
    if target.role == Role.OWNER:
        raise Forbidden("The owner's role cannot be changed.")
    if target.role != role:
        target.role = role
        target.save(update_fields=["role", "updated_at"])
        _audit(
            room=room, actor=actor, target=target.user, action=Action.ROLE, detail={"role": role}
        )
        _participant_changed(target)
    return target


# --- live participation (called by the WebSocket consumer and the reaper) ---------------


@dataclass
class ConnectResult:
    close_code: int | None = None
    reason: str = ""
    session: presence.Session | None = None
    previous: presence.Session | None = None
    membership: Membership | None = None
    welcome: dict | None = None
    credentials_epoch: float = 0.0  # the user's, as checked: see participant_recheck

    @property
    def replaced_live_socket(self) -> bool:
        return self.previous is not None and self.previous.connected


def participant_connect(
    *,
    room_id: int,
    user_id: int | None,
    resume_session: str | None,
    node: str,
    channel: str,
    credentials_epoch: float | None = None,
    resume_token: str | None = None,
) -> ConnectResult:
    """Admit a socket to a room, or say which close code refuses it.

    A member with a live or resumable session keeps it (seat, mutes, voice sequence);
    a live older socket is replaced (the consumer closes it with 4012), but never by a
    resume token: `resume_token` is used up here, and only while its session is in the
    resume window. Every welcome carries a new resume token.
    `credentials_epoch`: the one the ticket or API token was issued under (None for a
    resume token, whose issue time is compared with the revocation time instead).
    """
    room = Room.objects.select_related("owner").filter(pk=room_id).first()
    if room is None:
        return ConnectResult(close_code=CLOSE_UNKNOWN_ROOM, reason="unknown room")
    if user_id is None:
        return ConnectResult(close_code=CLOSE_AUTH, reason="authentication failed")
    membership = (
        Membership.objects.select_related("user").filter(room=room, user_id=user_id).first()
    )
    if membership is None or membership.banned:
        reason = "banned" if membership is not None else "not a member"
        return ConnectResult(close_code=CLOSE_FORBIDDEN, reason=reason)
    if not membership.user.is_active:
        return ConnectResult(close_code=CLOSE_AUTH, reason="account disabled")
    epoch = membership.user.credentials_epoch
    if credentials_epoch is not None and credentials_epoch != epoch:
        return ConnectResult(close_code=CLOSE_AUTH, reason="credentials revoked")
    # Before the `active` check: closing ended every membership, and the member should
    # read "room closed" (4011), not "not a member" (4003).
    if room.status != Room.Status.OPEN:
        return ConnectResult(close_code=CLOSE_ROOM_CLOSED, reason="room closed")
    if not membership.active:
        return ConnectResult(close_code=CLOSE_FORBIDDEN, reason="not a member")
    store = presence.store()
    existing = store.get(room.pk, user_id)
    if resume_session is not None and (existing is None or existing.session_id != resume_session):
        return ConnectResult(close_code=CLOSE_AUTH, reason="resume window has passed")
    if resume_session is not None and existing is not None and existing.token_issued_at < epoch:
        return ConnectResult(close_code=CLOSE_AUTH, reason="credentials revoked")
    if existing is None and store.counts([room.pk])[room.pk] >= room.capacity:
        return ConnectResult(close_code=CLOSE_FULL, reason="room full")
    try:
        attached = store.attach(
            room.pk, user_id, node=node, channel=channel, resume_token=resume_token
        )
    except presence.ResumeRefused:
        return ConnectResult(close_code=CLOSE_AUTH, reason="resume token used or not redeemable")
    participant = selectors.participant_dict(membership, attached.session)
    if attached.previous is None:
        events.participant_joined(room.pk, participant)
    else:
        events.participant_updated(room.pk, participant)
    welcome = {
        "type": "welcome",
        "room": _room_payload(room),
        "you": participant,
        "participants": selectors.participant_list(room_id=room.pk),
        "seats": selectors.seat_list(room=room),
        # Moderators get the queue of pending seat requests; others their own, if any.
        "seat_requests": selectors.seat_request_list(
            room_id=room.pk, user_id=None if membership.is_moderator else user_id
        ),
        "session": {
            "resume_token": attached.session.resume_token,
            "resume_window_s": int(settings.VOICEROOM_RESUME_WINDOW_S),
        },
        "resumed": resume_session is not None,
    }
    return ConnectResult(
        session=attached.session,
        previous=attached.previous,
        membership=membership,
        welcome=welcome,
        credentials_epoch=epoch,
    )


def participant_recheck(*, room_id: int, user_id: int, session_id: str, epoch: float) -> bool:
    """Are the credentials participant_connect accepted still good? Asked by the socket
    once it listens to its member group, so that a revocation committed in between is
    seen here and any later one reaches the socket (participants_revoke).

    If not, the revocation may have looked for this session before it existed: end it
    here (the socket closes itself with 4001).
    """
    row = User.objects.filter(pk=user_id).values_list("is_active", "credentials_revoked_at").first()
    if row is not None and row[0] and credentials_epoch(row[1]) == epoch:
        return True
    _participant_revoke(room_id=room_id, user_id=user_id, session_id=session_id)
    return False


def participants_revoke(*, user_id: int) -> int:
    """The user's credentials were revoked (sign-out, password change, deactivation):
    take them out of every room where they are a participant, connected or inside the
    resume window, through the leave path. Others see `participant.left`; their sockets
    close with 4001 on whichever node holds them. Returns how many rooms they left.
    """
    room_ids = Membership.objects.filter(user_id=user_id, active=True).values_list(
        "room_id", flat=True
    )
    return sum(
        _participant_revoke(room_id=room_id, user_id=user_id, session_id=None)
        for room_id in list(room_ids)
    )


@transaction.atomic
def _participant_revoke(*, room_id: int, user_id: int, session_id: str | None) -> bool:
    """End the user's session in the room (only `session_id`, when given). With no
    session id the socket is closed 4001 through its member group; with one, the socket
    asking (participant_recheck) closes itself."""
    session = presence.store().get(room_id, user_id)
    if session is None or session_id not in (None, session.session_id):
        return False
    room = Room.objects.select_for_update().filter(pk=room_id).first()
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "room")
        .filter(room_id=room_id, user_id=user_id, active=True)
        .first()
    )
    if room is None or membership is None:
        if presence.store().remove(room_id, user_id, session.session_id) is not None:
            events.participant_left(room_id, user_id, "left")
        return False
    membership.room = room
    _end_presence(membership, reason="left", close_code=CLOSE_AUTH if session_id is None else None)
    return True


def participant_disconnect(*, room_id: int, user_id: int, channel: str, seq: int) -> None:
    """A socket dropped without a clean leave: the participant enters its resume window."""
    session = presence.store().detach(room_id, user_id, channel, seq=seq)
    if session is None:
        return  # replaced by a newer socket, or already out of the room
    membership = selectors.membership_find(room_id=room_id, user_id=user_id)
    if membership is not None:
        events.participant_updated(room_id, selectors.participant_dict(membership, session))


@transaction.atomic
def participant_timeout(*, room_id: int, user_id: int, session_id: str) -> bool:
    """The resume window ran out: the participant leaves with reason `timeout`."""
    session = presence.store().get(room_id, user_id)
    if session is None or session.session_id != session_id or session.connected:
        return False
    room = Room.objects.select_for_update().filter(pk=room_id).first()
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "room")
        .filter(room_id=room_id, user_id=user_id)
        .first()
    )
    if room is None or membership is None:
        presence.store().remove(room_id, user_id, session_id)
        return False
    membership.room = room
    _end_presence(membership, reason="timeout", close_code=None)
    return True


def participant_self_mute(
    *, room_id: int, user_id: int, session_id: str, muted: bool
) -> dict | None:
    session = presence.store().update(room_id, user_id, session_id, self_muted=muted)
    if session is None:
        return None
    membership = selectors.membership_find(room_id=room_id, user_id=user_id)
    assert membership is not None  # a live session implies its membership row
    participant = selectors.participant_dict(membership, session)
    events.participant_updated(room_id, participant)
    return participant


def participant_voice_seq(*, room_id: int, user_id: int, channel: str, seq: int) -> None:
    """Remember the voice sequence reached, so a resumed socket continues it."""
    session = presence.store().get(room_id, user_id)
    if session is not None and session.channel == channel:
        presence.store().update(room_id, user_id, session.session_id, seq=seq)


# --- seats -------------------------------------------------------------------------------


def _seat_row(room: Room, index: int) -> Seat:
    if not 0 <= index < room.seat_count:
        raise ApplicationError(
            f"Seat index must be from 0 to {room.seat_count - 1}."
            if room.seat_count
            else "This room has no seats.",
            code="invalid_seat",
        )
    return Seat.objects.select_for_update().get(room=room, index=index)


def _seat_assign(room: Room, membership: Membership, index: int | None) -> int:
    """seat_take's rules, on a locked room and member: the given seat, or the first free one.

    The room row is locked by the caller, so two members racing for one seat are served
    one after the other; the (room, seat) unique constraint is the last line of defence.
    """
    if not membership.active:
        raise Forbidden("You are not in this room.", code="not_a_member")
    if room.seat_count == 0:
        raise ApplicationError("This room has no seats.", code="invalid_seat")
    taken = set(
        Membership.objects.filter(room=room, seat__isnull=False).values_list("seat", flat=True)
    )
    locked = set(Seat.objects.filter(room=room, locked=True).values_list("index", flat=True))
    if index is None:
        if membership.seat is not None:
            return membership.seat
        free = [i for i in range(room.seat_count) if i not in taken and i not in locked]
        if not free:
            raise Conflict("No free seat.", code="no_free_seat")
        index = free[0]
    else:
        _seat_row(room, index)
        if membership.seat == index:
            return index
        if index in locked:
            raise Conflict("That seat is locked.", code="seat_locked")
        if index in taken:
            raise Conflict("That seat is taken.", code="seat_taken")
    old = membership.seat
    membership.seat = index
    try:
        with transaction.atomic():
            membership.save(update_fields=["seat", "updated_at"])
    except IntegrityError:
        membership.seat = old
        raise Conflict("That seat is taken.", code="seat_taken") from None
    if old is not None:
        _seat_changed(room, old)
    _seat_changed(room, index)
    _participant_changed(membership)
    return index


@transaction.atomic
def seat_take(*, room: Room, user: User, index: int | None = None) -> int:
    """Sit on the given seat, or the first free unlocked one. Exactly one of two racers wins.

    Refusals: `invalid_seat` (no such seat), `seat_locked`, `seat_taken`, `no_free_seat`,
    `not_a_member`. A pending seat request of the member is cancelled (reason `seated`).
    """
    room = _lock_room(room.pk)
    membership = _lock_member(room, user.pk)
    seat = _seat_assign(room, membership, index)
    _seat_request_drop(room, membership.user_id, reason="seated")
    return seat


@transaction.atomic
def seat_leave(*, room: Room, user: User) -> None:
    room = _lock_room(room.pk)
    membership = _lock_member(room, user.pk)
    if membership.seat is None:
        raise Conflict("You are not on a seat.", code="not_seated")
    old = membership.seat
    membership.seat = None
    membership.save(update_fields=["seat", "updated_at"])
    _seat_changed(room, old)
    _participant_changed(membership)


@transaction.atomic
def seat_lock(*, room: Room, actor: User | None, index: int, locked: bool) -> None:
    room = _lock_room(room.pk)
    if actor is not None:
        policy.require_moderator(room=room, actor=actor)
    seat = _seat_row(room, index)
    if seat.locked == locked:
        return
    seat.locked = locked
    seat.save(update_fields=["locked"])
    if locked:
        holder = (
            Membership.objects.select_for_update()
            .select_related("user")
            .filter(room=room, seat=index)
            .first()
        )
        if holder is not None:
            holder.seat = None
            holder.save(update_fields=["seat", "updated_at"])
            _participant_changed(holder)
    _audit(
        room=room,
        actor=actor,
        action=Action.SEAT_LOCK if locked else Action.SEAT_UNLOCK,
        detail={"index": index},
    )
    _seat_changed(room, index)


@transaction.atomic
def seat_mute(*, room: Room, actor: User | None, index: int, muted: bool) -> None:
    room = _lock_room(room.pk)
    if actor is not None:
        policy.require_moderator(room=room, actor=actor)
    seat = _seat_row(room, index)
    if seat.muted == muted:
        return
    seat.muted = muted
    seat.save(update_fields=["muted"])
    _audit(
        room=room,
        actor=actor,
        action=Action.SEAT_MUTE if muted else Action.SEAT_UNMUTE,
        detail={"index": index},
    )
    _seat_changed(room, index)


@transaction.atomic
def seat_remove(*, room: Room, actor: User | None, user_id: int) -> None:
    """A moderator takes a member off their seat."""
    room = _lock_room(room.pk)
    target = _lock_member(room, user_id)
    if actor is not None:
        policy.require_moderator(room=room, actor=actor, target=target)
    if target.seat is None:
        raise Conflict("That member is not on a seat.", code="not_seated")
    old = target.seat
    target.seat = None
    target.save(update_fields=["seat", "updated_at"])
    _audit(
        room=room, actor=actor, target=target.user, action=Action.SEAT_REMOVE, detail={"index": old}
    )
    _seat_changed(room, old)
    _participant_changed(target)


# --- seat requests ---------------------------------------------------------------------------


@transaction.atomic
def seat_request_create(*, room: Room, user: User, index: int | None = None) -> SeatRequest:
    """A member asks for a seat (a given one, or any); the moderators get `seat.requested`.

    Refusals: `not_a_member`, `invalid_seat` (no seats, or no such seat), `seat_locked`,
    `already_seated`, `seat_request_pending` (one pending request per member).
    """
    room = _lock_room(room.pk)
    membership = Membership.objects.select_for_update().filter(room=room, user_id=user.pk).first()
    if membership is None or not membership.active:
        raise Forbidden("You are not in this room.", code="not_a_member")
    if room.seat_count == 0:
        raise ApplicationError("This room has no seats.", code="invalid_seat")
    if index is not None and _seat_row(room, index).locked:
        raise Conflict("That seat is locked.", code="seat_locked")
    if membership.seat is not None:
        raise Conflict("You are already on a seat.", code="already_seated")
    if SeatRequest.objects.filter(room=room, user_id=user.pk).exists():
        raise Conflict("You already asked for a seat.", code="seat_request_pending")
    try:
        with transaction.atomic():
            request = SeatRequest.objects.create(room=room, user_id=user.pk, index=index)
    except IntegrityError:  # the room lock makes this unreachable; the constraint backs it
        raise Conflict("You already asked for a seat.", code="seat_request_pending") from None
    events.seat_requested(room.pk, user.pk, selectors.seat_request_dict(request))
    return request


@transaction.atomic
def seat_request_cancel(*, room: Room, user: User) -> None:
    """The member withdraws their request (`seat.request.cancelled`, reason `cancelled`)."""
    room = _lock_room(room.pk)
    if not _seat_request_drop(room, user.pk, reason="cancelled"):
        raise NotFound("You have no pending seat request.", code="no_seat_request")


@transaction.atomic
def seat_request_accept(
    *, room: Room, actor: User | None, user_id: int, index: int | None = None
) -> Membership:
    """A moderator seats the requester, with seat_take's rules.

    The seat is `index`, else the one asked for, else the first free one. If the seat
    cannot be had (`seat_taken`, `seat_locked`, `no_free_seat`) the request stays pending.
    """
    room = _lock_room(room.pk)
    if actor is not None:
        policy.require_moderator(room=room, actor=actor)
    request = SeatRequest.objects.select_for_update().filter(room=room, user_id=user_id).first()
    if request is None:
        raise NotFound("No pending seat request from that member.", code="no_seat_request")
    target = _lock_member(room, user_id)
    if index is None and request.index is not None and request.index < room.seat_count:
        index = request.index
    request.delete()
    seat = _seat_assign(room, target, index)
    _audit(
        room=room,
        actor=actor,
        target=target.user,
        action=Action.SEAT_REQUEST_ACCEPT,
        detail={"index": seat},
    )
    events.seat_request_resolved(room.pk, user_id, accepted=True, index=seat)
    return target


@transaction.atomic
def seat_request_refuse(*, room: Room, actor: User | None, user_id: int) -> None:
    """A moderator turns the request down; requester and moderators get it resolved, false."""
    room = _lock_room(room.pk)
    if actor is not None:
        policy.require_moderator(room=room, actor=actor)
    request = (
        SeatRequest.objects.select_for_update()
        .select_related("user")
        .filter(room=room, user_id=user_id)
        .first()
    )
    if request is None:
        raise NotFound("No pending seat request from that member.", code="no_seat_request")
    target = request.user
    request.delete()
    _audit(
        room=room,
        actor=actor,
        target=target,
        action=Action.SEAT_REQUEST_REFUSE,
        detail={"index": request.index},
    )
    events.seat_request_resolved(room.pk, user_id, accepted=False)


def participants_detached(*, sessions: list[presence.Session]) -> None:
    """Sessions of a dead node entered their resume window: tell their rooms."""
    for session in sessions:
        membership = selectors.membership_find(room_id=session.room_id, user_id=session.user_id)
        if membership is not None:
            events.participant_updated(
                session.room_id, selectors.participant_dict(membership, session)
            )


def participants_reattach(*, node: str, sockets: list[tuple[int, int, str, int]]) -> None:
    """Make presence agree with this node's live sockets again, after it may have lost
    them (Redis restarted empty, or other nodes declared this node dead while its Redis
    connection was down). `sockets`: (room, user, channel, voice seq) of each.

    Sockets put back are shown as connected; a socket whose membership ended meanwhile
    is closed 4003. Sessions whose socket dropped while Redis was unreachable enter the
    resume window, as any dropped socket does.
    """
    reattached, detached = presence.store().reattach(node, sockets)
    for session in reattached:
        membership = selectors.membership_find(room_id=session.room_id, user_id=session.user_id)
        if membership is None or not membership.active or membership.banned:
            presence.store().remove(session.room_id, session.user_id, session.session_id)
            events.member_close(session.room_id, session.user_id, CLOSE_FORBIDDEN)
            continue
        events.participant_updated(session.room_id, selectors.participant_dict(membership, session))
    participants_detached(sessions=detached)


def members_absent_reap(*, older_than_s: float) -> int:
    """End the membership of members who are not in the room and have not been for a while.

    A member who joined through REST but never opened a socket (or whose presence was
    lost with a node of the embedded kind) would otherwise hold a place against the
    room's capacity, and a seat, for ever. Returns how many were ended.
    """
    from datetime import timedelta

    from django.utils import timezone

    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    stale: dict[int, list[int]] = {}
    for room_id, user_id in Membership.objects.filter(
        active=True, updated_at__lt=cutoff
    ).values_list("room_id", "user_id")[:1000]:
        stale.setdefault(room_id, []).append(user_id)
    ended = 0
    for room_id, user_ids in stale.items():
        present = {s.user_id for s in presence.store().sessions(room_id)}
        for user_id in user_ids:
            if user_id in present:
                continue
            with transaction.atomic():
                room = Room.objects.select_for_update().filter(pk=room_id).first()
                membership = (
                    Membership.objects.select_for_update()
                    .select_related("user", "room")
                    .filter(room_id=room_id, user_id=user_id, active=True, updated_at__lt=cutoff)
                    .first()
                )
                if room is None or membership is None:
                    continue
                if presence.store().get(room_id, user_id) is not None:
                    continue
                membership.room = room
                _end_presence(membership, reason="timeout", close_code=None)
                ended += 1
    return ended
