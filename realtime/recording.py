"""Recording: one track per speaker, written off the relay's hot path.

The relay's tap (realtime/tap.py) hands each relayed room frame of a recorded room to
`Recorder.take`: one bounded deque append (frames past RECORD_QUEUE_FRAMES waiting are
dropped and counted, never waited for). A writer thread, one per process, drains the
queues every FLUSH_EVERY_S: it muxes each speaker's packets (Ogg Opus for Opus rooms,
WAV for PCM16 rooms), writes them and flushes a page, so a file cut off by a crash is
whole up to its last flushed page (at most FLUSH_EVERY_S before the crash).

Where tracks go is the rooms app's business (Django's storage API and the track rows):
it installs a `TrackStore` with `set_track_store`, so this module stays database-free.
Timing: a track's time zero is the recording's start (wall time, the same on every
node), and each packet is placed at the monotonic time the relay saw it, so tracks of
one recording line up and gaps in speech stay gaps (see realtime/ogg.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import BinaryIO, Protocol

from realtime.ogg import RATE, OggOpusWriter, audio_data

logger = logging.getLogger(__name__)

RECORD_QUEUE_FRAMES = 20000  # per room; ~4 s of 100 speakers at 50 frames/s
FLUSH_EVERY_S = 0.5


class TrackStore(Protocol):
    def open(self, room_id: int, recording_id: int, user_id: int, codec: str) -> BinaryIO: ...

    def close(
        self, room_id: int, recording_id: int, user_id: int, out: BinaryIO, size: int, dur: float
    ) -> None: ...


_store: TrackStore | None = None


def set_track_store(store: TrackStore | None) -> None:
    global _store
    _store = store


class WavWriter:
    """PCM16 track: a WAV header, then samples placed at their times (silence in gaps).
    The header's sizes are written at close; a file cut off earlier says 'unknown size'
    (0xFFFFFFFF), which players read to the end."""

    def __init__(self, out: BinaryIO, *, rate: int = 16000) -> None:
        from realtime.ogg import wav_bytes

        self.out = out
        self.rate = rate
        self.samples = 0
        head = bytearray(wav_bytes(b"", rate=rate))
        head[4:8] = head[40:44] = b"\xff\xff\xff\xff"
        out.write(bytes(head))
        self.bytes_written = len(head)

    def packet(self, data: bytes, at_samples: int) -> None:
        due = at_samples * self.rate // RATE
        if due - self.samples > self.rate * 6 // 100:
            gap = due - self.samples
            self.out.write(b"\0\0" * gap)
            self.samples += gap
            self.bytes_written += 2 * gap
        n = len(data) // 2
        self.out.write(data[: 2 * n])
        self.samples += n
        self.bytes_written += 2 * n

    def flush(self) -> None:
        pass

    def close(self) -> None:
        data = 2 * self.samples
        try:
            self.out.seek(4)
            self.out.write((36 + data).to_bytes(4, "little"))
            self.out.seek(40)
            self.out.write(data.to_bytes(4, "little"))
            self.out.seek(0, 2)
        except (OSError, ValueError):  # a stream that cannot seek keeps 'unknown size'
            pass

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate


class _Track:
    __slots__ = ("out", "writer")

    def __init__(self, out: BinaryIO, writer: OggOpusWriter | WavWriter) -> None:
        self.out = out
        self.writer = writer


class Recorder:
    """One room's recording on this node."""

    def __init__(self, room_id: int, recording_id: int, started_wall: float, codec: str) -> None:
        self.room_id = room_id
        self.recording_id = recording_id
        self.codec = codec
        # The relay's monotonic clock at the recording's (wall) start.
        self.t0 = time.monotonic() - (time.time() - started_wall)
        self.queue: deque[tuple[int, float, bytes]] = deque()
        self.dropped = 0
        self.stopped = False
        self.tracks: dict[int, _Track] = {}

    def take(self, user_id: int, payload: bytes, now: float) -> None:
        """The hot path: queue one frame, or drop it when the writer is behind."""
        queue = self.queue
        if len(queue) < RECORD_QUEUE_FRAMES:
            queue.append((user_id, now, payload))
        else:
            self.dropped += 1

    # -- the writer thread's side --------------------------------------------------------

    def write_pending(self) -> None:
        queue = self.queue
        touched = set()
        while queue:
            user_id, at, payload = queue.popleft()
            data = audio_data(payload, self.codec)  # without the clients' codec byte
            if data is None:
                continue
            track = self.tracks.get(user_id)
            if track is None:
                track = self._open(user_id)
                if track is None:
                    continue
            at_samples = max(0, int((at - self.t0) * RATE))
            track.writer.packet(data, at_samples)
            touched.add(user_id)
        for user_id in touched:
            track = self.tracks[user_id]
            track.writer.flush()
            track.out.flush()

    def _open(self, user_id: int) -> _Track | None:
        if _store is None:
            return None
        out = _store.open(self.room_id, self.recording_id, user_id, self.codec)
        writer: OggOpusWriter | WavWriter
        if self.codec == "pcm16":
            writer = WavWriter(out)
        else:
            writer = OggOpusWriter(
                out,
                serial=user_id & 0xFFFFFFFF,
                comments=[f"ROOM={self.room_id}", f"SPEAKER={user_id}"],
            )
        track = self.tracks[user_id] = _Track(out, writer)
        return track

    def finish(self) -> None:
        self.write_pending()
        for user_id, track in self.tracks.items():
            track.writer.close()
            track.out.flush()
            if _store is not None:
                _store.close(
                    self.room_id,
                    self.recording_id,
                    user_id,
                    track.out,
                    track.writer.bytes_written,
                    track.writer.duration_s,
                )
        self.tracks = {}


class Recordings:
    """This process's active recordings and the writer thread that serves them."""

    def __init__(self) -> None:
        self.active: dict[int, Recorder] = {}  # room -> recorder (read by the hot path)
        self.changed: dict[int, float] = {}  # room -> time.monotonic() of its last start/stop
        self._ending: list[Recorder] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._quit = False

    def start(self, room_id: int, recording_id: int, started_wall: float, codec: str) -> None:
        current = self.active.get(room_id)
        if current is not None and current.recording_id == recording_id:
            return
        if current is not None:
            self.stop(room_id)
        self.active[room_id] = Recorder(room_id, recording_id, started_wall, codec)
        self.changed[room_id] = time.monotonic()
        self._ensure_thread()

    def stop(self, room_id: int) -> None:
        rec = self.active.pop(room_id, None)
        if rec is not None:
            self.changed[room_id] = time.monotonic()
            rec.stopped = True
            with self._lock:
                self._ending.append(rec)
            self._wake.set()
            self._ensure_thread()

    def reconcile(self, room_id: int, control: dict | None, read_at: float) -> None:
        """Apply what the database said of the room's recording (`control`: its running
        recording's control message, or None), read from `read_at` (time.monotonic())
        on. An event that started or stopped this room's recorder since then is newer
        than the read, and wins. This is how a lost `recording.control` is made good."""
        if self.changed.get(room_id, float("-inf")) >= read_at:
            return
        if control is not None and control["active"]:
            self.start(room_id, control["recording_id"], control["started_at"], control["codec"])
        elif room_id in self.active:
            self.stop(room_id)
        else:
            self.changed.pop(room_id, None)  # nothing to remember of a room not recording

    def forget_changes(self, older_than: float) -> None:
        """Drop the change times (before `older_than`) of rooms not recording here."""
        for room_id, at in list(self.changed.items()):
            if at < older_than and room_id not in self.active:
                del self.changed[room_id]

    def recording_id(self, room_id: int) -> int | None:
        rec = self.active.get(room_id)
        return rec.recording_id if rec is not None else None

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._quit = False
            self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._quit:
            self._wake.wait(FLUSH_EVERY_S)
            self._wake.clear()
            self.write_once()
            with self._lock:
                if not self.active and not self._ending:
                    # Nothing records: the thread ends (`start` makes a new one).
                    self._thread = None
                    return

    def write_once(self) -> None:
        for rec in list(self.active.values()):
            try:
                rec.write_pending()
            except Exception:
                logger.exception("recording of room %s: write failed", rec.room_id)
        with self._lock:
            ending, self._ending = self._ending, []
        for rec in ending:
            try:
                rec.finish()
            except Exception:
                logger.exception("recording of room %s: finishing failed", rec.room_id)

    def shutdown(self) -> None:
        """Finish every track (a clean stop of the process) and end the thread."""
        for room_id in list(self.active):
            self.stop(room_id)
        self._quit = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
            self._thread = None
        self.write_once()
