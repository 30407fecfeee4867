"""A mixed room: the mini-program example and the browser demo talk through one real node.

The mini-program is the example page's own code (clients/miniprogram/pages/index) run in
Node by tests/clients/miniprogram_peer.mjs, with a stand-in `wx` whose RecorderManager is
fed a 700 Hz tone and whose WebAudioContext keeps what the page plays. The browser is the
demo page in headless Chromium, its fake microphone a WAV file of 1200 Hz bursts. The node
runs as `make run` does (DEBUG on, no WeChat app), so the mini-program signs in with the
development sign-in, and it joins the browser's password-protected room through the
password prompt.

What a person would notice is checked, in each room codec: each side hears the other (the
other's tone is what dominates what it plays), both ways, and silence once the speaker
mutes. Mouth-to-ear latency through the node (capture of a burst's first sample to the
moment it plays, with the jitter buffer's share) and the voice frames' sizes are printed
(`pytest -s`) and recorded in docs/benchmarks.md; nothing here asserts a speed.
"""

from __future__ import annotations

import json
import math
import os
import queue
import secrets
import shutil
import statistics
import struct
import subprocess
import threading
import time
import wave
from pathlib import Path

import pytest

from tests.clients.conftest import tool_missing
from tests.clients.test_demo_browser import CHROMIUM, CHROMIUM_ARGS, Person
from tests.live import ROOT, Node, base_env, database_for_processes, migrate

pytestmark = [pytest.mark.browser, pytest.mark.processes]

PEER = Path(__file__).with_name("miniprogram_peer.mjs")
MP_HZ = 700  # the mini-program's tone
BROWSER_HZ = 1200  # the browser's
BURST_MS = 500  # tones come in bursts (on, then off) so that onsets can be timed
PASSWORD = "a-Long-pass-123"
# How much louder the expected tone must be than the other one in what a side plays.
DOMINANCE = 20


def tone_wav(path: Path, hz: int, *, rate: int = 48000, seconds: float = 2.0) -> None:
    """A mono 16-bit WAV: `hz` for BURST_MS, silence for BURST_MS, over and over
    (Chromium's fake microphone loops it)."""
    frames = bytearray()
    for i in range(int(rate * seconds)):
        on = (i * 1000 // rate // BURST_MS) % 2 == 0
        value = int(8000 * math.sin(2 * math.pi * hz * i / rate)) if on else 0
        frames += struct.pack("<h", value)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))


@pytest.fixture(scope="module")
def node_bin() -> str:
    node = shutil.which("node")
    if node is None:
        tool_missing("Node.js is not installed (apt-get install nodejs): mixed-room test not run")
    if not (ROOT / "clients" / "js" / "node_modules" / "ws" / "package.json").exists():
        tool_missing("clients/js/node_modules is missing: run `npm ci` in clients/js")
    return node


@pytest.fixture(scope="module")
def browser_with_tone(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        tool_missing(f"Chromium is not installed at {CHROMIUM}: mixed-room test not run")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        tool_missing("playwright is not installed (pip install -r requirements-dev.txt)")
    wav = tmp_path_factory.mktemp("mic") / "tone.wav"
    tone_wav(wav, BROWSER_HZ)
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def dev_node():
    """One daphne node as `make run` starts it: DEBUG on, no WeChat app id or secret."""
    url, cleanup = database_for_processes()
    env = base_env(
        DATABASE_URL=url,
        DJANGO_DEBUG="1",
        VOICEROOM_REDIS_PREFIX=f"mx{secrets.token_hex(3)}",
        VOICEROOM_WECHAT_APP_ID="",
        VOICEROOM_WECHAT_APP_SECRET="",
        DJANGO_LOG_LEVEL="WARNING",
    )
    migrate(env)
    node = Node("daphne", env).start()
    yield node
    node.stop()
    cleanup()


class MiniProgram:
    """The example page in Node, one JSON line per command."""

    def __init__(self, node: str, url: str) -> None:
        self.url = url
        self.proc = subprocess.Popen(
            [node, str(PEER)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.stderr: list[str] = []
        self.answers: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=self._drain, args=(self.proc.stderr, self.stderr.append), daemon=True
        ).start()
        threading.Thread(
            target=self._drain, args=(self.proc.stdout, self.answers.put), daemon=True
        ).start()
        self.counter = 0

    @staticmethod
    def _drain(stream, put) -> None:
        for line in stream:
            put(line)
        put("")

    def __call__(self, cmd: str, **args) -> dict:
        self.counter += 1
        self.proc.stdin.write(json.dumps({"id": self.counter, "cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.answers.get(timeout=30)
        except queue.Empty:
            pytest.fail(f"the mini-program peer did not answer {cmd} in 30 s")
        assert line, f"the mini-program peer died:\n{''.join(self.stderr)[-4000:]}"
        answer = json.loads(line)
        assert answer.get("ok"), f"{cmd} failed in the mini-program peer: {answer.get('error')}"
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# In the page: power of `hz` in what speaker `id` played lately (Goertzel), per sample.
BROWSER_POWER = """([id, hz]) => {
  const s = window.voiceroomDemo;
  const frames = s.recentFrom[id] || [];
  const k = 2 * Math.cos((2 * Math.PI * hz) / s.sampleRate);
  let s1 = 0, s2 = 0, n = 0;
  for (const frame of frames) {
    for (const x of frame) { const v = x + k * s1 - s2; s2 = s1; s1 = v; n += 1; }
  }
  return n ? (s1 * s1 + s2 * s2 - k * s1 * s2) / n : 0;
}"""


def wait_until(check, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def latency_ms(captures: list[float], plays: list[dict]) -> list[tuple[float, float]]:
    """For each burst the speaker started (a capture onset), the first onset the listener
    played within the burst's length: (mouth-to-ear ms, ms its frame waited in the
    jitter buffer). Later onsets inside a burst (after a buffer ran dry) are not counted."""
    out = []
    for capture in captures:
        after = [p for p in plays if capture <= p["at"] < capture + BURST_MS]
        if after:
            first = min(after, key=lambda p: p["at"])
            out.append((first["at"] - capture, first["waitedMs"]))
    return out


def describe(name: str, pairs: list[tuple[float, float]]) -> str:
    if not pairs:
        return f"{name}: no onset measured"
    total = [p[0] for p in pairs]
    jitter = [p[1] for p in pairs]
    return (
        f"{name}: mouth-to-ear median {statistics.median(total):.0f} ms "
        f"(min {min(total):.0f}, max {max(total):.0f}, n={len(total)}), "
        f"of which jitter buffer median {statistics.median(jitter):.0f} ms"
    )


@pytest.mark.parametrize("codec", ["opus", "pcm16"])
def test_mini_program_and_browser_hear_each_other(codec, node_bin, browser_with_tone, dev_node):
    from playwright.sync_api import expect

    room_name = f"Mixed {codec} {secrets.token_hex(2)}"
    alice = Person(browser_with_tone, dev_node.url, "Alice")
    mp = MiniProgram(node_bin, dev_node.url)
    try:
        # The browser creates a private room in the codec under test and takes seat 1.
        alice.sign_up()
        alice.page.fill("#room-name", room_name)
        alice.page.fill("#room-seats", "2")
        alice.page.fill("#room-password", PASSWORD)
        alice.page.select_option("#room-codec", codec)
        alice.page.click("#btn-create")
        alice.page.wait_for_selector("#room:not([hidden])")
        room_id = alice.stat("s.client.roomId")
        assert alice.stat("s.client.room.codec") == codec
        alice.page.click('.seat[data-index="0"] .seat-main')

        # The mini-program: wx.login is refused by a node without a WeChat app, so the
        # page offers the development sign-in; the room asks for its password.
        username = f"mp{secrets.token_hex(3)}"
        signed = mp("login", url=dev_node.url, username=username, password=PASSWORD)
        assert signed["devSignInOffered"] and signed["signedIn"], signed
        joined = mp("join", room=room_id, password=PASSWORD)
        assert joined["listed"]["locked"] is True and joined["askedPassword"] is True
        assert joined["room"]["codec"] == {"opus": "Opus", "pcm16": "PCM16"}[codec], joined
        mp("seat", index=1)
        expect(alice.page.locator('.seat[data-index="1"]')).to_contain_text(username)
        mp_id = alice.stat(
            "[...s.client.participants.values()].find(p => p.username === id).user_id", username
        )
        a_id = alice.user_id
        mp("mic", hz=MP_HZ, burstMs=BURST_MS)

        # The browser hears the mini-program: 700 Hz dominates what it plays from them.
        alice.wait_for("(s.nonSilentFramesFrom[id] || 0) >= 25", mp_id, timeout=20_000)

        def browser_hears_mp():
            mine = alice.page.evaluate(BROWSER_POWER, [mp_id, MP_HZ])
            other = alice.page.evaluate(BROWSER_POWER, [mp_id, BROWSER_HZ])
            return mine > DOMINANCE * other and mine > 1e-4

        wait_until(browser_hears_mp, "the browser to play the mini-program's 700 Hz")

        # The mini-program hears the browser: 1200 Hz dominates what it plays.
        def mp_hears_browser():
            got = mp("heard", since=mp("now")["at"] - 3000, hz=[MP_HZ, BROWSER_HZ])
            p = got["power"]
            return got["nonSilent"] >= 10 and p[str(BROWSER_HZ)] > DOMINANCE * p[str(MP_HZ)]

        wait_until(mp_hears_browser, "the mini-program to play the browser's 1200 Hz")
        assert alice.stat("s.codec") == {"opus": "opus", "pcm16": "pcm"}[codec]
        assert alice.stat(f"s.framesFrom[{mp_id}]") > 0

        # Let a few more bursts through for the latency figures, then measure.
        time.sleep(3)
        onsets = mp("onsets")
        mp_to_browser = latency_ms(
            onsets["capture"],
            [o for o in alice.stat("s.onsets") if o["id"] == mp_id],
        )
        browser_to_mp = latency_ms(alice.stat("s.micOnsets"), onsets["play"])
        print(f"\n[{codec}] {describe('mini-program -> browser', mp_to_browser)}")
        print(f"[{codec}] {describe('browser -> mini-program', browser_to_mp)}")
        sizes = mp("sent")["sizes"]
        sent, frames = alice.stat("[s.voiceBytesSent, s.framesSent]")
        # Each side sent the room's codec: 641-byte PCM16 frames, or Opus packets a
        # tenth of that (at most; silence is a few bytes).
        if codec == "pcm16":
            assert set(sizes) == {641} and sent == 641 * frames
        else:
            assert max(sizes) < 200 and sent / frames < 200, (max(sizes), sent / frames)
        browser_sizes = alice.stat("s.voiceSizes")
        # Bursts alternate with silence: frames of the tone are the ones over 10 bytes
        # (Opus codes digital silence in a few bytes).
        print(
            f"[{codec}] payload bytes per 20 ms frame while the tone plays: mini-program "
            f"mean {statistics.mean([n for n in sizes if n > 10]):.1f}, browser mean "
            f"{statistics.mean([n for n in browser_sizes if n > 10]):.1f}; over all frames, "
            f"silence included: {statistics.mean(sizes):.1f} and {sent / frames:.1f} "
            f"(n={len(sizes)}, {frames}); the server adds a 9-byte header per relayed frame"
        )
        lag = mp("lag")
        print(
            f"[{codec}] mini-program peer's event loop: a 5 ms timer fired late by "
            f"p50 {lag['p50']:.1f} ms, p95 {lag['p95']:.1f} ms, max {lag['max']:.0f} ms"
        )
        delays = alice.stat("s.encodeDelayMs")
        if delays:
            print(
                f"[{codec}] browser WebCodecs Opus encoder: median "
                f"{statistics.median(delays):.0f} ms from frame in to packet out"
            )

        # The mini-program mutes: the browser stops receiving its frames.
        mp("mute")
        expect(alice.page.locator(f'.participant[data-user-id="{mp_id}"]')).to_contain_text(
            "mic off"
        )
        time.sleep(0.5)  # frames already on their way
        before = alice.stat(f"s.framesFrom[{mp_id}]")
        time.sleep(1.5)
        assert alice.stat(f"s.framesFrom[{mp_id}]") == before, "frames after the mute"

        # The browser mutes: nothing more plays in the mini-program.
        alice.page.click("#btn-mute")
        wait_until(
            lambda: any(
                p["user_id"] == a_id and "mic off" in p["note"] for p in mp("people")["people"]
            ),
            "the mini-program to see the browser muted",
        )
        time.sleep(0.5)
        quiet_from = mp("now")["at"]
        time.sleep(1.5)
        after = mp("heard", since=quiet_from, hz=[BROWSER_HZ])
        assert after["nonSilent"] == 0, after

        mp("leave")
        assert alice.errors == []
    finally:
        mp.close()
        alice.context.close()
        if os.environ.get("VOICEROOM_SHOW_PEER_LOG"):
            print("".join(mp.stderr))
