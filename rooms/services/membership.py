"""Membership: join, leave and moderation of members (mute, kick, ban, roles)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from realtime import presence
from rooms import events, policy, selectors
from rooms.contract import CloseCode
from rooms.models import (
    Membership,
    Room,
)
from rooms.services._common import (
    Action,
    Role,
    _actor_id,
    _audit,
    _end_presence,
    _lock_member,
    _lock_room,
    _participant_changed,
)
from rooms.services.tickets import ticket_issue
from voiceroom.errors import ApplicationError, Conflict, Forbidden
from webhooks.services import record_event


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
    _end_presence(membership, reason=reason, close_code=CloseCode.LEFT)


@transaction.atomic
def member_mute(*, room: Room, actor: policy.Actor, user_id: int, muted: bool) -> Membership:
    room = _lock_room(room.pk)
    target = _lock_member(room, user_id)
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
        record_event(
            "moderation.mute",
            room.pk,
            {"actor_id": _actor_id(actor), "user_id": user_id, "muted": muted, "all": False},
        )
        _participant_changed(target)
    return target


@transaction.atomic
def room_mute_all(*, room: Room, actor: policy.Actor, muted: bool) -> list[Membership]:
    """Mute (or unmute) every member in the room but its moderators, in one act.

    Applies to the active plain members now (not the owner, not admins, not the actor);
    one audit row lists whose state changed; each of them who is in the room gets a
    `participant.updated`. Returns the members it applies to, in their new state.
    """
    room = _lock_room(room.pk)
    policy.require_moderator(room=room, actor=actor)
    members = Membership.objects.select_for_update().select_related("user")
    targets = list(members.filter(room=room, active=True, role=Role.MEMBER))
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
    for membership in changed:
        record_event(
            "moderation.mute",
            room.pk,
            {
                "actor_id": _actor_id(actor),
                "user_id": membership.user_id,
                "muted": muted,
                "all": True,
            },
        )
    if changed:
        sessions = {s.user_id: s for s in presence.store().sessions(room.pk)}  # one lookup
        for membership in changed:
            session = sessions.get(membership.user_id)
            if session is not None:
                events.participant_updated(room.pk, selectors.participant_dict(membership, session))
    return targets


@transaction.atomic
def member_kick(*, room: Room, actor: policy.Actor, user_id: int) -> None:
    """Out of the room now (socket closed 4010); may join again."""
    room = _lock_room(room.pk)
    target = _lock_member(room, user_id)
    policy.require_moderator(room=room, actor=actor, target=target)
    if not target.active:
        raise Conflict("That member is not in the room.", code="not_in_room")
    target.room = room
    _audit(room=room, actor=actor, target=target.user, action=Action.KICK)
    record_event("moderation.kick", room.pk, {"actor_id": _actor_id(actor), "user_id": user_id})
    _end_presence(target, reason="kicked", close_code=CloseCode.KICKED)


@transaction.atomic
def member_ban(*, room: Room, actor: policy.Actor, user_id: int, reason: str = "") -> None:
    """Out of the room (socket closed 4003) and refused until unbanned."""
    room = _lock_room(room.pk)
    target = _lock_member(room, user_id)
    policy.require_moderator(room=room, actor=actor, target=target)
    target.room = room
    target.banned = True
    target.ban_reason = reason or ""
    _audit(room=room, actor=actor, target=target.user, action=Action.BAN, reason=reason or "")
    record_event(
        "moderation.ban",
        room.pk,
        {"actor_id": _actor_id(actor), "user_id": user_id, "reason": reason or ""},
    )
    _end_presence(target, reason="banned", close_code=CloseCode.FORBIDDEN)


@transaction.atomic
def member_unban(*, room: Room, actor: policy.Actor, user_id: int) -> None:
    room = _lock_room(room.pk)
    target = _lock_member(room, user_id)
    policy.require_moderator(room=room, actor=actor, target=target)
    if target.banned:
        target.banned = False
        target.ban_reason = ""
        target.save(update_fields=["banned", "ban_reason", "updated_at"])
        _audit(room=room, actor=actor, target=target.user, action=Action.UNBAN)
        record_event(
            "moderation.unban", room.pk, {"actor_id": _actor_id(actor), "user_id": user_id}
        )


@transaction.atomic
def member_set_role(*, room: Room, actor: policy.Actor, user_id: int, role: str) -> Membership:
    if role not in (Role.ADMIN, Role.MEMBER):
        raise ApplicationError("role must be 'admin' or 'member'.", code="invalid")
    room = _lock_room(room.pk)
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
