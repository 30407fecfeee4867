"""docker/compose.sentinel.yaml (the Sentinel variant of docker/compose.yaml) agrees with
itself, with the base file and with the settings: every service that talks to Redis in
the base file follows the sentinels, which watch the master under the name the nodes ask
for, with a majority quorum."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from realtime.redis_client import RedisConfig

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "docker/compose.yaml").read_text())
OVERRIDE = yaml.safe_load((ROOT / "docker/compose.sentinel.yaml").read_text())


def _redis_users() -> list[str]:
    users = []
    for name, service in BASE["services"].items():
        environment = service.get("environment") or {}
        if "REDIS_URL" in environment:
            users.append(name)
    return users


def test_every_redis_user_of_the_base_file_follows_the_sentinels():
    users = _redis_users()
    assert {"migrate", "app1", "app2"} <= set(users)
    for name in users:
        environment = OVERRIDE["services"][name]["environment"]
        config = RedisConfig.from_env(
            environment["REDIS_URL"],
            environment["REDIS_SENTINELS"],
            environment["REDIS_SENTINEL_MASTER"],
        )
        assert config is not None and config.sentinel
        for host, port in config.sentinels:
            assert host in OVERRIDE["services"], host
            assert port == 26379


def test_the_sentinels_watch_that_master_with_a_majority_quorum():
    environment = OVERRIDE["x-sentinel-env"]
    sentinels = environment["REDIS_SENTINELS"].split(",")
    script = OVERRIDE["x-sentinel"]["command"][-1]
    monitor = re.search(r"^sentinel monitor (\S+) (\S+) (\d+) (\d+)$", script, flags=re.M)
    assert monitor, script
    name, host, port, quorum = monitor.groups()
    assert name == environment["REDIS_SENTINEL_MASTER"]
    assert (host, port) == ("redis", "6379") and host in BASE["services"]
    assert len(sentinels) // 2 < int(quorum) <= len(sentinels)
    replica = OVERRIDE["services"]["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
