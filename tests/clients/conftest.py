"""Client tests: the JavaScript SDK (Node) and the demo page (Chromium) against a real node.

Node and Chromium are tools, not services: without them these tests are skipped with the
reason shown, and with VOICEROOM_REQUIRE_BROWSER=1 (CI sets it) they fail instead.
"""

from __future__ import annotations

import os
import secrets

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


@pytest.fixture(scope="session")
def client_node():
    """One daphne node (its own database) shared by the client tests."""
    url, cleanup = database_for_processes()
    env = base_env(
        DATABASE_URL=url,
        VOICEROOM_RESUME_WINDOW_S=str(RESUME_WINDOW_S),
        VOICEROOM_REDIS_PREFIX=f"cl{secrets.token_hex(3)}",
        DJANGO_LOG_LEVEL="WARNING",
    )
    migrate(env)
    node = Node("daphne", env).start()
    yield node
    node.stop()
    cleanup()
