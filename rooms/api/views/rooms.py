"""REST: rooms (list, create, detail, change, close, open), joining, tickets, leaving."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rooms import selectors, services
from rooms.api import throttles
from rooms.api.serializers import (
    MemberSerializer,
    RoomDetailSerializer,
    RoomSerializer,
)
from rooms.api.views._common import (
    E400,
    E401,
    E403,
    E404_ROOM,
    NO_CONTENT,
    ROOM_ID,
    ROOM_PASSWORD_MAX_LENGTH,
    _error,
    _member_context,
    _room,
    _user,
)
from rooms.models import (
    CAPACITY_DEFAULT,
    CAPACITY_MAX,
    CAPACITY_MIN,
    SEATS_DEFAULT,
    SEATS_MAX,
    SEATS_MIN,
    Room,
)
from voiceroom.errors import PARSER_CLASSES

WS_URL_HELP = (
    "Where the room lives now: open (and resume) its WebSocket here. An absolute "
    "ws(s):// URL of the room's home node when the deployment names node URLs, else "
    "the path /ws/rooms/{id}/ (relative to this origin)."
)


@extend_schema_serializer(component_name="RoomDetail")
class RoomDetailOutputSerializer(RoomDetailSerializer):
    """A room, the participants in it now, and where its socket lives (`ws_url`)."""

    ws_url = serializers.CharField(help_text=WS_URL_HELP)


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
        codec = serializers.ChoiceField(
            choices=Room.Codec.choices,
            default=Room.Codec.OPUS,
            help_text="What every client of the room sends and expects; cannot be changed.",
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
        if page is None:  # DRF paginates nothing when the page size is 0
            raise ImproperlyConfigured("VOICEROOM_PAGE_SIZE must be a positive number")
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
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        room = services.room_create(owner=_user(request), **serializer.validated_data)
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
        responses={200: RoomDetailOutputSerializer, 401: E401, 404: E404_ROOM},
    )
    def get(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        data = RoomDetailSerializer(room).data
        # A closed room is not placed again just because someone looks at it.
        ws_url = services.room_ws_url(room_id=room.pk, place=room.is_open)
        return Response({**data, "ws_url": ws_url})

    @extend_schema(
        operation_id="rooms_update",
        summary="Change a room (owner, admin, staff)",
        parameters=[ROOM_ID],
        request=InputSerializer,
        responses={200: RoomSerializer, 400: E400, 401: E401, 403: E403, 404: E404_ROOM},
    )
    def patch(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        room = services.room_update(room=room, actor=_user(request), **serializer.validated_data)
        return Response(RoomSerializer(room).data)


class RoomCloseApi(APIView):
    @extend_schema(
        operation_id="rooms_close",
        summary="Close a room (owner, staff): sockets are closed, joins refused",
        parameters=[ROOM_ID],
        request=None,
        responses={200: RoomSerializer, 401: E401, 403: E403, 404: E404_ROOM},
    )
    def post(self, request: Request, room_id: str) -> Response:
        room = services.room_close(room=_room(room_id), actor=_user(request))
        return Response(RoomSerializer(room).data)


class RoomOpenApi(APIView):
    @extend_schema(
        operation_id="rooms_open",
        summary="Open a closed room again (owner, staff)",
        parameters=[ROOM_ID],
        request=None,
        responses={200: RoomSerializer, 401: E401, 403: E403, 404: E404_ROOM},
    )
    def post(self, request: Request, room_id: str) -> Response:
        room = services.room_open(room=_room(room_id), actor=_user(request))
        return Response(RoomSerializer(room).data)


class TicketOutputSerializer(serializers.Serializer):
    ticket = serializers.CharField(
        help_text="Single use: connect with `<ws_url>?ticket=<ticket>` before it expires."
    )
    ticket_expires_in = serializers.IntegerField(help_text="Seconds the ticket stays valid.")
    ws_url = serializers.CharField(help_text=WS_URL_HELP)

    class Meta:
        ref_name = "Ticket"


class JoinOutputSerializer(TicketOutputSerializer):
    room = RoomSerializer()
    member = MemberSerializer()

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
    def post(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with throttles.join_password_attempt(request=request, room=room, user=_user(request)):
            joined = services.member_join(
                room=room, user=_user(request), password=serializer.validated_data.get("password")
            )
        payload = {
            "room": joined.room,
            "member": joined.membership,
            "ws_url": services.room_ws_url(room_id=joined.room.pk),
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
    def post(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        ticket, ttl = services.ticket_member_issue(room=room, user=_user(request))
        payload = {
            "ticket": ticket,
            "ticket_expires_in": ttl,
            "ws_url": services.room_ws_url(room_id=room.pk),
        }
        return Response(TicketOutputSerializer(payload).data)


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
    def post(self, request: Request, room_id: str) -> Response:
        services.member_leave(room=_room(room_id), user=_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
