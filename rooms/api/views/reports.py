"""REST: reports with evidence, and recording (contract v1.1)."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponseRedirect
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rooms import policy, selectors, services
from rooms.api.serializers import (
    RecordingSerializer,
    RecordingStateSerializer,
    ReportSerializer,
)
from rooms.api.views._common import (
    E400,
    E401,
    E403,
    E404_MEMBER,
    E404_ROOM,
    ROOM_ID,
    _error,
    _parse_id,
    _room,
    _user,
)
from rooms.models import RecordingTrack
from voiceroom import throttling
from voiceroom.errors import PARSER_CLASSES, Forbidden, NotFound


class ReportListCreateApi(APIView):
    parser_classes = PARSER_CLASSES

    class InputSerializer(serializers.Serializer):
        user_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
        reason = serializers.CharField(min_length=1, max_length=500)

        class Meta:
            ref_name = "ReportCreate"

    @extend_schema(
        operation_id="rooms_reports_create",
        summary="Report a member (members); the evidence is kept with the report",
        description=(
            "The server keeps the reported member's relayed voice of the last 30 s "
            "(`evidence_seconds` says how much it had) and their chat of the last 5 minutes."
        ),
        parameters=[ROOM_ID],
        request=InputSerializer,
        responses={
            201: ReportSerializer,
            400: E400,
            401: E401,
            403: _error("`forbidden`: only members of the room report."),
            404: E404_MEMBER,
            429: _error("`throttled`: more than 10 reports a minute."),
        },
    )
    def post(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if throttling.enabled():
            counted = throttling.attempt("report", str(_user(request).pk))
            if counted.wait is not None:
                raise Throttled(counted.wait, detail="Too many reports; try again later.")
        report = services.report_create(
            room=room,
            reporter=_user(request),
            user_id=serializer.validated_data["user_id"],
            reason=serializer.validated_data["reason"],
        )
        return Response(ReportSerializer(report).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="rooms_reports_list",
        summary="The room's reports, newest first (owner, admin, staff)",
        parameters=[ROOM_ID],
        responses={200: ReportSerializer(many=True), 401: E401, 403: E403, 404: E404_ROOM},
    )
    def get(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        reports = selectors.report_list_visible(room=room, viewer=_user(request))
        return Response(ReportSerializer(reports, many=True).data)


class RecordingApi(APIView):
    parser_classes = PARSER_CLASSES

    class InputSerializer(serializers.Serializer):
        active = serializers.BooleanField()

        class Meta:
            ref_name = "RecordingSet"

    @extend_schema(
        operation_id="rooms_recording_set",
        summary="Start or stop recording the room (owner, admin, staff)",
        description=(
            "While active, the room's `recording` is true (members get `room.updated`) and "
            "the server writes each speaker's relayed voice to a track of its own."
        ),
        parameters=[ROOM_ID],
        request=InputSerializer,
        responses={200: RecordingStateSerializer, 400: E400, 401: E401, 403: E403, 404: E404_ROOM},
    )
    def post(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        state = services.recording_set(
            room=room, actor=_user(request), active=serializer.validated_data["active"]
        )
        return Response(state)


def _track_url(request: Request, room_id: int, track: RecordingTrack) -> str:
    return request.build_absolute_uri(
        f"/api/rooms/{room_id}/recordings/{track.recording_id}/tracks/{track.pk}"
    )


class RecordingListApi(APIView):
    @extend_schema(
        operation_id="rooms_recordings_list",
        summary="The room's recordings and their tracks, newest first (owner, admin, staff)",
        parameters=[ROOM_ID],
        responses={200: RecordingSerializer(many=True), 401: E401, 403: E403, 404: E404_ROOM},
    )
    def get(self, request: Request, room_id: str) -> Response:
        room = _room(room_id)
        out = []
        for rec in selectors.recording_list_visible(room=room, viewer=_user(request)):
            tracks = []
            for track in rec.tracks.all():
                size, seconds = selectors.track_measure(track)
                user = track.user
                tracks.append(
                    {
                        "user": {
                            "id": user.pk,
                            "username": user.username,
                            "display_name": user.display_name,
                        },
                        "url": _track_url(request, room.pk, track),
                        "bytes": size,
                        "duration_s": round(seconds, 3),
                    }
                )
            out.append(
                {
                    "id": rec.pk,
                    "started_at": selectors._drf_datetime(rec.started_at),
                    "ended_at": selectors._drf_datetime(rec.ended_at) if rec.ended_at else None,
                    "tracks": tracks,
                }
            )
        return Response(out)


class RecordingTrackApi(APIView):
    @extend_schema(
        operation_id="rooms_recording_track",
        summary="Download one track (owner, admin, staff)",
        parameters=[ROOM_ID],
        responses={
            (200, "audio/ogg"): OpenApiResponse(description="The track's file."),
            401: E401,
            403: E403,
            404: E404_ROOM,
        },
    )
    def get(self, request: Request, room_id: str, recording_id: str, track_id: str):
        room = _room(room_id)
        if not policy.may_review(room=room, user=_user(request)):
            raise Forbidden("Only the room's owner, its admins or staff may download tracks.")
        track = (
            RecordingTrack.objects.filter(
                pk=_parse_id(track_id, "track"),
                recording_id=_parse_id(recording_id, "recording"),
                recording__room=room,
            )
            .select_related("recording")
            .first()
        )
        if track is None:
            raise NotFound("No such track.")
        return storage_file_response(track.file.name or "")


def storage_file_response(name: str):
    """A stored file: streamed from local storage, or a redirect to the storage's own
    (signed, for S3) URL when it has no local path."""
    kind = "audio/wav" if name.endswith(".wav") else "audio/ogg"
    try:
        default_storage.path(name)
    except NotImplementedError:
        return HttpResponseRedirect(default_storage.url(name))
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        raise NotFound("The file is gone.") from None
    return FileResponse(handle, content_type=kind)
