"""Reports with evidence: a member reports another; the evidence is frozen and stored.

The evidence lives where the reported member's socket is (realtime/evidence.py keeps it
on the node that relayed their voice and carried their chat). When that socket is on
this node, it is read here; when it is on another node, that node is asked over the
channel layer: a request to the member's socket channel, answered by its consumer
(`RoomConsumer.evidence_request`) on a reply channel made for the purpose. A node that
does not answer within EVIDENCE_TIMEOUT_S leaves the report with what this node holds
(often nothing): the report is never refused for want of evidence.
"""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.base import ContentFile
from django.db import transaction

from accounts.models import User
from realtime import evidence as ev
from realtime import presence, runtime
from realtime.ogg import RATE, OggOpusWriter, audio_data, pcm_track, wav_bytes
from rooms import selectors
from rooms.models import Membership, Report, Room
from rooms.services.operator_events import operator_event
from voiceroom.errors import Forbidden, NotFound

logger = logging.getLogger(__name__)

EVIDENCE_TIMEOUT_S = 3.0
PCM16_RATE = 16000  # the clients' PCM16 rate (clients/demo, clients/miniprogram)


async def _ask_node(channel: str, room_id: int, user_id: int) -> ev.Snapshot | None:
    layer = get_channel_layer()
    if layer is None:
        return None
    reply = await layer.new_channel("evidence.")  # type: ignore[call-arg]  # both layers take a prefix; the base stub does not
    try:
        await layer.send(
            channel,
            {"type": "evidence.request", "room_id": room_id, "user_id": user_id, "reply": reply},
        )
        message = await asyncio.wait_for(layer.receive(reply), EVIDENCE_TIMEOUT_S)
    except TimeoutError:
        return None  # wait_for cancelled the receive: the layer dropped the channel
    # Channels has no "delete channel": a receive cancelled while waiting is how both
    # layers forget one (channels_redis unsubscribes it), so the reply channel is not kept.
    waiting = asyncio.ensure_future(layer.receive(reply))
    await asyncio.sleep(0)
    waiting.cancel()
    try:
        await waiting
    except (asyncio.CancelledError, Exception):
        pass
    return ev.unpack(message["data"])


def evidence_freeze(*, room_id: int, user_id: int) -> ev.Snapshot:
    """The member's evidence now, from whichever node holds it."""
    session = presence.store().get(room_id, user_id)
    if session is not None and session.connected and session.channel:
        try:
            snap = async_to_sync(_ask_node)(session.channel, room_id, user_id)
            if snap is not None:
                return snap
        except Exception:
            logger.warning(
                "evidence of user %s in room %s: node %s did not answer",
                user_id,
                room_id,
                session.node,
                exc_info=True,
            )
    return runtime.current().tap.evidence.snapshot(room_id, user_id)


def evidence_media(snap: ev.Snapshot, codec: str) -> tuple[bytes, str, float]:
    """(file bytes, content type, seconds of audio) of a snapshot's voice. Payloads carry
    the clients' codec byte first; the file holds the audio after it, and payloads of
    another codec than the room's are left out."""
    voice = [(at, data) for at, payload in snap.voice if (data := audio_data(payload, codec))]
    if not voice:
        return b"", "", 0.0
    t0 = voice[0][0]
    if codec == "pcm16":
        pcm = pcm_track(voice, rate=PCM16_RATE)
        return wav_bytes(pcm, rate=PCM16_RATE), "audio/wav", len(pcm) / 2 / PCM16_RATE
    out = io.BytesIO()
    writer = OggOpusWriter(out)
    for at, data in voice:
        writer.packet(data, max(0, int((at - t0) * RATE)))
    writer.close()
    return out.getvalue(), "audio/ogg", writer.duration_s


def report_create(*, room: Room, reporter: User, user_id: int, reason: str) -> Report:
    """`reporter` (a member of the room) reports `user_id` (a member). 404 for a user who
    is not a member; the throttle is the API's (rooms/api/views/reports.py)."""
    if not Membership.objects.filter(room=room, user=reporter, active=True).exists():
        raise Forbidden("Only members of the room may report.")
    target = Membership.objects.select_related("user").filter(room=room, user_id=user_id).first()
    if target is None or not (target.active or target.banned):
        raise NotFound("No such member in this room.")
    if target.user_id == reporter.pk:
        raise Forbidden("You cannot report yourself.")
    snap = evidence_freeze(room_id=room.pk, user_id=user_id)
    media, content_type, seconds = evidence_media(snap, selectors.room_codec(room))
    chat = [
        {"ts": datetime.fromtimestamp(wall, UTC).isoformat().replace("+00:00", "Z"), "text": text}
        for wall, text in snap.chat
    ]
    with transaction.atomic():
        report = Report(
            room=room,
            reporter=reporter,
            reported=target.user,
            reason=reason,
            evidence_seconds=round(min(seconds, ev.VOICE_WINDOW_S), 2),
            evidence_type=content_type,
            chat=chat,
        )
        report.save()
        if media:
            ext = "wav" if content_type == "audio/wav" else "ogg"
            report.evidence.save(f"{room.pk}/report-{report.pk}.{ext}", ContentFile(media))
        operator_event(
            "report.created",
            room=room,
            data={"report_id": report.pk, "reported": user_id, "reporter": reporter.pk},
        )
    logger.info(
        "report %s in room %s on user %s by %s: %.1f s of voice, %d chat lines",
        report.pk,
        room.pk,
        user_id,
        reporter.pk,
        report.evidence_seconds,
        len(chat),
    )
    return report


def report_close(*, report: Report, actor: User) -> Report:
    from rooms import policy

    policy.require_moderator(room=report.room, actor=actor)
    report.status = Report.Status.CLOSED
    report.closed_at = datetime.now(UTC)
    report.save(update_fields=["status", "closed_at"])
    return report
