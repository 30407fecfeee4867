"""Settings read from the environment, checked in fresh interpreters with a clean env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]

DUMP = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({
    "debug": settings.DEBUG,
    "db": settings.DATABASES["default"],
    "layers": settings.CHANNEL_LAYERS,
    "caches": settings.CACHES,
    "hosts": settings.ALLOWED_HOSTS,
    "resume": settings.VOICEROOM_RESUME_WINDOW_S,
    "ticket": settings.VOICEROOM_TICKET_TTL_S,
}, default=str))
"""

KEY = "a-test-secret-key-" + "k" * 40


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "voiceroom.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_with(**env: str) -> dict:
    done = run_python(DUMP, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_refuses_to_start_without_secret_key_when_debug_is_off():
    done = run_python("import django; django.setup()")
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in done.stderr


def test_refuses_an_empty_secret_key_too():
    done = run_python("import django; django.setup()", DJANGO_SECRET_KEY="", DJANGO_DEBUG="0")
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in done.stderr


def test_debug_starts_without_secret_key():
    found = settings_with(DJANGO_DEBUG="1")
    assert found["debug"] is True


SHOW_KEY = """
import logging
logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
import django
django.setup()
from django.conf import settings
print("KEY=" + settings.SECRET_KEY)
"""


def test_debug_without_secret_key_makes_up_a_random_key_per_process_and_warns():
    # A constant key would let anyone who read the source sign tickets for any user.
    runs = [run_python(SHOW_KEY, DJANGO_DEBUG="1") for _ in range(2)]
    keys = []
    for done in runs:
        assert done.returncode == 0, done.stderr
        keys.append(done.stdout.strip().splitlines()[-1].removeprefix("KEY="))
        assert "WARNING voiceroom.settings DJANGO_SECRET_KEY is not set" in done.stderr
        assert "will not survive a restart nor work across nodes" in done.stderr
    assert keys[0] != keys[1]
    assert all(len(key) >= 50 for key in keys)
    # A key that is set is used as it is, without the warning.
    done = run_python(SHOW_KEY, DJANGO_DEBUG="1", DJANGO_SECRET_KEY=KEY)
    assert done.stdout.strip().splitlines()[-1] == f"KEY={KEY}"
    assert "DJANGO_SECRET_KEY is not set" not in done.stderr


def test_defaults_are_sqlite_and_in_memory_layer():
    found = settings_with(DJANGO_SECRET_KEY=KEY)
    assert found["debug"] is False
    assert found["db"]["ENGINE"] == "django.db.backends.sqlite3"
    assert found["layers"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert found["hosts"] == []  # production: nothing is allowed unless configured
    assert found["resume"] == 20
    assert found["ticket"] == 60


def test_mysql_url_gives_utf8mb4_and_strict_mode():
    found = settings_with(
        DJANGO_SECRET_KEY=KEY, DATABASE_URL="mysql://vr:s3cret@db.example:3306/voiceroom"
    )
    db = found["db"]
    assert db["ENGINE"] == "django.db.backends.mysql"
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"]) == (
        "db.example",
        3306,
        "voiceroom",
        "vr",
    )
    assert db["OPTIONS"]["charset"] == "utf8mb4"
    assert "STRICT_TRANS_TABLES" in db["OPTIONS"]["init_command"]
    assert db["TEST"]["CHARSET"] == "utf8mb4"


def test_mysql_url_with_empty_password():
    db = settings_with(DJANGO_SECRET_KEY=KEY, DATABASE_URL="mysql://root:@127.0.0.1:3306/vr")["db"]
    assert (db["USER"], db["PASSWORD"], db["NAME"]) == ("root", "", "vr")


def test_redis_url_selects_channels_redis():
    found = settings_with(DJANGO_SECRET_KEY=KEY, REDIS_URL="redis://127.0.0.1:6379/3")
    layer = found["layers"]["default"]
    assert layer["BACKEND"].startswith("channels_redis.")
    assert layer["CONFIG"]["hosts"] == [{"address": "redis://127.0.0.1:6379/3"}]
    assert found["caches"]["default"]["BACKEND"] == "voiceroom.cache.SharedRedisCache"


def test_sentinel_settings_point_every_redis_user_at_the_master():
    found = settings_with(
        DJANGO_SECRET_KEY=KEY,
        REDIS_URL="redis://:s3cret@ignored:1/4",
        REDIS_SENTINELS="10.0.0.1:26379, 10.0.0.2:26380,[::1]:26381",
        REDIS_SENTINEL_MASTER="vr-main",
    )
    [host] = found["layers"]["default"]["CONFIG"]["hosts"]
    assert host["master_name"] == "vr-main"
    assert host["sentinels"] == [["10.0.0.1", 26379], ["10.0.0.2", 26380], ["::1", 26381]]
    assert (host["db"], host["password"]) == (4, "s3cret")
    assert "address" not in host and "host" not in host
    cache = found["caches"]["default"]
    assert cache["OPTIONS"]["pool_class"] == "realtime.redis_client.SentinelPool"
    assert cache["OPTIONS"]["master_name"] == "vr-main"


def test_sentinel_settings_refuse_half_a_configuration():
    done = run_python(
        DUMP, DJANGO_SECRET_KEY=KEY, REDIS_URL="redis:///0", REDIS_SENTINELS="h:26379"
    )
    assert done.returncode != 0
    assert "REDIS_SENTINEL_MASTER" in done.stderr
    done = run_python(DUMP, DJANGO_SECRET_KEY=KEY, REDIS_SENTINELS="h", REDIS_SENTINEL_MASTER="m")
    assert done.returncode != 0
    assert "is not host:port" in done.stderr


def test_environment_overrides():
    found = settings_with(
        DJANGO_SECRET_KEY=KEY,
        DJANGO_ALLOWED_HOSTS="voice.example.com,.example.org",
        VOICEROOM_RESUME_WINDOW_S="45",
        VOICEROOM_TICKET_TTL_S="30",
    )
    assert found["hosts"] == ["voice.example.com", ".example.org"]
    assert (found["resume"], found["ticket"]) == (45, 30)


def test_env_example_lists_every_variable_settings_read():
    import re

    source = (BASE_DIR / "voiceroom" / "settings.py").read_text()
    # env.str("NAME", ...), and the settings' own readers built on it (_rate, _on_off).
    reader = r"""(?:env(?:\.\w+)?|_rate|_on_off)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    read = set(re.findall(reader, source))
    assert "DJANGO_SECRET_KEY" in read and "REDIS_URL" in read
    example = (BASE_DIR / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert read - listed == set(), "add these to .env.example"
    readme = (BASE_DIR / "README.md").read_text()
    assert {name for name in read if f"`{name}`" not in readme} == set(), "add these to README"
