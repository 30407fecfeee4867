"""Writes. Every change of a room, a membership or a seat goes through a function here.

REST views, WebSocket frames, admin actions and management commands call these and
nothing else, so a kick is one thing however it is made. Each service checks policy,
writes (with the audit log where a moderator acted), then broadcasts through
rooms.events after the transaction commits.

One module per subject: `rooms` (create, change, close, open), `membership` (join,
leave, moderation of members), `moderation` (the table of moderation acts that
every face uses), `tickets`, `participation` (who is connected now),
`seats` and `seat_requests`. This package re-exports every public name so that callers
keep writing `services.member_kick(...)` in this step of the redesign; new code may
import from the subject module directly. Tests that replace a service replace it here
(`monkeypatch.setattr(services, ...)`), which reaches callers that go through the
package, as every face does.
"""

from rooms import events
from rooms.services.membership import (
    JoinResult,
    member_ban,
    member_join,
    member_kick,
    member_leave,
    member_mute,
    member_set_role,
    member_unban,
    members_absent_reap,
    room_mute_all,
)
from rooms.services.moderation import MODERATION_ACTS, ModerationAct, moderate
from rooms.services.participation import (
    ConnectResult,
    participant_connect,
    participant_disconnect,
    participant_recheck,
    participant_self_mute,
    participant_timeout,
    participant_voice_seq,
    participants_detached,
    participants_reattach,
    participants_revoke,
)
from rooms.services.placement import placement_beat, room_unplace, room_ws_url, rooms_rehome
from rooms.services.recording import (
    recording_active,
    recording_controls,
    recording_set,
    recording_spool_recover,
)
from rooms.services.reports import report_close, report_create
from rooms.services.rooms import room_close, room_create, room_open, room_update
from rooms.services.seat_requests import (
    seat_request_accept,
    seat_request_cancel,
    seat_request_create,
    seat_request_refuse,
)
from rooms.services.seats import seat_leave, seat_lock, seat_mute, seat_remove, seat_take
from rooms.services.tickets import (
    TicketHolder,
    ticket_issue,
    ticket_member_issue,
    ticket_redeem,
)

__all__ = [
    "MODERATION_ACTS",
    "ConnectResult",
    "JoinResult",
    "ModerationAct",
    "TicketHolder",
    "events",
    "member_ban",
    "member_join",
    "member_kick",
    "member_leave",
    "member_mute",
    "member_set_role",
    "member_unban",
    "members_absent_reap",
    "moderate",
    "participant_connect",
    "participant_disconnect",
    "participant_recheck",
    "participant_self_mute",
    "participant_timeout",
    "participant_voice_seq",
    "participants_detached",
    "participants_reattach",
    "participants_revoke",
    "placement_beat",
    "recording_active",
    "recording_controls",
    "recording_set",
    "recording_spool_recover",
    "report_close",
    "report_create",
    "room_close",
    "room_create",
    "room_mute_all",
    "room_open",
    "room_unplace",
    "room_update",
    "room_ws_url",
    "rooms_rehome",
    "seat_leave",
    "seat_lock",
    "seat_mute",
    "seat_remove",
    "seat_request_accept",
    "seat_request_cancel",
    "seat_request_create",
    "seat_request_refuse",
    "seat_take",
    "ticket_issue",
    "ticket_member_issue",
    "ticket_redeem",
]
