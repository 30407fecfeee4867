"""Tracks of a storage without local paths (S3...) grow in the spool, locked by their
writer; those whose writer died are uploaded by `recording_spool_recover` (every node's
reaper, and `manage.py recover_spooled_tracks`)."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.files.storage import InMemoryStorage, default_storage
from django.core.management import CommandError, call_command
from django.db import DatabaseError

from rooms import reaper, selectors, services
from rooms.models import Recording, RecordingTrack
from rooms.services.recording import SPOOL_PREFIX, StorageTrackStore
from tests.factories import RoomFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the store closes old connections


class BucketStorage(InMemoryStorage):
    """Like S3 through django-storages: no local paths for its callers (InMemoryStorage
    keeps using its own, to name its nodes)."""

    def path(self, name: str) -> str:
        raise NotImplementedError("This backend doesn't support absolute paths.")

    def _relative_path(self, name: str) -> str:
        return os.path.relpath(InMemoryStorage.path(self, name), self.location)


@pytest.fixture
def spool(settings, tmp_path) -> Path:
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": f"{__name__}.BucketStorage"}}
    settings.VOICEROOM_RECORDING_SPOOL = str(tmp_path / "spool")
    return tmp_path / "spool"


def a_recording() -> Recording:
    room = RoomFactory()
    return Recording.objects.create(room=room, codec="opus", started_at=datetime.now(UTC))


def spooled(spool: Path) -> list[str]:
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


def test_a_closed_track_is_uploaded_and_leaves_the_spool(spool):
    rec = a_recording()
    store = StorageTrackStore()
    out = store.open(rec.room_id, rec.pk, rec.room.owner_id, "opus")
    track = RecordingTrack.objects.get()
    assert spooled(spool) == [f"{SPOOL_PREFIX}{track.pk}.ogg"]
    out.write(b"OggS" + b"x" * 100)
    store.close(rec.room_id, rec.pk, rec.room.owner_id, out, 104, 1.5)
    track.refresh_from_db()
    assert track.finished and track.bytes == 104
    assert default_storage.open(track.file.name).read() == b"OggS" + b"x" * 100
    assert spooled(spool) == []


def test_a_track_whose_writer_died_is_uploaded_and_one_still_written_is_not(spool, caplog):
    rec = a_recording()
    store = StorageTrackStore()
    dead = store.open(rec.room_id, rec.pk, rec.room.owner_id, "opus")
    alive = store.open(rec.room_id, rec.pk, RoomFactory().owner_id, "opus")
    dead.write(b"OggS" + b"d" * 50)
    alive.write(b"OggS" + b"a" * 50)
    dead.flush()
    # While its writer holds it, nobody takes a spooled file.
    assert services.recording_spool_recover() == 0
    assert len(spooled(spool)) == 2
    dead_id = dead.track_id  # type: ignore[attr-defined]
    dead.close()  # what the kernel does for a process that dies: the lock goes
    with caplog.at_level(logging.WARNING):
        assert services.recording_spool_recover() == 1
    assert "uploaded after its writer died" in caplog.text
    track = RecordingTrack.objects.get(pk=dead_id)
    assert not track.finished  # cut by a crash: measured from its file
    assert default_storage.open(track.file.name).read() == b"OggS" + b"d" * 50
    assert selectors.track_measure(track)[0] == 54
    alive_id = alive.track_id  # type: ignore[attr-defined]
    assert spooled(spool) == [f"{SPOOL_PREFIX}{alive_id}.ogg"]
    # The live track still closes normally afterwards.
    store.close(rec.room_id, rec.pk, 0, alive, 54, 1.0)
    assert RecordingTrack.objects.get(pk=alive_id).finished
    assert spooled(spool) == []


def test_leftovers_of_finished_or_deleted_tracks_are_removed_without_upload(spool):
    rec = a_recording()
    spool.mkdir()
    finished = RecordingTrack.objects.create(
        recording=rec, user=rec.room.owner, file="recordings/x.ogg", finished=True
    )
    (spool / f"{SPOOL_PREFIX}{finished.pk}.ogg").write_bytes(b"uploaded already")
    (spool / f"{SPOOL_PREFIX}999999.wav").write_bytes(b"recording deleted")
    (spool / "something-else.ogg").write_bytes(b"not ours")
    assert services.recording_spool_recover() == 0
    assert spooled(spool) == ["something-else.ogg"]
    assert not default_storage.exists("recordings/x.ogg")


def test_the_command_recovers_a_given_spool_and_refuses_a_missing_one(spool, tmp_path):
    rec = a_recording()
    other = tmp_path / "dead-node-volume"
    other.mkdir()
    track = RecordingTrack.objects.create(
        recording=rec, user=rec.room.owner, file="recordings/dead.ogg"
    )
    (other / f"{SPOOL_PREFIX}{track.pk}.ogg").write_bytes(b"OggS-dead")
    out = []

    class Out:
        def write(self, text: str) -> None:
            out.append(text)

    call_command("recover_spooled_tracks", "--spool", str(other), stdout=Out())
    assert "1 spooled track(s) uploaded" in "".join(out)
    track.refresh_from_db()
    assert default_storage.open(track.file.name).read() == b"OggS-dead"
    assert os.listdir(other) == []
    with pytest.raises(CommandError, match="is not a directory"):
        call_command("recover_spooled_tracks", "--spool", str(tmp_path / "nope"))


async def test_the_reaper_logs_a_failed_recovery_and_goes_on(monkeypatch, caplog):
    def broken(**kwargs):
        raise OSError("bucket unreachable")

    monkeypatch.setattr(services, "recording_spool_recover", broken)
    with caplog.at_level(logging.WARNING):
        await reaper._recover_spool()
    assert "could not be recovered" in caplog.text


def test_a_failed_upload_leaves_the_track_unlocked_for_recovery(spool, monkeypatch):
    rec = a_recording()
    store = StorageTrackStore()
    out = store.open(rec.room_id, rec.pk, rec.room.owner_id, "opus")
    out.write(b"OggS-kept")

    def down(self, name, content, **kwargs):
        raise OSError("bucket unreachable")

    monkeypatch.setattr(BucketStorage, "save", down)
    with pytest.raises(OSError):
        store.close(rec.room_id, rec.pk, rec.room.owner_id, out, 9, 0.1)
    assert out.closed  # its lock is released: recovery may take it
    track = RecordingTrack.objects.get()
    assert not track.finished
    monkeypatch.undo()  # the bucket is back
    assert services.recording_spool_recover() == 1
    assert default_storage.open(RecordingTrack.objects.get().file.name).read() == b"OggS-kept"
    assert spooled(spool) == []


def test_a_failed_database_write_after_the_upload_still_releases_the_track(spool, monkeypatch):
    rec = a_recording()
    store = StorageTrackStore()
    out = store.open(rec.room_id, rec.pk, rec.room.owner_id, "opus")
    out.write(b"OggS-twice")
    track_id = out.track_id  # type: ignore[attr-defined]

    def down(*args, **kwargs):
        raise DatabaseError("database unreachable")

    monkeypatch.setattr(RecordingTrack.objects, "filter", down)
    with pytest.raises(DatabaseError):
        store.close(rec.room_id, rec.pk, rec.room.owner_id, out, 10, 0.1)
    assert out.closed
    monkeypatch.undo()
    # Uploaded, but not recorded as finished: recovery uploads it again and points the
    # track at that copy; nothing is lost.
    assert spooled(spool) == [f"{SPOOL_PREFIX}{track_id}.ogg"]
    assert services.recording_spool_recover() == 1
    track = RecordingTrack.objects.get(pk=track_id)
    assert default_storage.open(track.file.name).read() == b"OggS-twice"
