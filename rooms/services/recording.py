"""Recording a room: start and stop (owner, admin, staff), and where tracks are stored.

Starting sets `Room.recording` (members get `room.updated`) and opens a Recording row;
every node with sockets in the room is told through the room's group
(`recording.control`, handled by the consumer, never forwarded to clients) and records
its local speakers (realtime/recording.py). A node whose first socket in the room comes
later starts from the welcome (rooms/ws/consumer.py). Stopping ends the row and tells
the nodes, which close their tracks (end-of-stream page, size and length stored).

Tracks go to Django's default storage. A storage with local paths (FileSystemStorage,
the default) is written in place, page by page, so a node that dies leaves a file
playable up to its last flushed page. Other storages (S3 through django-storages) get
the track when it is closed; until then it grows in VOICEROOM_RECORDING_SPOOL, as
`voiceroom-track-<track id>.<ext>`, locked (flock) by the process writing it. A file
whose lock is free has lost its writer (the process died): `recording_spool_recover`
uploads it to the track's name (the reaper runs it every minute on every node, and
`manage.py recover_spooled_tracks` runs it on demand, e.g. over a dead node's disk).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
from datetime import UTC, datetime
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import close_old_connections, transaction

from accounts.models import User
from realtime import recording as rec
from realtime.presence import NODE_ID
from rooms import events, policy, selectors
from rooms.models import Recording, RecordingTrack, Room
from rooms.services._common import _lock_room
from rooms.services.operator_events import operator_event

logger = logging.getLogger(__name__)


def recording_set(*, room: Room, actor: policy.Actor, active: bool) -> dict:
    """Start or stop the room's recording; answers {"active", "started_at"}."""
    with transaction.atomic():
        room = _lock_room(room.pk)
        policy.require_moderator(room=room, actor=actor)
        current = Recording.objects.filter(room=room, ended_at__isnull=True).first()
        if active and current is None:
            current = Recording.objects.create(
                room=room,
                started_by=actor if isinstance(actor, User) else None,
                codec=selectors.room_codec(room),
                started_at=datetime.now(UTC),
            )
            room.recording = True
            room.save(update_fields=["recording", "updated_at"])
            events.room_updated(room)
            events.recording_control(room.pk, control_message(current))
            operator_event("recording.started", room=room, data={"recording_id": current.pk})
        elif not active and current is not None:
            _end(room, current)
            room.save(update_fields=["recording", "updated_at"])
            events.room_updated(room)
        latest = current or Recording.objects.filter(room=room).first()
    return {
        "active": room.recording,
        "started_at": selectors._drf_datetime(latest.started_at) if latest else None,
    }


def recording_end_with_room(room: Room) -> None:
    """The room closes (rooms.services.rooms.room_close, inside its transaction, with the
    room locked): a running recording ends with it. The caller saves `room` and sends its
    room.updated."""
    current = Recording.objects.filter(room=room, ended_at__isnull=True).first()
    if current is not None:
        _end(room, current)


def _end(room: Room, current: Recording) -> None:
    current.ended_at = datetime.now(UTC)
    current.save(update_fields=["ended_at"])
    room.recording = False
    # Every node holding a recorder for the room closes its tracks.
    events.recording_control(room.pk, control_message(current))
    operator_event("recording.stopped", room=room, data={"recording_id": current.pk})


def control_message(recording: Recording) -> dict:
    return {
        "type": "recording.control",
        "recording_id": recording.pk,
        "active": recording.ended_at is None,
        "started_at": recording.started_at.timestamp(),
        "codec": recording.codec,
    }


def recording_active(*, room_id: int) -> dict | None:
    """The control message of the room's running recording, if any (for a node whose
    first socket in the room arrives while it records)."""
    current = Recording.objects.filter(room_id=room_id, ended_at__isnull=True).first()
    return control_message(current) if current is not None else None


SPOOL_PREFIX = "voiceroom-track-"
_SPOOLED = re.compile(re.escape(SPOOL_PREFIX) + r"(\d+)\.(ogg|wav)")


def spool_dir() -> str:
    return settings.VOICEROOM_RECORDING_SPOOL or tempfile.gettempdir()


def _spool_open(track_id: int, ext: str) -> BinaryIO:
    """The spool file of a track, locked by this process for as long as it is open.

    It is created under a temporary name, locked, then renamed: a file under the
    spooled name is never seen unlocked while its writer lives."""
    spool = spool_dir()
    os.makedirs(spool, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=spool, prefix=".writing-", suffix=f".{ext}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        final = os.path.join(spool, f"{SPOOL_PREFIX}{track_id}.{ext}")
        os.replace(temp, final)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    out = os.fdopen(fd, "wb")
    out.spool_path = final  # type: ignore[attr-defined]
    return out


def recording_controls(*, room_ids: list[int]) -> dict[int, dict]:
    """The control message of each of these rooms' running recordings (rooms that do
    not record are absent): the runtime's re-check compares its recorders with it."""
    running = Recording.objects.filter(room_id__in=room_ids, ended_at__isnull=True)
    return {r.room_id: control_message(r) for r in running.order_by("started_at", "id")}


class StorageTrackStore:
    """Where realtime/recording.py writes tracks: Django's default storage. Runs in the
    recorder's writer thread (never on the event loop)."""

    def open(self, room_id: int, recording_id: int, user_id: int, codec: str) -> BinaryIO:
        close_old_connections()
        ext = "wav" if codec == "pcm16" else "ogg"
        node = "".join(c if c.isalnum() else "-" for c in NODE_ID)[:40]
        name = default_storage.get_available_name(
            f"recordings/{room_id}/{recording_id}/{user_id}-{node}.{ext}"
        )
        track = RecordingTrack.objects.create(
            recording_id=recording_id, user_id=user_id, file=name, node=NODE_ID
        )
        out: BinaryIO
        try:
            try:
                path = default_storage.path(name)
            except NotImplementedError:  # no local paths (S3...): spool, upload at close
                out = _spool_open(track.pk, ext)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                out = open(path, "xb")
        except BaseException:
            track.delete()
            raise
        out.track_id = track.pk  # type: ignore[attr-defined]
        out.storage_name = name  # type: ignore[attr-defined]
        return out

    def close(
        self,
        room_id: int,
        recording_id: int,
        user_id: int,
        out: BinaryIO,
        size: int,
        dur: float,
    ) -> None:
        close_old_connections()
        name = out.storage_name  # type: ignore[attr-defined]
        spooled = getattr(out, "spool_path", None)
        if spooled is None:
            out.close()
            self._finished(out, name, size, dur)
            return
        # Uploaded while still locked, so a recovery pass never takes it meanwhile, and
        # unlinked before the lock goes. Whatever fails, the file is closed (its lock
        # released): a track left in the spool is recording_spool_recover's.
        try:
            out.flush()
            with open(spooled, "rb") as data:
                name = default_storage.save(name, File(data))
            self._finished(out, name, size, dur)
            os.unlink(spooled)
        finally:
            out.close()

    @staticmethod
    def _finished(out: BinaryIO, name: str, size: int, dur: float) -> None:
        RecordingTrack.objects.filter(pk=out.track_id).update(  # type: ignore[attr-defined]
            file=name, bytes=size, duration_s=round(dur, 3), finished=True
        )


def recording_spool_recover(*, spool: str | None = None) -> int:
    """Upload the spooled tracks whose writer died (their lock is free) to the storage,
    under their track's name, and remove them; returns how many were uploaded.

    Safe to run from any number of processes at once, beside live writers: a file is
    handled only under its lock, and only while it still has a name. A recovered track
    keeps `finished` False, like a track cut by a crash in local storage: its size and
    length are measured from the file when listed."""
    spool = spool or spool_dir()
    try:
        entries = [(e, m) for e in os.scandir(spool) if (m := _SPOOLED.fullmatch(e.name))]
    except FileNotFoundError:
        return 0
    uploaded = 0
    for entry, match in entries:
        try:
            f = open(entry.path, "rb")
        except FileNotFoundError:
            continue  # its writer or another pass was quicker
        with f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its writer is alive
            if os.fstat(f.fileno()).st_nlink == 0:
                continue  # uploaded and removed after we opened it
            close_old_connections()
            track = RecordingTrack.objects.filter(pk=int(match.group(1))).first()
            if track is not None and not track.finished:
                name = default_storage.save(track.file.name, File(f))
                RecordingTrack.objects.filter(pk=track.pk).update(file=name)
                uploaded += 1
                logger.warning(
                    "spooled track %s of recording %s uploaded after its writer died",
                    track.pk,
                    track.recording_id,
                )
            elif track is None:
                logger.warning("spooled %s has no track (recording deleted): removed", entry.name)
            os.unlink(entry.path)
    return uploaded


def install_track_store() -> None:
    rec.set_track_store(StorageTrackStore())
