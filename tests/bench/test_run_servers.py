"""bench.run --server: which nodes a run measures, and with which uvicorn protocol."""

from __future__ import annotations

import argparse

import pytest

from bench.run import Runner, build_parser, server_list


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
