"""Real processes: evidence fetched from the speaker's node, and a recording cut by a
node's death still playable up to the crash."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import urllib.request

import pytest

from realtime.ogg import PRE_SKIP, RATE, parse_pages
from tests.live import Api, Node, base_env
from tests.rooms.test_live_nodes import join

pytestmark = [pytest.mark.processes]

PACKET = bytes([0xF8]) + b"\x42" * 59  # 20 ms of Opus (CELT fullband), 60 bytes
# What clients send (docs/protocol.md 4.2): the codec byte (0x02, Opus), then the packet.
# Evidence and recordings hold the packet alone.
WIRE = b"\x02" + PACKET


def _download(url: str, token: str) -> tuple[str, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.headers["Content-Type"], answer.read()


async def _speak(member, count: int, pace: float = 0.02) -> None:
    for _ in range(count):
        await member.ws.send(WIRE)
        await asyncio.sleep(pace)


@pytest.mark.redis
@pytest.mark.mysql
async def test_report_gets_the_evidence_from_the_speakers_node(live_db, tmp_path):
    env = base_env(
        DATABASE_URL=live_db,
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        VOICEROOM_REDIS_PREFIX=f"t{secrets.token_hex(3)}",
        VOICEROOM_MEDIA_ROOT=str(tmp_path / "media"),
    )
    nodes = [Node("uvicorn", env).start() for _ in range(2)]
    try:
        owner_api, _ = await asyncio.to_thread(Api.user, nodes[0].url)
        room = await asyncio.to_thread(
            owner_api.ok, "POST", "/api/rooms/", {"name": "x", "seat_count": 0}
        )
        speaker_api, speaker = await asyncio.to_thread(Api.user, nodes[0].url)
        reporter_api, reporter = await asyncio.to_thread(Api.user, nodes[1].url)
        a = await join(nodes[0], speaker_api, speaker, room["id"])  # speaks on node 0
        b = await join(nodes[1], reporter_api, reporter, room["id"])  # reports via node 1
        await asyncio.sleep(0.5)  # the voice bus's hello
        await _speak(a, 50)
        await a.ws.send('{"type":"chat","text":"cross-node words"}')
        await b.event("chat")
        report_api = Api(nodes[1].url, reporter_api.token)
        body = await asyncio.to_thread(
            report_api.ok,
            "POST",
            f"/api/rooms/{room['id']}/reports",
            {"user_id": speaker["id"], "reason": "abuse"},
        )
        # Node 1 relayed none of the speaker's voice: this came from node 0.
        assert 0.9 <= body["evidence_seconds"] <= 1.3, body
        files = list((tmp_path / "media" / "evidence").rglob("*.ogg"))
        assert len(files) == 1
        pages = list(parse_pages(files[0].read_bytes()))
        assert all(p.crc_ok for p in pages)
        assert sum(pk == PACKET for p in pages[2:] for pk in p.packets) == 50
        listed = await asyncio.to_thread(
            Api(nodes[0].url, owner_api.token).ok, "GET", f"/api/rooms/{room['id']}/reports"
        )
        assert [r["id"] for r in listed] == [body["id"]]
        await a.ws.close()
        await b.ws.close()
    finally:
        for n in nodes:
            n.stop()


async def test_recording_cut_by_a_killed_node_plays_up_to_the_crash(live_db, tmp_path):
    media = tmp_path / "media"
    env = base_env(DATABASE_URL=live_db, VOICEROOM_MEDIA_ROOT=str(media))
    node = Node("uvicorn", env).start()
    try:
        owner_api, owner = await asyncio.to_thread(Api.user, node.url)
        room = await asyncio.to_thread(
            owner_api.ok, "POST", "/api/rooms/", {"name": "rec", "seat_count": 0}
        )
        speaker_api, speaker = await asyncio.to_thread(Api.user, node.url)
        listener = await join(node, owner_api, owner, room["id"])
        a = await join(node, speaker_api, speaker, room["id"])
        state = await asyncio.to_thread(
            owner_api.ok, "POST", f"/api/rooms/{room['id']}/recording", {"active": True}
        )
        assert state["active"] is True
        await a.event("room.updated", where=lambda e: e["room"]["recording"])
        # 55 packets: a page holds 50, so the last 5 are on disk only if the writer's
        # periodic flush cut a page for them.
        await _speak(a, 55)
        await asyncio.sleep(1.2)  # past the writer's flush
        sent_before_kill = 55
        await _speak(a, 10)  # still in the writer's queue or an unflushed page
        node.kill()
        for ws in (a.ws, listener.ws):
            try:
                await ws.close()
            except Exception:
                pass
    finally:
        node.stop()
    tracks = list(media.rglob("*.ogg"))
    assert len(tracks) == 1, tracks
    data = tracks[0].read_bytes()
    pages = list(parse_pages(data))
    assert pages and all(p.crc_ok for p in pages)
    assert not pages[-1].flags & 0x04  # no end-of-stream page: it died
    granules = [p.granule for p in pages]
    assert granules == sorted(granules)
    real = sum(pk == PACKET for p in pages[2:] for pk in p.packets)
    assert sent_before_kill <= real <= sent_before_kill + 10
    # The track plays from the recording's start to the last flushed page: >= 1.1 s.
    assert (pages[-1].granule - PRE_SKIP) / RATE >= 1.1
    if shutil.which("opusdec"):
        out = tmp_path / "decoded.wav"
        done = await asyncio.to_thread(
            subprocess.run,
            ["opusdec", str(tracks[0]), str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert out.stat().st_size > 1.1 * RATE * 2  # over 1.1 s of 16-bit samples

    # A node started after the crash lists the track, measured from its file.
    node2 = Node("uvicorn", env).start()
    try:
        listed = await asyncio.to_thread(
            Api(node2.url, owner_api.token).ok, "GET", f"/api/rooms/{room['id']}/recordings"
        )
        (track,) = listed[0]["tracks"]
        assert track["user"]["id"] == speaker["id"]
        assert track["bytes"] == len(data) and track["duration_s"] >= 1.1
        kind, body = await asyncio.to_thread(_download, track["url"], owner_api.token)
        assert kind == "audio/ogg" and body == data
    finally:
        node2.stop()
