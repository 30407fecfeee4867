"""REST endpoints for rooms and their members (/api/rooms/...).

Thin views: parse the ids and the body, call rooms.services (writes) or rooms.selectors
(reads), render with rooms.api.serializers. Policy (who may do what) lives in the services;
every refusal reaches the client as {"code", "detail"} through voiceroom.errors.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import AuthenticatedRequest
from rooms import selectors, services
from rooms.api import throttles
from rooms.api.serializers import MemberSerializer, RoomDetailSerializer, RoomSerializer
from rooms.models import (
    CAPACITY_DEFAULT,
    CAPACITY_MAX,
    CAPACITY_MIN,
    SEATS_DEFAULT,
    SEATS_MAX,
    SEATS_MIN,
    Membership,
    Room,
)
from voiceroom.errors import PARSER_CLASSES, ErrorSerializer, NotFound

_MAX_ID = 2**63 - 1
ROOM_PASSWORD_MAX_LENGTH = 128


def _parse_id(raw: str, what: str) -> int:
    """An id from the path; anything that is not one is an unknown object (404), not a 500."""
    if not (raw.isascii() and raw.isdigit()) or int(raw) > _MAX_ID:
        raise NotFound(f"No such {what}.")
    return int(raw)


def _room(room_id: str) -> Room:
    return selectors.room_get(room_id=_parse_id(room_id, "room"))


def _member_context(room: Room) -> dict:
    return {"online_user_ids": selectors.online_user_ids(room_id=room.pk)}


def _member_payload(membership: Membership, room: Room) -> dict:
    return MemberSerializer(membership, context=_member_context(room)).data


# --- OpenAPI documentation helpers ---------------------------------------------------------


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


# --- rooms ---------------------------------------------------------------------------------


class RoomListCreateApi(APIView):
    parser_classes = PARSER_CLASSES
    # Read by drf-spectacular to document the paginated list; used in get().
    pagination_class = PageNumberPagination

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=Room.Status.choices, required=False, allow_blank=True
        )

        class Meta:
            ref_name = "RoomFilter"

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        topic = serializers.CharField(max_length=200, required=False, allow_blank=True)
        capacity = serializers.IntegerField(
            min_value=CAPACITY_MIN, max_value=CAPACITY_MAX, default=CAPACITY_DEFAULT
        )
        seat_count = serializers.IntegerField(
            min_value=SEATS_MIN, max_value=SEATS_MAX, default=SEATS_DEFAULT
        )
        password = serializers.CharField(
            max_length=ROOM_PASSWORD_MAX_LENGTH,
            required=False,
            allow_blank=True,
            allow_null=True,
            trim_whitespace=False,
            write_only=True,
            help_text="Makes the room private: joining needs it. Empty or null: public.",
        )

        class Meta:
            ref_name = "RoomCreate"

    @extend_schema(
        operation_id="rooms_list",
        summary="List rooms, newest first",
        parameters=[FilterSerializer],
        # An out-of-range or non-numeric ?page= is DRF pagination's 404.
        responses={
            200: RoomSerializer(many=True),
            400: E400,
            401: E401,
            404: _error("`not_found`: no such page."),
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rooms = selectors.room_list(status=filters.validated_data.get("status") or None)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rooms, request, view=self)
        assert page is not None  # None only without a page size; pagination_class has one
        # One presence round trip for the whole page instead of one per room.
        counts = selectors.online_counts(room_ids=[room.pk for room in page])
        data = RoomSerializer(page, many=True, context={"online_counts": counts}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        operation_id="rooms_create",
        summary="Create a room; the creator becomes its owner",
        request=InputSerializer,
        responses={201: RoomSerializer, 400: E400, 401: E401},
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        room = services.room_create(owner=request.user, **serializer.validated_data)
        data = RoomSerializer(room, context={"online_counts": {room.pk: 0}}).data
        return Response(data, status=status.HTTP_201_CREATED)


class RoomDetailApi(APIView):
    parser_classes = PARSER_CLASSES

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False)
        topic = serializers.CharField(max_length=200, required=False, allow_blank=True)
        capacity = serializers.IntegerField(
            min_value=CAPACITY_MIN, max_value=CAPACITY_MAX, required=False
        )
        seat_count = serializers.IntegerField(
            min_value=SEATS_MIN, max_value=SEATS_MAX, required=False
        )
        password = serializers.CharField(
            max_length=ROOM_PASSWORD_MAX_LENGTH,
            required=False,
            allow_blank=True,
            allow_null=True,
            trim_whitespace=False,
            write_only=True,
            help_text="A new password; empty or null makes the room public.",
        )

        class Meta:
            ref_name = "RoomUpdate"

    @extend_schema(
        operation_id="rooms_retrieve",
        summary="A room, with the participants in it now",
        parameters=[ROOM_ID],
        responses={200: RoomDetailSerializer, 401: E401, 404: E404_ROOM},
    )
    def get(self, request: Request, room_id: str) -> Response:
        return Response(RoomDetailSerializer(_room(room_id)).data)

    @extend_schema(
        operation_id="rooms_update",
        summary="Change a room (owner, admin, staff)",
        parameters=[ROOM_ID],
        request=InputSerializer,
        responses={200: RoomSerializer, 400: E400, 401: E401, 403: E403, 404: E404_ROOM},
    )
    def patch(self, request: AuthenticatedRequest, room_id: str) -> Response:
        room = _room(room_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        room = services.room_update(room=room, actor=request.user, **serializer.validated_data)
        return Response(RoomSerializer(room).data)


class RoomCloseApi(APIView):
    @extend_schema(
        operation_id="rooms_close",
        summary="Close a room (owner, staff): sockets are closed, joins refused",
        parameters=[ROOM_ID],
        request=None,
        responses={200: RoomSerializer, 401: E401, 403: E403, 404: E404_ROOM},
    )
    def post(self, request: AuthenticatedRequest, room_id: str) -> Response:
        room = services.room_close(room=_room(room_id), actor=request.user)
        return Response(RoomSerializer(room).data)


class RoomOpenApi(APIView):
    @extend_schema(
        operation_id="rooms_open",
        summary="Open a closed room again (owner, staff)",
        parameters=[ROOM_ID],
        request=None,
        responses={200: RoomSerializer, 401: E401, 403: E403, 404: E404_ROOM},
    )
    def post(self, request: AuthenticatedRequest, room_id: str) -> Response:
        room = services.room_open(room=_room(room_id), actor=request.user)
        return Response(RoomSerializer(room).data)


# --- joining, tickets, leaving -------------------------------------------------------------


class TicketOutputSerializer(serializers.Serializer):
    ticket = serializers.CharField(
        help_text="Single use: connect with `/ws/rooms/{id}/?ticket=<ticket>` before it expires."
    )
    ticket_expires_in = serializers.IntegerField(help_text="Seconds the ticket stays valid.")

    class Meta:
        ref_name = "Ticket"


class JoinOutputSerializer(TicketOutputSerializer):
    room = RoomSerializer()
    member = MemberSerializer()
    ws_url = serializers.CharField(help_text="Where to open the room's WebSocket.")

    class Meta:
        ref_name = "JoinResult"


class RoomJoinApi(APIView):
    parser_classes = PARSER_CLASSES

    class InputSerializer(serializers.Serializer):
        password = serializers.CharField(
            max_length=ROOM_PASSWORD_MAX_LENGTH,
            required=False,
            allow_blank=True,
            allow_null=True,
            trim_whitespace=False,
            write_only=True,
        )

        class Meta:
            ref_name = "RoomJoin"

    @extend_schema(
        operation_id="rooms_join",
        summary="Join a room and get a ticket for its WebSocket",
        parameters=[ROOM_ID],
        request=InputSerializer,
        responses={
            200: JoinOutputSerializer,
            400: E400,
            401: E401,
            403: _error("`banned`, or `bad_password` for a private room."),
            404: E404_ROOM,
            409: _error("`room_closed` or `room_full`."),
            429: _error(
                "`throttled`: too many attempts at this room's password (per user and "
                "room, wrong ones only; per address, all); see the Retry-After header."
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, room_id: str) -> Response:
        room = _room(room_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with throttles.join_password_attempt(request=request, room=room, user=request.user):
            joined = services.member_join(
                room=room, user=request.user, password=serializer.validated_data.get("password")
            )
        payload = {
            "room": joined.room,
            "member": joined.membership,
            "ws_url": f"/ws/rooms/{joined.room.pk}/",
            "ticket": joined.ticket,
            "ticket_expires_in": joined.ticket_expires_in,
        }
        context = _member_context(joined.room)
        return Response(JoinOutputSerializer(payload, context=context).data)


class RoomTicketApi(APIView):
    @extend_schema(
        operation_id="rooms_ticket",
        summary="A fresh WebSocket ticket for a member (to reconnect)",
        parameters=[ROOM_ID],
        request=None,
        responses={
            200: TicketOutputSerializer,
            401: E401,
            403: _error("`not_a_member` (join first) or `banned`."),
            404: E404_ROOM,
        },
    )
    def post(self, request: AuthenticatedRequest, room_id: str) -> Response:
        ticket, ttl = services.ticket_member_issue(room=_room(room_id), user=request.user)
        return Response(TicketOutputSerializer({"ticket": ticket, "ticket_expires_in": ttl}).data)


class RoomLeaveApi(APIView):
    @extend_schema(
        operation_id="rooms_leave",
        summary="Leave a room; an open socket of yours in it is closed with 4000",
        parameters=[ROOM_ID],
        request=None,
        responses={
            204: NO_CONTENT,
            401: E401,
            403: _error("`not_a_member`: you are not in this room."),
            404: E404_ROOM,
        },
    )
    def post(self, request: AuthenticatedRequest, room_id: str) -> Response:
        services.member_leave(room=_room(room_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- members and moderation ----------------------------------------------------------------


class MemberListApi(APIView):
    @extend_schema(
        operation_id="rooms_members_list",
        summary="Members in the room now, and the banned (members, staff)",
        parameters=[ROOM_ID],
        responses={
            200: MemberSerializer(many=True),
            401: E401,
            403: _error("`forbidden`: only members of the room and staff may list them."),
            404: E404_ROOM,
        },
    )
    def get(self, request: AuthenticatedRequest, room_id: str) -> Response:
        room = _room(room_id)
        members = selectors.member_list_visible(room=room, viewer=request.user)
        return Response(MemberSerializer(members, many=True, context=_member_context(room)).data)


MODERATION_ERRORS = {
    401: E401,
    403: _error(
        "`forbidden`: only the owner, admins and staff moderate; nobody acts on the owner; "
        "an admin cannot act on another admin."
    ),
    404: E404_MEMBER,
}


class MemberMuteApi(APIView):
    parser_classes = PARSER_CLASSES

    class InputSerializer(serializers.Serializer):
        muted = serializers.BooleanField()

        class Meta:
            ref_name = "MemberMute"

    @extend_schema(
        operation_id="rooms_members_mute",
        summary="Mute or unmute a member (owner, admin, staff)",
        parameters=[ROOM_ID, USER_ID],
        request=InputSerializer,
        responses={200: MemberSerializer, 400: E400, **MODERATION_ERRORS},
    )
    def post(self, request: AuthenticatedRequest, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        target_id = _parse_id(user_id, "member")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.member_mute(
            room=room, actor=request.user, user_id=target_id, **serializer.validated_data
        )
        return Response(_member_payload(member, room))


class MemberKickApi(APIView):
    @extend_schema(
        operation_id="rooms_members_kick",
        summary="Kick a member out (owner, admin, staff); they may join again",
        parameters=[ROOM_ID, USER_ID],
        request=None,
        responses={
            204: NO_CONTENT,
            **MODERATION_ERRORS,
            409: _error("`not_in_room`: that member is not in the room now."),
        },
    )
    def post(self, request: AuthenticatedRequest, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        services.member_kick(room=room, actor=request.user, user_id=_parse_id(user_id, "member"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberBanApi(APIView):
    parser_classes = PARSER_CLASSES

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=200, required=False, allow_blank=True)

        class Meta:
            ref_name = "MemberBan"

    @extend_schema(
        operation_id="rooms_members_ban",
        summary="Ban a member (owner, admin, staff): out now, joins refused until unbanned",
        parameters=[ROOM_ID, USER_ID],
        request=InputSerializer,
        responses={204: NO_CONTENT, 400: E400, **MODERATION_ERRORS},
    )
    def post(self, request: AuthenticatedRequest, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        target_id = _parse_id(user_id, "member")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.member_ban(
            room=room,
            actor=request.user,
            user_id=target_id,
            reason=serializer.validated_data.get("reason", ""),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberUnbanApi(APIView):
    @extend_schema(
        operation_id="rooms_members_unban",
        summary="Lift a member's ban (owner, admin, staff)",
        parameters=[ROOM_ID, USER_ID],
        request=None,
        responses={204: NO_CONTENT, **MODERATION_ERRORS},
    )
    def post(self, request: AuthenticatedRequest, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        services.member_unban(room=room, actor=request.user, user_id=_parse_id(user_id, "member"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberRoleApi(APIView):
    parser_classes = PARSER_CLASSES

    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(
            choices=[Membership.Role.ADMIN.value, Membership.Role.MEMBER.value]
        )

        class Meta:
            ref_name = "MemberRole"

    @extend_schema(
        operation_id="rooms_members_role",
        summary="Make a member an admin, or a plain member again (owner, staff)",
        parameters=[ROOM_ID, USER_ID],
        request=InputSerializer,
        responses={
            200: MemberSerializer,
            400: _error("`invalid`: role must be `admin` or `member`."),
            401: E401,
            403: _error("`forbidden`: only the owner and staff; the owner's role is fixed."),
            404: E404_MEMBER,
        },
    )
    def post(self, request: AuthenticatedRequest, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        target_id = _parse_id(user_id, "member")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.member_set_role(
            room=room, actor=request.user, user_id=target_id, **serializer.validated_data
        )
        return Response(_member_payload(member, room))


class RoomMuteAllApi(APIView):
    parser_classes = PARSER_CLASSES

    class InputSerializer(serializers.Serializer):
        muted = serializers.BooleanField()

        class Meta:
            ref_name = "RoomMuteAll"

    @extend_schema(
        operation_id="rooms_mute_all",
        summary="Mute or unmute everyone but the moderators (owner, admin, staff)",
        description=(
            "Applies to the plain members in the room now (not the owner, not admins). "
            "Answers those members in their new state; each of them who is connected gets "
            "`participant.updated`, and one audit row records the act."
        ),
        parameters=[ROOM_ID],
        request=InputSerializer,
        responses={
            200: MemberSerializer(many=True),
            400: E400,
            401: E401,
            403: E403,
            404: E404_ROOM,
        },
    )
    def post(self, request: AuthenticatedRequest, room_id: str) -> Response:
        room = _room(room_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        members = services.room_mute_all(
            room=room, actor=request.user, muted=serializer.validated_data["muted"]
        )
        return Response(MemberSerializer(members, many=True, context=_member_context(room)).data)


# --- seat requests -------------------------------------------------------------------------


class SeatRequestSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    index = serializers.IntegerField(
        allow_null=True, help_text="The seat asked for; null means any free seat."
    )
    ts = serializers.CharField(help_text="When it was asked, ISO 8601 UTC.")

    class Meta:
        ref_name = "SeatRequest"


class SeatRequestListApi(APIView):
    parser_classes = PARSER_CLASSES

    class InputSerializer(serializers.Serializer):
        index = serializers.IntegerField(
            min_value=0, max_value=SEATS_MAX, required=False, allow_null=True
        )

        class Meta:
            ref_name = "SeatRequestCreate"

    @extend_schema(
        operation_id="rooms_seat_requests_list",
        summary="Pending seat requests, oldest first (owner, admin, staff)",
        parameters=[ROOM_ID],
        responses={200: SeatRequestSerializer(many=True), 401: E401, 403: E403, 404: E404_ROOM},
    )
    def get(self, request: AuthenticatedRequest, room_id: str) -> Response:
        room = _room(room_id)
        return Response(selectors.seat_request_list_visible(room=room, viewer=request.user))

    @extend_schema(
        operation_id="rooms_seat_requests_create",
        summary="Ask the moderators for a seat (a given one, or any)",
        parameters=[ROOM_ID],
        request=InputSerializer,
        responses={
            201: SeatRequestSerializer,
            400: _error("`invalid` or `invalid_seat` (no seats, or no such seat)."),
            401: E401,
            403: _error("`not_a_member`: join the room first."),
            404: E404_ROOM,
            409: _error("`already_seated`, `seat_locked` or `seat_request_pending`."),
        },
    )
    def post(self, request: AuthenticatedRequest, room_id: str) -> Response:
        room = _room(room_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.seat_request_create(
            room=room, user=request.user, index=serializer.validated_data.get("index")
        )
        return Response(selectors.seat_request_dict(created), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="rooms_seat_requests_cancel",
        summary="Withdraw your own pending seat request",
        parameters=[ROOM_ID],
        request=None,
        responses={
            204: NO_CONTENT,
            401: E401,
            404: _error("`not_found` (no such room) or `no_seat_request`."),
        },
    )
    def delete(self, request: AuthenticatedRequest, room_id: str) -> Response:
        services.seat_request_cancel(room=_room(room_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


SEAT_REQUEST_ERRORS = {
    401: E401,
    403: E403,
    404: _error("`not_found` (no such room) or `no_seat_request` (nothing pending from them)."),
}


class SeatRequestAcceptApi(APIView):
    parser_classes = PARSER_CLASSES

    class InputSerializer(serializers.Serializer):
        index = serializers.IntegerField(
            min_value=0, max_value=SEATS_MAX, required=False, allow_null=True
        )

        class Meta:
            ref_name = "SeatRequestAccept"

    @extend_schema(
        operation_id="rooms_seat_requests_accept",
        summary="Seat the member who asked (owner, admin, staff)",
        description=(
            "The seat is `index`, else the seat asked for, else the first free one, with the "
            "rules of `seat.take`. When the seat cannot be had the request stays pending."
        ),
        parameters=[ROOM_ID, USER_ID],
        request=InputSerializer,
        responses={
            200: MemberSerializer,
            400: _error("`invalid` or `invalid_seat`."),
            **SEAT_REQUEST_ERRORS,
            409: _error("`seat_taken`, `seat_locked` or `no_free_seat`."),
        },
    )
    def post(self, request: AuthenticatedRequest, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        target_id = _parse_id(user_id, "member")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.seat_request_accept(
            room=room,
            actor=request.user,
            user_id=target_id,
            index=serializer.validated_data.get("index"),
        )
        return Response(_member_payload(member, room))


class SeatRequestRefuseApi(APIView):
    @extend_schema(
        operation_id="rooms_seat_requests_refuse",
        summary="Turn a seat request down (owner, admin, staff)",
        parameters=[ROOM_ID, USER_ID],
        request=None,
        responses={204: NO_CONTENT, **SEAT_REQUEST_ERRORS},
    )
    def post(self, request: AuthenticatedRequest, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        services.seat_request_refuse(
            room=room, actor=request.user, user_id=_parse_id(user_id, "member")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
