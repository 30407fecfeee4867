"""Suite-wide set-up.

Tests that need MySQL/MariaDB or Redis are marked `mysql` / `redis`. They run when
DATABASE_URL / REDIS_URL point at those services, are skipped with a visible reason
otherwise, and FAIL instead of skipping when VOICEROOM_REQUIRE_SERVICES=1. Tests marked
`nginx` need Debian's /usr/sbin/nginx (apt-get install nginx), tests marked `sentinel`
/usr/bin/redis-server and /usr/bin/redis-sentinel (apt-get install redis-server
redis-sentinel), and are treated the same.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

REQUIRE = os.environ.get("VOICEROOM_REQUIRE_SERVICES") == "1"

# Property-based tests (hypothesis) run the same examples on every run and keep no example
# database, so CI is reproducible. To look for new failures, run them with other seeds:
#   pytest tests/rooms/ws/test_consumer_fuzz.py --hypothesis-profile=explore --hypothesis-seed=7
settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", derandomize=False, database=None, deadline=None)
settings.load_profile("ci")


def _missing(marker: str) -> str | None:
    if marker == "mysql" and not os.environ.get("DATABASE_URL", "").startswith("mysql"):
        return "needs MySQL/MariaDB: set DATABASE_URL=mysql://..."
    if marker == "redis" and not os.environ.get("REDIS_URL"):
        return "needs Redis: set REDIS_URL=redis://..."
    if marker == "nginx" and not os.access("/usr/sbin/nginx", os.X_OK):
        return "needs nginx: apt-get install -y nginx"
    if marker == "sentinel":
        for binary in ("/usr/bin/redis-server", "/usr/bin/redis-sentinel"):
            if not os.access(binary, os.X_OK):
                return f"needs {binary}: apt-get install -y redis-server redis-sentinel"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in ("mysql", "redis", "nginx", "sentinel"):
            if item.get_closest_marker(marker) is None:
                continue
            reason = _missing(marker)
            if reason is None:
                continue
            if REQUIRE:
                item.user_properties.append(("required_service_missing", reason))
            else:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item):
    for name, reason in item.user_properties:
        if name == "required_service_missing":
            pytest.fail(f"VOICEROOM_REQUIRE_SERVICES=1 but {reason}", pytrace=False)


@pytest.fixture(autouse=True)
def _clean_live_state(settings):
    """Each test gets a fresh realtime runtime (relay registry, presence store, voice bus,
    background tasks; made from this test's settings on first use), empty presence and
    placement, and an empty cache. The runtime is dropped afterwards, its tasks cancelled."""
    from django.core.cache import cache

    from realtime import runtime

    runtime.install(None)
    _clear(runtime.current())
    cache.clear()
    yield
    _clear(runtime.current())
    runtime.install(None)


def _clear(rt) -> None:
    rt.store.clear()
    if rt.placement is not None:
        rt.placement.clear()
