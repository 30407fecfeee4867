"""Real processes: a uvicorn node delivers webhooks itself, is killed with SIGKILL in the
middle of a burst, and the node restarted (or the worker command) delivers the rest:
nothing is lost."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from tests.live import ROOT, Api, Node, _mysql_connect, base_env, database_for_processes, migrate
from tests.webhooks.receiver import Receiver, assert_per_room_order

pytestmark = pytest.mark.processes

SECRET = "live-webhook-secret"


def stored_events(url: str) -> list[tuple[int, str, str]]:
    """(room_id, uid, status) of every event in the processes' database, in id order."""
    query = "SELECT room_id, body, status FROM webhooks_event ORDER BY id"
    if url.startswith("mysql"):
        conn = _mysql_connect(url)
        conn.select_db(url.rsplit("/", 1)[1])
        conn.autocommit(True)
    else:
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        cursor = conn.cursor()
        cursor.execute(query)
        rows = cursor.fetchall()
    finally:
        conn.close()
    return [(room_id, json.loads(body)["id"], status) for room_id, body, status in rows]


class Worker(Node):
    """`manage.py webhooks_worker`: no HTTP port to wait for."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__("worker", env, argv=[sys.executable, "manage.py", "webhooks_worker"])

    def start(self, timeout: float = 30) -> Worker:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self


@pytest.fixture
def db_url():
    url, cleanup = database_for_processes()
    migrate(base_env(DATABASE_URL=url))
    yield url
    cleanup()


@pytest.mark.parametrize("restart", ["node", "worker"])
def test_a_node_killed_mid_burst_loses_no_event(db_url, restart):
    receiver = Receiver(delay_s=0.05).start()
    env = base_env(
        DATABASE_URL=db_url,
        VOICEROOM_WEBHOOK_URL=receiver.url,
        VOICEROOM_WEBHOOK_SECRET=SECRET,
        VOICEROOM_WEBHOOK_TIMEOUT_S="1",  # a lease of 8 s (3 x timeout + 5)
        VOICEROOM_WEBHOOK_BACKOFF_MIN_S="0.1",
        VOICEROOM_WEBHOOK_BACKOFF_MAX_S="0.5",
        VOICEROOM_WEBHOOK_POLL_S="0.1",
    )
    node = Node("uvicorn", env).start()
    worker = Worker(env)
    stop_burst = threading.Event()
    try:
        api, _ = Api.user(node.url)

        def burst() -> None:
            # Rooms created, closed and opened again, until the node dies under it.
            while not stop_burst.is_set():
                try:
                    room = api.ok("POST", "/api/rooms/", {"name": "burst"})
                    for act in ("close", "open", "close"):
                        api.ok("POST", f"/api/rooms/{room['id']}/{act}")
                except Exception:
                    return

        writers = [threading.Thread(target=burst, daemon=True) for _ in range(3)]
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + 60
        while len(receiver.bodies()) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(receiver.bodies()) >= 20, node.output()  # the node itself delivers
        node.kill()
        stop_burst.set()
        for writer in writers:
            writer.join(15)
        stored = stored_events(db_url)
        pending = [uid for _, uid, status in stored if status != "delivered"]
        assert pending, "killed too late: nothing was left to deliver"

        # The node restarted, or the worker command, finishes the job: the events the
        # dead node held included, once their lease runs out.
        if restart == "node":
            node.start()
        else:
            worker.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if all(status == "delivered" for *_, status in stored_events(db_url)):
                break
            time.sleep(0.2)
        final = stored_events(db_url)
        assert all(status == "delivered" for *_, status in final), node.output() + worker.output()
    finally:
        stop_burst.set()
        worker.stop()
        node.stop()
        receiver.stop()
    events = receiver.first_copies()
    assert {e["id"] for e in events} == {uid for _, uid, _ in final}
    # A copy twice only for what the dead node had in flight (one per room at most).
    assert len(receiver.bodies()) - len(events) <= len({room for room, _, _ in final})
    receiver.check_signatures(SECRET)
    by_room: dict[int, list[str]] = {}
    for room_id, uid, _ in final:
        by_room.setdefault(room_id, []).append(uid)
    assert_per_room_order(events, by_room)
