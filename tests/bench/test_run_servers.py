"""bench.run --server: which nodes a run measures, and with which uvicorn protocol."""

from __future__ import annotations

import argparse

import pytest

from bench.run import Runner, build_parser, flush_ms, server_list


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_server_names_lists_and_groups():
    assert server_list("both") == ["uvicorn", "daphne"]
    assert server_list("all") == ["uvicorn", "uvicorn-asgi", "daphne"]
    assert server_list("none") == []
    assert server_list("uvicorn,uvicorn-asgi") == ["uvicorn", "uvicorn-asgi"]
    with pytest.raises(argparse.ArgumentTypeError):
        server_list("uvicorn,gunicorn")
    assert build_parser().parse_args([]).server == ["uvicorn"]


def test_uvicorn_runs_our_protocol_and_uvicorn_asgi_uvicorns_own():
    runner = Runner.__new__(Runner)
    ours, theirs = runner.server_argv("uvicorn", 1), runner.server_argv("uvicorn-asgi", 1)
    assert _option(ours, "--ws") == "realtime.servers.uvicorn:WebSocketProtocol"
    assert _option(theirs, "--ws") == "websockets-sansio"
    # Otherwise the same command.
    assert [w for w in ours if w != _option(ours, "--ws")] == [
        w for w in theirs if w != _option(theirs, "--ws")
    ]


def test_uvicorn_at_n_is_the_uvicorn_node_with_a_flush_window():
    assert server_list("uvicorn,uvicorn@20,uvicorn@2.5") == ["uvicorn", "uvicorn@20", "uvicorn@2.5"]
    runner = Runner.__new__(Runner)
    assert runner.server_argv("uvicorn@20", 1) == runner.server_argv("uvicorn", 1)
    assert flush_ms("uvicorn@20") == "20" and flush_ms("uvicorn") is None
    for bad in ("uvicorn@", "uvicorn@x", "uvicorn@-1", "uvicorn@101", "daphne@5"):
        with pytest.raises(argparse.ArgumentTypeError):
            server_list(bad)


def test_the_flush_window_reaches_the_node_environment(monkeypatch, tmp_path):
    import bench.run as run

    started: list[dict] = []

    class Proc:
        pid = 1

    def popen(argv, env, **kwargs):
        started.append(env)
        return Proc()

    monkeypatch.setattr(run.subprocess, "Popen", popen)
    monkeypatch.setattr(run, "wait_healthz", lambda *a: None)
    monkeypatch.setattr(run, "stop", lambda proc: None)
    runner = Runner.__new__(Runner)
    runner.env = {"PATH": "/bin"}
    runner.workdir = tmp_path
    runner.migrate = lambda: None  # type: ignore[method-assign]
    for server in ("uvicorn@20", "uvicorn"):
        with runner.server_nodes(server, 1):
            pass
    assert started[0]["VOICEROOM_VOICE_FLUSH_MS"] == "20"
    assert "VOICEROOM_VOICE_FLUSH_MS" not in started[1]
