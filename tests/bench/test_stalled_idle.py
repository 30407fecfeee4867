"""Stalled listeners (`--stalled`) and memory per idle socket (bench.idle), on the bare relay.

The bare relay has no /metrics: for it the tool does not scrape (the voiceroom side of
`--stalled` is exercised by `python -m bench.run --scenario stalled`).
"""

from __future__ import annotations

import pytest

from bench import idle, loadgen, probes
from bench.loadgen import LoadConfig

METRICS_TEXT = """\
# HELP voiceroom_voice_dropped_backlog_total Voice frames dropped because ...
# TYPE voiceroom_voice_dropped_backlog_total counter
voiceroom_voice_dropped_backlog_total 42.0
voiceroom_voice_dropped_backlog_created 1.7e+09
voiceroom_sockets_local 7.0
python_info{implementation="CPython",major="3",version="3.11.7 x"} 1.0
not a sample
broken_value abc
"""


def test_parse_metrics():
    m = probes.parse_metrics(METRICS_TEXT)
    assert m["voiceroom_voice_dropped_backlog_total"] == 42
    assert m["voiceroom_sockets_local"] == 7
    assert m['python_info{implementation="CPython",major="3",version="3.11.7 x"}'] == 1
    assert "broken_value" not in m and "not" not in m


def test_stalled_members_are_the_last_listeners_of_each_room():
    cfg = LoadConfig(rooms=2, members=5, speakers=2, stalled=2)
    cfg.validate()
    assert [i for i in range(10) if cfg.is_stalled(i)] == [3, 4, 8, 9]
    assert not LoadConfig(members=5, speakers=2).is_stalled(4)
    with pytest.raises(ValueError):
        LoadConfig(members=5, speakers=2, stalled=4).validate()  # would stall a speaker
    assert LoadConfig(target="bare").want_metrics() is False
    assert LoadConfig(target="voiceroom").want_metrics() is True
    assert LoadConfig(target="bare", metrics=True).want_metrics() is True


@pytest.mark.processes
def test_stalled_listener_accounting_against_bare_relay(bare_relay):
    port, pid = bare_relay
    res = loadgen.run(
        target="bare",
        urls=[f"http://127.0.0.1:{port}"],
        rooms=2,
        members=4,
        speakers=1,
        stalled=1,
        fps=50,
        frame_bytes=1000,
        duration=2.0,
        warmup=0.5,
        grace=0.3,
        server_pids=[pid],
        progress=False,
    )
    st = res["stalled"]
    assert res["connections"]["connected"] == 8
    assert st["per_room"] == 1 and st["sockets"] == 2
    # Each frame is expected by the 2 listeners that read, not by the stalled one.
    assert res["expected_deliveries"] == res["sent_in_window"] * 2
    assert st["frames_for_stalled_in_window"] == res["sent_in_window"]
    assert st["frames_for_stalled_total"] == res["sent_total"]
    assert "frames_unaccounted" not in st  # needs the server's dropped_backlog
    assert res["loss_pct"] == 0
    assert res["received_in_window"] == res["expected_deliveries"]
    assert res["gap_frames"] == res["self_echo"] == res["misrouted"] == 0
    assert res["deliveries_per_s"] == pytest.approx(2 * 2 * 50, rel=0.15)
    # Paused sockets read nothing; once resumed they read what the relay buffered
    # (the bare relay has no backpressure), never counted in the measurement.
    assert st["frames_read_while_stalled"] == 0
    assert st["frames_read_after_resume"] > 0
    assert st["closed_before_resume"] == 0
    assert st["server_closed"] == []  # the kernel still says ESTABLISHED
    # What was sent to them while they did not read sits in their kernel buffer.
    assert st["client_queued_max_kib"] > 0
    assert res["probes"]["stalled_client_queued_kib"]["window_end"] > 0
    # A row a second: [s after stall, server RSS MiB, dropped_backlog, sockets, queued KiB].
    assert len(st["timeline"]) >= 2
    assert all(row[1] > 0 and row[2] is None and row[3] is None for row in st["timeline"])
    # No /metrics for the bare relay; the server's RSS is still read.
    probes = res["probes"]
    assert probes["metrics"] is None and probes["dropped_backlog_window"] is None
    rss = probes["server_rss_mib"]
    assert rss["load_start"] > 0 and rss["window_start"] > 0 and rss["window_end"] > 0
    assert "stalled listener(s)" in loadgen.summary_line(res)


@pytest.mark.processes
def test_scrape_metrics_of_a_server_without_metrics(bare_relay):
    port, _ = bare_relay
    assert probes.scrape_metrics([f"http://127.0.0.1:{port}"], timeout=3) is None


@pytest.mark.processes
def test_idle_sockets_against_bare_relay(bare_relay):
    port, pid = bare_relay
    row = idle.measure(
        "bare",
        f"http://127.0.0.1:{port}",
        [pid],
        label="bare",
        sockets=60,
        rooms=3,
        settle=0.3,
        cpu_window=0.5,
        warmup_sockets=10,
        progress=False,
    )
    assert row["sockets_connected"] == row["sockets_open_at_measure"] == 60
    assert row["cpu_ms_per_s_before"] >= 0 and row["cpu_ms_per_s_idle"] >= 0
    per_socket = (row["cpu_ms_per_s_idle"] - row["cpu_ms_per_s_before"]) * 1000 / 60
    # (from the rounded ms figures: 0.01 ms/s over 60 sockets is 0.17 us/s)
    assert row["cpu_us_per_idle_socket_s"] == pytest.approx(per_socket, abs=0.2)
    assert row["connect_failures"] == 0
    assert row["rss_before_bytes"] > 0 and row["rss_idle_bytes"] > 0
    expected = (row["rss_idle_bytes"] - row["rss_before_bytes"]) / 60 / 1024
    assert row["kib_per_idle_socket"] == pytest.approx(expected, abs=0.1)
    assert row["server_sockets_local"] == {"before": None, "idle": None, "after_close": None}
    assert "| bare | 60 |" in idle.table([row])
    with pytest.raises(ValueError):
        idle.measure("bare", "http://127.0.0.1:1", [pid], label="x", sockets=10, rooms=3)
