"""How rooms, members, participants and seats look on the wire, for REST and WebSocket alike."""

from __future__ import annotations

import copy
from typing import Any, get_args, get_type_hints

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.serializers import UserSerializer
from rooms import contract, selectors
from rooms.models import Membership, Room


def _declare(
    name: str, shape: type, *, base: type = serializers.Serializer, read_only: bool, **overrides
) -> type:
    """A serializer class whose fields (and so whose OpenAPI schema) are the keys of a
    rooms.contract TypedDict, in order: the shape is declared once, in the contract.
    `overrides` give a field a richer schema than its type says (an enum, a date)."""
    attrs: dict[str, Any] = {"__doc__": shape.__doc__, "__module__": __name__}
    for key, hint in get_type_hints(shape).items():
        if key in overrides:
            # A copy made now takes its place in the order (DRF orders fields by creation).
            attrs[key] = copy.deepcopy(overrides[key])
            continue
        nullable = type(None) in get_args(hint)
        kind = next(a for a in get_args(hint) if a is not type(None)) if nullable else hint
        extra: dict[str, Any] = {"allow_null": True} if nullable else {}
        attrs[key] = _FIELDS[kind](read_only=read_only, **extra)
    return type(name, (base,), attrs)


_FIELDS: dict[type, type[serializers.Field]] = {
    int: serializers.IntegerField,
    str: serializers.CharField,
    bool: serializers.BooleanField,
}


class _RoomBase(serializers.Serializer):
    def to_representation(self, room: Room) -> dict:
        # The list view counts everyone online in one presence round trip.
        counts = self.context.get("online_counts") or {}
        return dict(selectors.room_dict(room, online_count=counts.get(room.pk)))


RoomSerializer = _declare(
    "RoomSerializer",
    contract.Room,
    base=_RoomBase,
    read_only=True,
    owner=UserSerializer(read_only=True),
    status=serializers.ChoiceField(choices=Room.Status.choices, read_only=True),
    codec=serializers.ChoiceField(choices=Room.Codec.choices, read_only=True),
    created_at=serializers.DateTimeField(read_only=True),
)


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
            online = selectors.online_user_ids(room_id=membership.room_id)
        return membership.user_id in online


ParticipantSerializer = _declare("ParticipantSerializer", contract.Participant, read_only=False)

SeatRequestSerializer = _declare(
    "SeatRequestSerializer",
    contract.SeatRequest,
    read_only=False,
    index=serializers.IntegerField(
        allow_null=True, help_text="The seat asked for; null means any free seat."
    ),
    ts=serializers.CharField(help_text="When it was asked, ISO 8601 UTC."),
)


class RoomDetailSerializer(RoomSerializer):  # type: ignore[misc,valid-type]
    participants = serializers.SerializerMethodField()

    @extend_schema_field(ParticipantSerializer(many=True))
    def get_participants(self, room: Room) -> list[contract.Participant]:
        return selectors.participant_list(room_id=room.pk)

    def to_representation(self, room: Room) -> dict:
        return {**super().to_representation(room), "participants": self.get_participants(room)}


class ReportSerializer(serializers.Serializer):
    """A report (contract v1.1 "Reports and evidence")."""

    id = serializers.IntegerField(read_only=True)
    room = serializers.IntegerField(source="room_id", read_only=True)
    reported = UserSerializer(read_only=True)
    reporter = UserSerializer(read_only=True)
    reason = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    evidence_seconds = serializers.FloatField(
        read_only=True, help_text="Seconds of the reported member's voice kept (at most 30)."
    )


class RecordingStateSerializer(serializers.Serializer):
    active = serializers.BooleanField()
    started_at = serializers.DateTimeField(allow_null=True)


class TrackSerializer(serializers.Serializer):
    user = UserSerializer()
    url = serializers.CharField(help_text="Downloads the track (Ogg Opus for Opus rooms).")
    bytes = serializers.IntegerField()
    duration_s = serializers.FloatField()


class RecordingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    tracks = TrackSerializer(many=True)
