"""Who may do what in a room: the one place that decides.

Inside a room, powers follow the member's role: the owner, then the room's admins, then
plain members (the owner keeps the owner's powers after leaving the room).

Operators (Django staff) act on rooms they hold no role in. Their powers follow the same
Django model permissions that the admin checks for the same act, through
`operator_may`, so an operator can do over REST or the socket exactly what the admin
lets them do, and nothing else:

- `rooms.change_room`: change a room's fields and its password, close it, open it, and
  join a private room without its password (whoever may replace the password gains
  nothing from being asked for it).
- `rooms.change_membership`: moderate members (mute, mute all, kick, ban, unban, roles,
  seats and seat requests).
- `rooms.view_membership` (or the change permission, as in the admin): see a room's
  members and its queue of seat requests without being in it.

Superusers hold every permission (Django's `has_perm`). Staff without a permission are
plain users for that act, like anyone else who is not a moderator of the room.
"""

from __future__ import annotations

from accounts.models import User
from rooms.models import Membership, Room
from voiceroom.errors import Forbidden

CHANGE_ROOM = "rooms.change_room"
MODERATE_MEMBERS = "rooms.change_membership"
VIEW_MEMBERS = "rooms.view_membership"

MODERATOR_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


class SystemActor:
    """The server acting on its own behalf (the reaper, resume timeouts, revocation,
    management commands and test setup): it passes every check, and audit rows record
    no actor. Passed explicitly, so no call skips authorization by leaving `actor` out."""

    pk = None

    def __repr__(self) -> str:
        return "SYSTEM"


SYSTEM = SystemActor()
Actor = User | SystemActor


def _require_actor(actor: object) -> None:
    if not isinstance(actor, User | SystemActor):
        raise TypeError(f"actor must be a user or rooms.policy.SYSTEM, not {actor!r}")


def operator_may(user: User, permission: str) -> bool:
    """An active staff user holding `permission`: the admin's own test (its site admits
    active staff only, then each page and action checks the model permission)."""
    return bool(user.is_active and user.is_staff and user.has_perm(permission))


def may_view_members_anywhere(user: User) -> bool:
    """The admin shows memberships to holders of the view or the change permission."""
    return operator_may(user, VIEW_MEMBERS) or operator_may(user, MODERATE_MEMBERS)


def _active_membership(room: Room, user: User) -> Membership | None:
    return Membership.objects.filter(room=room, user=user, active=True).first()


def require_moderator(
    *,
    room: Room,
    actor: Actor,
    target: Membership | None = None,
    permission: str = MODERATE_MEMBERS,
) -> None:
    """The owner, an active admin of the room, or an operator with `permission`.

    Nobody acts on the owner; an admin does not act on another admin. SYSTEM may.
    """
    _require_actor(actor)
    if isinstance(actor, SystemActor):
        return
    if target is not None and target.role == Membership.Role.OWNER:
        raise Forbidden("Nobody can moderate the room's owner.")
    if room.owner_id == actor.pk or operator_may(actor, permission):
        return
    mine = _active_membership(room, actor)
    if mine is None or mine.role not in MODERATOR_ROLES:
        raise Forbidden("Only the room's owner, its admins or staff may do this.")
    if target is not None and mine.role == Membership.Role.ADMIN:
        if target.role == Membership.Role.ADMIN:
            raise Forbidden("An admin cannot moderate another admin.")


def require_owner(*, room: Room, actor: Actor, permission: str) -> None:
    """The room's owner, or an operator with `permission` (or SYSTEM)."""
    _require_actor(actor)
    if isinstance(actor, SystemActor):
        return
    if room.owner_id == actor.pk or operator_may(actor, permission):
        return
    raise Forbidden("Only the room's owner or staff may do this.")


def is_moderator(*, room: Room, user: User) -> bool:
    """The owner (in the room or not) or an active admin of the room."""
    if room.owner_id == user.pk:
        return True
    mine = _active_membership(room, user)
    return mine is not None and mine.role in MODERATOR_ROLES


def may_see_seat_requests(*, room: Room, user: User) -> bool:
    return is_moderator(room=room, user=user) or may_view_members_anywhere(user)


def may_review(*, room: Room, user: User) -> bool:
    """Reports and recordings of a room: its owner, its admins, and operators who may see
    or moderate members."""
    return is_moderator(room=room, user=user) or may_view_members_anywhere(user)


def may_see_members(*, room: Room, user: User) -> bool:
    """An active member of the room, or an operator who may view memberships."""
    return may_view_members_anywhere(user) or _active_membership(room, user) is not None


def may_enter_without_password(*, room: Room, user: User) -> bool:
    return room.owner_id == user.pk or operator_may(user, CHANGE_ROOM)


def needs_room_password(*, room: Room, user: User) -> bool:
    """Whether joining checks the room's password for this user (what the join
    throttle counts)."""
    return room.is_private and not may_enter_without_password(room=room, user=user)


def may_speak(
    *,
    muted: bool,
    self_muted: bool,
    seat: int | None,
    seat_count: int,
    seat_muted: bool,
) -> bool:
    """The speak rule, once: whether a participant's voice is relayed.

    Nobody muted (by a moderator or by themselves) speaks. A room without seats lets
    everyone else speak; a room with seats, only whoever holds an existing seat that is
    not muted. `seat_muted` is the mute of the participant's seat (False without one).
    The socket's voice gate (rooms.ws.consumer) applies it; the SDK, the demo and the
    mini-program show the same rule (docs/protocol.md).
    """
    if muted or self_muted:
        return False
    if seat_count == 0:
        return True
    return seat is not None and seat < seat_count and not seat_muted
