"""Operator events (report.created, recording.started, recording.stopped).

Issue 16's webhook outbox (another branch) stores each event in the same transaction as
the change it describes. Until it is merged here, `operator_event` is the one place
these events leave the services: it logs them (greppable by room). When the outbox
lands (branch i16-hooks: `webhooks.services.record_event(type, room_id, data)`), this
function calls `record_event(kind, room.pk, data)` and nothing else changes.
"""

from __future__ import annotations

import logging
from typing import Any

from rooms.models import Room

logger = logging.getLogger(__name__)


def operator_event(kind: str, *, room: Room, data: dict[str, Any]) -> None:
    """Emit `kind` about `room`; call it inside the transaction of the change."""
    logger.info("operator event %s in room %s: %s", kind, room.pk, data)
