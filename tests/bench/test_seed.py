"""bench.seed: the benchmark's users made in bulk, usable like registered ones."""

from __future__ import annotations

import argparse

import pytest
from django.contrib.auth import authenticate
from rest_framework.test import APIClient

from bench import run, seed
from bench.rest import BenchUser, load_user_cache, save_user_cache

pytestmark = pytest.mark.django_db


def test_seeded_users_sign_in_and_use_their_token(tmp_path):
    cache = str(tmp_path / "users.json")
    save_user_cache(cache, [BenchUser("earlier", "pw", "tok", 1)])
    assert seed.main(["--count", "3", "--cache", cache, "--prefix", "b"]) == 0
    users = load_user_cache(cache)
    assert [u.username for u in users] == ["earlier", "b-0", "b-1", "b-2"]
    new = users[1:]
    assert len({u.token for u in new}) == 3
    for user in new:
        assert authenticate(username=user.username, password=user.password).pk == user.id
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {user.token}")
        me = api.get("/api/auth/me")
        assert me.status_code == 200, me.content
        assert me.json()["id"] == user.id
    # Anything but the password hash is per user.
    assert new[0].token != new[1].token


def test_bench_run_seeds_only_what_the_cache_lacks(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(run.subprocess, "run", lambda argv, **kw: calls.append(argv))

    def runner(rest: bool) -> run.Runner:
        r = run.Runner.__new__(run.Runner)
        r.args = argparse.Namespace(register_over_rest=rest)
        r.user_cache = str(tmp_path / "users.json")
        r.env = {}
        return r

    save_user_cache(str(tmp_path / "users.json"), [BenchUser("u", "p", "t", 1)] * 5)
    runner(False).seed_users(5)
    assert calls == []
    runner(False).seed_users(8)
    assert calls[0][1:] == [
        "-m",
        "bench.seed",
        "--count",
        "3",
        "--cache",
        str(tmp_path / "users.json"),
    ]
    runner(True).seed_users(100)
    assert len(calls) == 1
