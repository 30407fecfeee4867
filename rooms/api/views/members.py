"""REST: the members of a room and their moderation."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rooms import selectors, services
from rooms.api.serializers import (
    MemberSerializer,
)
from rooms.api.views._common import (
    E400,
    E401,
    E403,
    E404_MEMBER,
    E404_ROOM,
    NO_CONTENT,
    ROOM_ID,
    USER_ID,
    _error,
    _member_context,
    _member_payload,
    _parse_id,
    _room,
    _user,
)
from rooms.models import (
    Membership,
)
from voiceroom.errors import PARSER_CLASSES


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
    def get(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        members = selectors.member_list_visible(room=room, viewer=_user(request))
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
    def post(self, request: Request, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        target_id = _parse_id(user_id, "member")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.member_mute(
            room=room, actor=_user(request), user_id=target_id, **serializer.validated_data
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
    def post(self, request: Request, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        services.member_kick(room=room, actor=_user(request), user_id=_parse_id(user_id, "member"))
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
    def post(self, request: Request, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        target_id = _parse_id(user_id, "member")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.member_ban(
            room=room,
            actor=_user(request),
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
    def post(self, request: Request, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        services.member_unban(room=room, actor=_user(request), user_id=_parse_id(user_id, "member"))
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
    def post(self, request: Request, room_id: str, user_id: str) -> Response:
        room = _room(room_id)
        target_id = _parse_id(user_id, "member")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.member_set_role(
            room=room, actor=_user(request), user_id=target_id, **serializer.validated_data
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
    def post(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        members = services.room_mute_all(
            room=room, actor=_user(request), muted=serializer.validated_data["muted"]
        )
        return Response(MemberSerializer(members, many=True, context=_member_context(room)).data)
