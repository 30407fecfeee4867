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


@dataclass(frozen=True)
class ModerationAct:
    # (room, actor, target user id or None, ban reason) -> whatever the service returns.
    run: Callable[[Room, policy.Actor, int | None, str], object]
    needs_target: bool
    permission: str = policy.MODERATE_MEMBERS


def _services():
    # Through the package at call time, so a service replaced there (tests) is the one
    # called, as when each face called `services.<name>` itself.
    from rooms import services

    return services


MODERATION_ACTS: dict[str, ModerationAct] = {
    "mute": ModerationAct(
        lambda room, actor, uid, reason: _services().member_mute(
            room=room, actor=actor, user_id=uid, muted=True
        ),
        needs_target=True,
    ),
    "unmute": ModerationAct(
        lambda room, actor, uid, reason: _services().member_mute(
            room=room, actor=actor, user_id=uid, muted=False
        ),
        needs_target=True,
    ),
    "kick": ModerationAct(
        lambda room, actor, uid, reason: _services().member_kick(
            room=room, actor=actor, user_id=uid
        ),
        needs_target=True,
    ),
    "ban": ModerationAct(
        lambda room, actor, uid, reason: _services().member_ban(
            room=room, actor=actor, user_id=uid, reason=reason
        ),
        needs_target=True,
    ),
    "unban": ModerationAct(
        lambda room, actor, uid, reason: _services().member_unban(
            room=room, actor=actor, user_id=uid
        ),
        needs_target=True,
    ),
    "seat.remove": ModerationAct(
        lambda room, actor, uid, reason: _services().seat_remove(
            room=room, actor=actor, user_id=uid
        ),
        needs_target=True,
    ),
    "seat.request.accept": ModerationAct(
        lambda room, actor, uid, reason: _services().seat_request_accept(
            room=room, actor=actor, user_id=uid
        ),
        needs_target=True,
    ),
    "seat.request.refuse": ModerationAct(
        lambda room, actor, uid, reason: _services().seat_request_refuse(
            room=room, actor=actor, user_id=uid
        ),
        needs_target=True,
    ),
    "mute_all": ModerationAct(
        lambda room, actor, uid, reason: _services().room_mute_all(
            room=room, actor=actor, muted=True
        ),
        needs_target=False,
    ),
    "unmute_all": ModerationAct(
        lambda room, actor, uid, reason: _services().room_mute_all(
            room=room, actor=actor, muted=False
        ),
        needs_target=False,
    ),
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
