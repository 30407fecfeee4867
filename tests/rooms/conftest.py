"""Fixtures shared by the room tests that start real server processes."""

from __future__ import annotations

import pytest

from tests.live import base_env, database_for_processes, migrate


@pytest.fixture(scope="module")
def live_db():
    """A migrated database that a test module's server processes share (SQLite, or a
    fresh MySQL database when DATABASE_URL points at one)."""
    url, cleanup = database_for_processes()
    migrate(base_env(DATABASE_URL=url))
    yield url
    cleanup()
