"""REST endpoints for rooms and their members (/api/rooms/...).

Thin views: parse the ids and the body, call rooms.services (writes) or rooms.selectors
(reads), render with rooms.api.serializers. Policy (who may do what) lives in the services;
every refusal reaches the client as {"code", "detail"} through voiceroom.errors.

One module per subject (`rooms`, `members`, `seat_requests`; `_common` for what they
share); this package re-exports every view so `rooms/api/urls.py` keeps `views.<Name>`.
"""

from rooms.api.views.members import (
    MemberBanApi,
    MemberKickApi,
    MemberListApi,
    MemberMuteApi,
    MemberRoleApi,
    MemberUnbanApi,
    RoomMuteAllApi,
)
from rooms.api.views.reports import (
    RecordingApi,
    RecordingListApi,
    RecordingTrackApi,
    ReportListCreateApi,
)
from rooms.api.views.rooms import (
    RoomCloseApi,
    RoomDetailApi,
    RoomJoinApi,
    RoomLeaveApi,
    RoomListCreateApi,
    RoomOpenApi,
    RoomTicketApi,
)
from rooms.api.views.seat_requests import (
    SeatRequestAcceptApi,
    SeatRequestListApi,
    SeatRequestRefuseApi,
)

__all__ = [
    "MemberBanApi",
    "MemberKickApi",
    "MemberListApi",
    "MemberMuteApi",
    "MemberRoleApi",
    "MemberUnbanApi",
    "RecordingApi",
    "RecordingListApi",
    "RecordingTrackApi",
    "ReportListCreateApi",
    "RoomCloseApi",
    "RoomDetailApi",
    "RoomJoinApi",
    "RoomLeaveApi",
    "RoomListCreateApi",
    "RoomMuteAllApi",
    "RoomOpenApi",
    "RoomTicketApi",
    "SeatRequestAcceptApi",
    "SeatRequestListApi",
    "SeatRequestRefuseApi",
]
