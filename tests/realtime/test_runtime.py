"""The realtime runtime owns every per-process singleton and background task."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from realtime import presence, runtime
from realtime.relay import Endpoint


def _a_runtime(**kwargs) -> runtime.Runtime:
    kwargs.setdefault("shed_after_lag_s", 0.15)
    kwargs.setdefault("stalled_close_s", 10.0)
    return runtime.Runtime(**kwargs)


async def test_nothing_runs_until_started_and_start_is_once_per_loop(monkeypatch):
    runs = []

    async def job(rt):
        runs.append(rt)
        await asyncio.Event().wait()

    monkeypatch.setattr(runtime, "_jobs", {"job": job})
    rt = _a_runtime()
    assert not rt.running and rt.relay.tasks() == []
    rt.start()
    tasks = list(rt._tasks) + rt.relay.tasks()
    rt.start()  # a second socket: nothing new
    assert list(rt._tasks) + rt.relay.tasks() == tasks
    await asyncio.sleep(0)
    assert runs == [rt]  # the job ran once, with its runtime
    await rt.stop()
    assert all(t.done() for t in tasks) and not rt.running


async def test_the_speak_recheck_corrects_an_endpoint_the_events_left_wrong(monkeypatch):
    asked = []

    async def check(rooms):
        asked.append(rooms)
        return {(1, 2): False, (1, 3): True}

    monkeypatch.setattr(runtime, "_jobs", {})
    monkeypatch.setattr(runtime, "_speak_check", check)
    monkeypatch.setattr(runtime, "_recording_check", None)
    rt = _a_runtime(speak_recheck_s=0.05)
    sent = []

    async def send(message):
        sent.append(message)

    muted = Endpoint(room_id=1, user_id=2, send=send)
    muted.can_speak = True  # the mute's event was lost
    allowed = Endpoint(room_id=1, user_id=3, send=send)
    rt.relay.add(muted)
    rt.relay.add(allowed)
    rt.start()
    await asyncio.sleep(0.2)
    await rt.stop()
    assert asked and asked[0] == {1: [2, 3]}
    assert muted.can_speak is False and allowed.can_speak is True


def test_each_test_gets_a_fresh_runtime_and_presence_store():
    rt = runtime.current()
    assert presence.store() is rt.store
    assert rt.relay.rooms == {}
    old = runtime.install(None)
    assert old is rt and runtime.current() is not rt


@pytest.mark.parametrize(
    "forbidden", ["rooms.models", "rooms.services", "rooms.api", "rooms.ws", "accounts"]
)
def test_realtime_imports_nothing_from_rooms_models_services_faces_or_accounts(forbidden):
    code = (
        "import sys, django;"
        "import realtime.runtime, realtime.relay, realtime.bus, realtime.presence,"
        " realtime.limits, realtime.servers.sockets, realtime.servers.daphne,"
        " realtime.servers.uvicorn;"
        f"f = {forbidden!r};"
        "bad = [m for m in sys.modules if m == f or m.startswith(f + '.')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _control(recording_id: int, active: bool = True) -> dict:
    return {
        "type": "recording.control",
        "recording_id": recording_id,
        "active": active,
        "started_at": 1.0,
        "codec": "opus",
    }


async def test_the_recheck_makes_good_a_lost_recording_control(monkeypatch):
    # Room 1 records (its start event was lost); room 2's recording ended (its stop was
    # lost); room 3 records on a node that already knows.
    answers = {1: _control(7), 3: _control(9)}
    asked = []

    async def check(room_ids):
        asked.append(room_ids)
        return answers

    monkeypatch.setattr(runtime, "_jobs", {})
    monkeypatch.setattr(runtime, "_speak_check", None)
    monkeypatch.setattr(runtime, "_recording_check", check)
    rt = _a_runtime(speak_recheck_s=0.05)
    recordings = rt.tap.recordings

    async def send(message):
        pass

    for room_id in (1, 3):
        rt.relay.add(Endpoint(room_id=room_id, user_id=5, send=send))
    recordings.start(2, 8, 1.0, "opus")  # no socket left in room 2: still re-checked
    recordings.start(3, 9, 1.0, "opus")
    kept = recordings.active[3]
    try:
        rt.start()
        await asyncio.sleep(0.2)
        await rt.stop()
        assert asked[0] == [1, 2, 3]
        assert recordings.recording_id(1) == 7
        assert recordings.recording_id(2) is None
        assert recordings.active[3] is kept  # the same recorder, not a new one
    finally:
        recordings.shutdown()


def test_an_event_newer_than_the_read_wins_over_it():
    from realtime.recording import Recordings

    recordings = Recordings()
    try:
        read_at = time.monotonic()
        recordings.start(1, 7, 1.0, "opus")  # the start event arrived during the read
        recordings.reconcile(1, None, read_at)  # the read did not see it yet
        assert recordings.recording_id(1) == 7
        read_at = time.monotonic()
        recordings.stop(1)  # the stop event arrived during the next read
        recordings.reconcile(1, _control(7), read_at)
        assert recordings.recording_id(1) is None
        # A read after both is applied; an inactive control stops nothing it does not see.
        read_at = time.monotonic() + 1
        recordings.reconcile(1, _control(7), read_at)
        assert recordings.recording_id(1) == 7
        recordings.reconcile(1, _control(7, active=False), read_at + 1)
        assert recordings.recording_id(1) is None
        recordings.forget_changes(read_at + 10)
        assert recordings.changed == {}
    finally:
        recordings.shutdown()
