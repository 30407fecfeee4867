"""How rooms, members, participants and seats look on the wire, for REST and WebSocket alike."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.serializers import UserSerializer
from rooms.models import Membership, Room, Seat


class RoomSerializer(serializers.ModelSerializer):
    owner = UserSerializer(read_only=True)
    is_private = serializers.BooleanField(read_only=True)
    online_count = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = [
            "id",
            "name",
            "topic",
            "owner",
            "status",
            "capacity",
            "seat_count",
            "is_private",
            "online_count",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField())
    def get_online_count(self, room: Room) -> int:
        counts = self.context.get("online_counts")
        if counts is not None and room.pk in counts:
            return counts[room.pk]
        from rooms.selectors import online_count

        return online_count(room_id=room.pk)


class MemberSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)
    online = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["user", "role", "muted", "banned", "online", "seat", "joined_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.BooleanField())
    def get_online(self, membership: Membership) -> bool:
        online = self.context.get("online_user_ids")
        if online is None:
            from rooms.selectors import online_user_ids

            online = online_user_ids(room_id=membership.room_id)
        return membership.user_id in online


class ParticipantSerializer(serializers.Serializer):
    """A member who is in the room now (connected, or inside the resume window)."""

    user_id = serializers.IntegerField()
    username = serializers.CharField()
    display_name = serializers.CharField()
    role = serializers.CharField()
    muted = serializers.BooleanField()
    self_muted = serializers.BooleanField()
    seat = serializers.IntegerField(allow_null=True)
    connected = serializers.BooleanField()


class SeatSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    user_id = serializers.IntegerField(allow_null=True)
    locked = serializers.BooleanField()
    muted = serializers.BooleanField()


class RoomDetailSerializer(RoomSerializer):
    participants = serializers.SerializerMethodField()

    class Meta(RoomSerializer.Meta):
        fields = [*RoomSerializer.Meta.fields, "participants"]
        read_only_fields = fields

    @extend_schema_field(ParticipantSerializer(many=True))
    def get_participants(self, room: Room) -> list[dict]:
        from rooms.selectors import participant_list

        return participant_list(room_id=room.pk)


def seat_dict(seat: Seat, user_id: int | None) -> dict:
    return {"index": seat.index, "user_id": user_id, "locked": seat.locked, "muted": seat.muted}
