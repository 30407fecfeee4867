"""The join throttle: guesses at a room's password are limited.

Checking a room password costs the server a password hash (about 250 ms of CPU), so
attempts are limited twice, both answering 429 `throttled` with Retry-After before any
hash is computed:

- per user and room (`join_password`): only wrong passwords count. Each attempt takes a
  place before the check and gives it back when the password was right (or the join
  failed for another reason), so a member who mistypes once is not held back, while a
  burst of parallel guesses cannot all pass before the first failure is counted.
- per client address (`join_password_address`): every attempt that checks a password
  counts, right or wrong, which bounds the hashing one address can make the server do
  whatever accounts it uses.

Only joins that check a password count (rooms.policy.needs_room_password): joining a
public room, the owner, and operators who may enter without it are never throttled here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.http import HttpRequest
from rest_framework.exceptions import Throttled

from accounts.models import User
from rooms import policy
from rooms.models import Room
from voiceroom import throttling
from voiceroom.errors import ApplicationError


@contextmanager
def join_password_attempt(*, request: HttpRequest, room: Room, user: User) -> Iterator[None]:
    """Around a join: refuses it when over a limit, counts it as the rules above say."""
    if not throttling.enabled() or not policy.needs_room_password(room=room, user=user):
        yield
        return
    by_address = throttling.attempt("join_password_address", throttling.client_address(request))
    by_member = throttling.attempt("join_password", f"{user.pk}:{room.pk}")
    waits = [a.wait for a in (by_address, by_member) if a.wait is not None]
    if waits:
        # Refused before any hash: neither count should grow by it (an address over its
        # limit must not use up the member's own budget, nor the other way round).
        by_address.give_back()
        by_member.give_back()
        raise Throttled(max(waits), detail="Too many attempts at this room's password.")
    wrong_password = False
    try:
        yield
    except ApplicationError as exc:
        wrong_password = exc.code == "bad_password"
        raise
    finally:
        if not wrong_password:
            by_member.give_back()
