"""What the REST views share: id parsing, lookups and the documented error responses."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from accounts.models import User
from rooms import selectors
from rooms.api.serializers import (
    MemberSerializer,
)
from rooms.models import (
    Membership,
    Room,
)
from voiceroom.errors import ErrorSerializer, NotFound

_MAX_ID = 2**63 - 1


ROOM_PASSWORD_MAX_LENGTH = 128


def _parse_id(raw: str, what: str) -> int:
    """An id from the path; anything that is not one is an unknown object (404), not a 500."""
    if not (raw.isascii() and raw.isdigit()) or int(raw) > _MAX_ID:
        raise NotFound(f"No such {what}.")
    return int(raw)


def _user(request: Request) -> User:
    """The signed-in user. Every view here runs behind IsAuthenticated (the default
    permission), so an anonymous request never gets this far; the check tells the type
    checker so, and answers 401 as that permission would if a view ever dropped it."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


def _room(room_id: str) -> Room:
    return selectors.room_get(room_id=_parse_id(room_id, "room"))


def _member_context(room: Room) -> dict:
    return {"online_user_ids": selectors.online_user_ids(room_id=room.pk)}


def _member_payload(membership: Membership, room: Room) -> dict:
    return MemberSerializer(membership, context=_member_context(room)).data


def _error(text: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=text)


ROOM_ID = OpenApiParameter("room_id", int, OpenApiParameter.PATH, description="The room's id.")


USER_ID = OpenApiParameter(
    "user_id", int, OpenApiParameter.PATH, description="The member's user id."
)


E400 = _error("`invalid` (with `fields`) or `malformed_request`.")


E401 = _error("`not_authenticated` (no token) or `authentication_failed` (bad token).")


E403 = _error("`forbidden`: your role in the room may not do this.")


E404_ROOM = _error("`not_found`: no such room.")


E404_MEMBER = _error("`not_found`: no such room, or no such member in it.")


NO_CONTENT = OpenApiResponse(description="Done.")
