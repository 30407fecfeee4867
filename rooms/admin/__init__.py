"""The operators' admin. It reads freely but changes state only through rooms.services.

Opening, closing, muting (one member or all), kicking, banning, seating: each admin
action and each button of a room's live participants table calls the same service as the
REST API and the WebSocket moderation frames, so the audit log, the broadcasts and the
sockets closed are the same whoever acted. Which of them an operator gets is decided by
rooms.policy.operator_may, the test the services apply to that operator over REST and
the socket. Where a service refuses (an `ApplicationError`), the operator sees its
message; nothing is forced around it.

One module per page: `rooms` (rooms, their members inline and the live panel),
`memberships` (moderation actions on members) and `audit` (the moderation log).
Importing them registers them with the admin site (Django imports `rooms.admin`).
"""

from rooms.admin import audit, memberships, reports, rooms

__all__ = ["audit", "memberships", "reports", "rooms"]
