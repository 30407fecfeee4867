"""Connection tickets: short-lived, single-use proofs that open a room's socket."""

from __future__ import annotations

import secrets
from typing import NamedTuple

from django.conf import settings
from django.core import signing
from django.core.cache import cache

from accounts.models import User
from rooms.models import (
    Membership,
    Room,
)
from voiceroom.errors import Forbidden

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
