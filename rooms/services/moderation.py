"""The moderation acts, in one table: act name -> the service that does it.

The socket's `moderate` frame, the admin's actions on memberships and the buttons of a
room's live panel all look an act up here, so "kick" is the same call whichever face
made it (the services check who may: rooms.policy). The admin also reads `permission`,
the Django permission its pages require for the act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from accounts.models import User
from rooms import policy
from rooms.models import Room

# (room, actor, target user id or None, ban reason) -> whatever the service returns.
Run = Callable[[Room, policy.Actor, int | None, str], object]


@dataclass(frozen=True)
class ModerationAct:
    run: Run
    needs_target: bool
    permission: str = policy.MODERATE_MEMBERS


def _services():
    # Through the package at call time, so a service replaced there (tests) is the one
    # called, as when each face called `services.<name>` itself.
    from rooms import services

    return services


def _on_member(service: str, **fixed: object) -> Run:
    """An act on one member: `services.<service>(room=, actor=, user_id=, **fixed)`."""

    def run(room: Room, actor: policy.Actor, user_id: int | None, reason: str) -> object:
        return getattr(_services(), service)(room=room, actor=actor, user_id=user_id, **fixed)

    return run


def _on_room(service: str, **fixed: object) -> Run:
    """An act on the whole room: `services.<service>(room=, actor=, **fixed)`."""

    def run(room: Room, actor: policy.Actor, user_id: int | None, reason: str) -> object:
        return getattr(_services(), service)(room=room, actor=actor, **fixed)

    return run


def _ban(room: Room, actor: policy.Actor, user_id: int | None, reason: str) -> object:
    return _services().member_ban(room=room, actor=actor, user_id=user_id, reason=reason)


MODERATION_ACTS: dict[str, ModerationAct] = {
    "mute": ModerationAct(_on_member("member_mute", muted=True), needs_target=True),
    "unmute": ModerationAct(_on_member("member_mute", muted=False), needs_target=True),
    "kick": ModerationAct(_on_member("member_kick"), needs_target=True),
    "ban": ModerationAct(_ban, needs_target=True),
    "unban": ModerationAct(_on_member("member_unban"), needs_target=True),
    "seat.remove": ModerationAct(_on_member("seat_remove"), needs_target=True),
    "seat.request.accept": ModerationAct(_on_member("seat_request_accept"), needs_target=True),
    "seat.request.refuse": ModerationAct(_on_member("seat_request_refuse"), needs_target=True),
    "mute_all": ModerationAct(_on_room("room_mute_all", muted=True), needs_target=False),
    "unmute_all": ModerationAct(_on_room("room_mute_all", muted=False), needs_target=False),
}


def moderate(
    *,
    room: Room,
    actor: User | policy.SystemActor,
    act: str,
    user_id: int | None = None,
    reason: str = "",
) -> object:
    """Do the moderation act named `act` (a key of MODERATION_ACTS)."""
    return MODERATION_ACTS[act].run(room, actor, user_id, reason)
