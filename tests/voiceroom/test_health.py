"""/healthz, /readyz and /metrics, in-process and on a real uvicorn node."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import OperationalError, connections

from voiceroom import health

BASE_DIR = Path(__file__).resolve().parents[2]


def test_healthz_answers_without_touching_dependencies(client):
    # No django_db mark: the view would fail here if it queried the database.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_ok_when_database_and_channel_layer_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["channel_layer"]["ok"] is True


@pytest.mark.django_db(transaction=True)
async def test_readyz_ok_under_asgi(async_client):
    response = await async_client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ok"


class _BrokenLayer:
    """A channel layer whose backend is gone: every send fails."""

    async def new_channel(self, prefix="specific."):
        return f"{prefix}broken!x"

    async def send(self, channel, message):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    async def receive(self, channel):
        raise AssertionError("receive() must not be reached when send failed")


class _SilentLayer:
    """A channel layer that takes messages and never delivers them (a hung Redis)."""

    async def new_channel(self, prefix="specific."):
        return f"{prefix}silent!x"

    async def send(self, channel, message):
        return None

    async def receive(self, channel):
        await asyncio.Event().wait()


@pytest.mark.django_db
def test_readyz_503_when_channel_layer_send_fails(client, monkeypatch):
    monkeypatch.setattr(health, "get_channel_layer", lambda: _BrokenLayer())
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["channel_layer"] == {
        "ok": False,
        "error": "ConnectionError",
        "latency_ms": body["checks"]["channel_layer"]["latency_ms"],
    }
    assert body["checks"]["database"]["ok"] is True
    # The host in the exception stays in the log, not in the public answer.
    assert b"6379" not in response.content


@pytest.mark.django_db
def test_readyz_503_when_channel_layer_never_answers(client, monkeypatch):
    monkeypatch.setattr(health, "get_channel_layer", lambda: _SilentLayer())
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.3)
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 2.0
    assert response.status_code == 503
    check = response.json()["checks"]["channel_layer"]
    assert check["ok"] is False
    assert "no answer" in check["error"]


@pytest.mark.django_db
def test_readyz_503_when_no_channel_layer(client, monkeypatch):
    monkeypatch.setattr(health, "get_channel_layer", lambda: None)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"]["ok"] is False


@pytest.mark.django_db
def test_readyz_503_when_database_fails(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError(2003, "Can't connect to MySQL server on 'db' (111)")

    # On the class, so whichever thread runs the check gets the failing database.
    monkeypatch.setattr(type(connections["default"]), "cursor", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["error"] == "OperationalError"
    assert body["checks"]["channel_layer"]["ok"] is True


@pytest.mark.django_db
def test_readyz_failures_show_in_metrics(client, monkeypatch):
    monkeypatch.setattr(health, "get_channel_layer", lambda: _BrokenLayer())
    client.get("/readyz")
    text = client.get("/metrics").content.decode()
    assert 'voiceroom_ready_check_ok{check="channel_layer"} 0.0' in text
    assert 'voiceroom_ready_check_ok{check="database"} 1.0' in text


@pytest.mark.django_db
def test_metrics_prometheus_text(client):
    from accounts.models import User
    from rooms import services

    owner = User.objects.create_user(username="metric-owner", password="pw-123456789")
    services.room_create(owner=owner, name="one")
    closed = services.room_create(owner=owner, name="two")
    services.room_close(room=closed, actor=closed.owner)

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    # prometheus_client's default collectors: process (Linux) and platform.
    assert "process_resident_memory_bytes" in text
    assert "python_info{" in text
    # The app's own series.
    assert "voiceroom_node_info{" in text
    assert 'voiceroom_rooms{status="open"} 1.0' in text
    assert 'voiceroom_rooms{status="closed"} 1.0' in text
    assert "voiceroom_active_members 1.0" in text  # the open room's owner


def test_metrics_answer_while_database_is_unreachable(client):
    # No django_db mark: every query fails; the scrape still answers, without room series.
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "process_resident_memory_bytes" in text
    assert "voiceroom_rooms{" not in text


# --- a real node -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def node():
    """Start uvicorn on a free port with the given environment; yield its base URL."""
    started: list[subprocess.Popen] = []

    def start(**env: str) -> str:
        port = _free_port()
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DJANGO_SETTINGS_MODULE": "voiceroom.settings",
            "DJANGO_SECRET_KEY": "node-test-key-" + "x" * 40,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            **env,
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "voiceroom.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--lifespan",
                "off",
                "--log-level",
                "warning",
            ],
            cwd=BASE_DIR,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"node exited: {proc.stdout.read().decode()[-3000:]}")
            try:
                if _get(base + "/healthz")[0] == 200:
                    return base
            except OSError:
                time.sleep(0.1)
        raise AssertionError("node did not answer /healthz within 30 s")

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.processes
def test_real_node_not_ready_when_database_is_down(node):
    # Nothing listens on port 1: the database refuses at once.
    base = node(DATABASE_URL="mysql://root:@127.0.0.1:1/voiceroom")
    assert _get(base + "/healthz") == (200, b'{"status": "ok"}')
    status, body = _get(base + "/readyz")
    assert status == 503, body
    assert b'"database": {"ok": false' in body
    assert b'"channel_layer": {"ok": true' in body
    status, body = _get(base + "/metrics")
    assert status == 200
    assert b'voiceroom_ready_check_ok{check="database"} 0.0' in body


@pytest.mark.processes
def test_real_node_not_ready_when_redis_is_down(node, tmp_path):
    base = node(
        DATABASE_URL=f"sqlite:///{tmp_path / 'node.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    status, body = _get(base + "/readyz")
    assert status == 503, body
    assert b'"database": {"ok": true' in body
    assert b'"channel_layer": {"ok": false' in body


@pytest.mark.processes
@pytest.mark.redis
def test_real_node_ready_with_redis(node, tmp_path):
    base = node(
        DATABASE_URL=f"sqlite:///{tmp_path / 'node.sqlite3'}",
        REDIS_URL=os.environ.get("REDIS_URL", ""),
    )
    for _ in range(3):  # repeated probes reuse the node's Redis connection
        status, body = _get(base + "/readyz")
        assert status == 200, body
