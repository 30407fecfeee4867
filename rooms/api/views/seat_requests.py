"""REST: the queue of seat requests."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rooms import selectors, services
from rooms.api.serializers import (
    MemberSerializer,
    SeatRequestSerializer,
)
from rooms.api.views._common import (
    E401,
    E403,
    E404_ROOM,
    NO_CONTENT,
    ROOM_ID,
    USER_ID,
    _error,
    _member_payload,
    _parse_id,
    _room,
    _user,
)
from rooms.models import (
    SEATS_MAX,
)
from voiceroom.errors import PARSER_CLASSES


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
    def get(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        return Response(selectors.seat_request_list_visible(room=room, viewer=_user(request)))

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
    def post(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.seat_request_create(
            room=room, user=_user(request), index=serializer.validated_data.get("index")
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
    def delete(self, request: Request, room_id: str) -> Response:
        services.seat_request_cancel(room=_room(room_id), user=_user(request))
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
    def post(self, request: Request, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        target_id = _parse_id(user_id, "member")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.seat_request_accept(
            room=room,
            actor=_user(request),
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
    def post(self, request: Request, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        services.seat_request_refuse(
            room=room, actor=_user(request), user_id=_parse_id(user_id, "member")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
