from django.urls import path

from rooms.api import views as apis


def _route(route: str, view, name: str) -> list:
    """The contract's path, plus the other trailing-slash form as an unlisted alias.

    The alias spares clients a redirect (which would drop a POST body) or an HTML 404.
    """
    alias = route[:-1] if route.endswith("/") else f"{route}/"
    return [
        path(route, view.as_view(), name=name),
        path(alias, view.as_view(schema=None)),
    ]


ROOM = "<str:room_id>"  # parsed by the views, so a non-numeric id is a JSON 404
MEMBER = f"{ROOM}/members/<str:user_id>"
REQUEST = f"{ROOM}/seat-requests/<str:user_id>"

urlpatterns = [
    path("", apis.RoomListCreateApi.as_view(), name="room-list"),
    *_route(f"{ROOM}/", apis.RoomDetailApi, "room-detail"),
    *_route(f"{ROOM}/join", apis.RoomJoinApi, "room-join"),
    *_route(f"{ROOM}/ticket", apis.RoomTicketApi, "room-ticket"),
    *_route(f"{ROOM}/leave", apis.RoomLeaveApi, "room-leave"),
    *_route(f"{ROOM}/close", apis.RoomCloseApi, "room-close"),
    *_route(f"{ROOM}/open", apis.RoomOpenApi, "room-open"),
    *_route(f"{ROOM}/members/", apis.MemberListApi, "room-members"),
    *_route(f"{MEMBER}/mute", apis.MemberMuteApi, "member-mute"),
    *_route(f"{MEMBER}/kick", apis.MemberKickApi, "member-kick"),
    *_route(f"{MEMBER}/ban", apis.MemberBanApi, "member-ban"),
    *_route(f"{MEMBER}/unban", apis.MemberUnbanApi, "member-unban"),
    *_route(f"{MEMBER}/role", apis.MemberRoleApi, "member-role"),
    *_route(f"{ROOM}/mute-all", apis.RoomMuteAllApi, "room-mute-all"),
    *_route(f"{ROOM}/seat-requests", apis.SeatRequestListApi, "room-seat-requests"),
    *_route(f"{REQUEST}/accept", apis.SeatRequestAcceptApi, "seat-request-accept"),
    *_route(f"{REQUEST}/refuse", apis.SeatRequestRefuseApi, "seat-request-refuse"),
    *_route(f"{ROOM}/reports", apis.ReportListCreateApi, "room-reports"),
    *_route(f"{ROOM}/recording", apis.RecordingApi, "room-recording"),
    *_route(f"{ROOM}/recordings", apis.RecordingListApi, "room-recordings"),
    *_route(
        f"{ROOM}/recordings/<str:recording_id>/tracks/<str:track_id>",
        apis.RecordingTrackApi,
        "room-recording-track",
    ),
]
