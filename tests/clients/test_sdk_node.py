"""The JavaScript SDK's own tests (`node --test clients/js/test/`) against a real daphne node.

They cover sign-in, rooms, every event, voice and whisper round trips, reconnect and
resume after a network loss, the fresh-ticket fallback, and the mini-program transport.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.clients.conftest import RESUME_WINDOW_S, tool_missing
from tests.live import ROOT

pytestmark = [pytest.mark.processes]

JS = ROOT / "clients" / "js"


@pytest.fixture(scope="module")
def node_bin() -> str:
    node = shutil.which("node")
    if node is None:
        tool_missing("Node.js is not installed (apt-get install nodejs npm): SDK tests not run")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        tool_missing(f"Node.js {version} is too old (20+ needed): SDK tests not run")
    if not (JS / "node_modules" / "ws" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            tool_missing("npm is not installed: cannot install the SDK's test dependencies")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            tool_missing(
                f"npm ci failed in clients/js:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
    return node


def test_sdk_suite_passes_against_a_real_server(node_bin, client_node):
    env = {
        **os.environ,
        "VOICEROOM_TEST_URL": client_node.url,
        "VOICEROOM_TEST_RESUME_WINDOW_S": str(RESUME_WINDOW_S),
    }
    done = subprocess.run(
        [node_bin, "--test", "--test-reporter=tap", "test/"],
        cwd=JS,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = done.stdout + done.stderr
    counts = {k: int(v) for k, v in re.findall(r"^# (pass|fail|skipped|todo) (\d+)$", output, re.M)}
    assert done.returncode == 0 and counts.get("fail") == 0, (
        f"node --test failed:\n{output[-12000:]}\n--- server log ---\n{client_node.output()}"
    )
    # Every test ran: none was skipped for want of a server.
    assert counts.get("skipped") == 0 and counts.get("pass", 0) >= 20, counts
