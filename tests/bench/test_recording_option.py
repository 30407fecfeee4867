"""bench.run --recording: the same server without and with N rooms recording, compared."""

from __future__ import annotations

import pytest

from bench.config import LoadConfig
from bench.run import build_parser, recording_table


def _row(server, record_rooms, cpu, p50, p99):
    return {
        "server": server,
        "record_rooms": record_rooms,
        "server_cpu_us_per_delivery": cpu,
        "latency_ms": {"p50": p50, "p99": p99, "max": p99},
        "loss_pct": 0.0,
        "params": {"rooms": 10},
    }


def test_table_gives_recording_over_none_ratios():
    md = recording_table(
        [_row("uvicorn", 0, 10.0, 1.0, 4.0), _row("uvicorn+rec10", 10, 11.0, 1.1, 6.0)]
    )
    line = md.splitlines()[-1]
    assert "uvicorn" in line and "| 10 |" in line
    assert "1.10" in line and "1.50" in line


def test_option_parses_and_loadgen_refuses_more_recorded_rooms_than_rooms():
    assert build_parser().parse_args(["--recording", "10"]).recording == 10
    with pytest.raises(ValueError):
        LoadConfig(rooms=2, record_rooms=3).validate()
