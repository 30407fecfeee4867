"""Client tests: the JavaScript SDK (Node) and the demo page (Chromium) against a real node.

Node and Chromium are tools, not services: without them these tests are skipped with the
reason shown, and with VOICEROOM_REQUIRE_BROWSER=1 (CI sets it) they fail instead.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.live import Node, base_env, database_for_processes, migrate

REQUIRE_TOOLS = os.environ.get("VOICEROOM_REQUIRE_BROWSER") == "1"
# Short, so that the SDK's "the window has passed" test waits only a few seconds.
RESUME_WINDOW_S = 3


def tool_missing(reason: str) -> None:
    """Skip, or fail under VOICEROOM_REQUIRE_BROWSER=1, because a tool is missing."""
    if REQUIRE_TOOLS:
        pytest.fail(f"VOICEROOM_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


class _Jscode2session(BaseHTTPRequestHandler):
    """WeChat's jscode2session as the mini-program example's test needs it: the code
    `code-<openid>` belongs to <openid>; any other code is refused (errcode 40029)."""

    def do_GET(self):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        code = query.get("js_code", "")
        if code.startswith("code-"):
            body = {"openid": code[5:], "session_key": "test-session-key"}
        else:
            body = {"errcode": 40029, "errmsg": "invalid code"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def fake_wechat():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jscode2session)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def client_node(fake_wechat):
    """One daphne node (its own database) shared by the client tests, with WeChat
    sign-in pointed at a local stand-in for jscode2session."""
    url, cleanup = database_for_processes()
    env = base_env(
        DATABASE_URL=url,
        VOICEROOM_RESUME_WINDOW_S=str(RESUME_WINDOW_S),
        VOICEROOM_REDIS_PREFIX=f"cl{secrets.token_hex(3)}",
        VOICEROOM_WECHAT_APP_ID="wx-test-app",
        VOICEROOM_WECHAT_APP_SECRET="wx-test-secret",
        VOICEROOM_WECHAT_API_BASE=fake_wechat,
        DJANGO_LOG_LEVEL="WARNING",
    )
    migrate(env)
    node = Node("daphne", env).start()
    yield node
    node.stop()
    cleanup()
