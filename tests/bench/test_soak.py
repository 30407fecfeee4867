"""The soak's time series and verdict (bench.soak), and the load generator's send-time
buckets they rest on. Pure logic, plus one short run against the bare relay."""

from __future__ import annotations

import struct
import time
from array import array

import pytest

from bench import loadgen, run, soak
from bench.client import PAYLOAD_MIN, BenchClient, Stats
from bench.wsclient import OPEN

MS = 1_000_000  # ns


def test_marks_cover_warmup_then_window_from_its_start():
    assert soak.marks(60, 600, 30) == [float(t) for t in range(0, 661, 30)]
    # A warm-up that is not a multiple of the interval: the window start is still a mark,
    # and a last partial interval ends at the window end.
    assert soak.marks(45, 100, 30) == [0.0, 30.0, 45.0, 75.0, 105.0, 135.0, 145.0]
    assert soak.marks(0, 10, 5) == [0.0, 5.0, 10.0]
    with pytest.raises(ValueError):
        soak.marks(10, 10, 0)


def test_buckets_is_the_number_of_measured_intervals():
    assert soak.buckets(600, 30) == 20
    assert soak.buckets(100, 30) == 4
    assert soak.buckets(0.9, 0.3) == 3  # no float rounding up to 4
    for warmup, duration, interval in ((60, 600, 30), (45, 100, 30), (2, 0.9, 0.3)):
        measured = [t for t in soak.marks(warmup, duration, interval) if t >= warmup][:-1]
        assert len(measured) == soak.buckets(duration, interval)


def test_linear_fit():
    slope, intercept = soak.linear_fit([0, 1, 2, 3], [10, 12, 14, 16])
    assert slope == pytest.approx(2.0) and intercept == pytest.approx(10.0)
    slope, _ = soak.linear_fit([0, 1, 2, 3, 4], [5, 6, 5, 6, 5.5])
    assert slope == pytest.approx(0.1)
    assert soak.linear_fit([0, 1, 2], [1.0, None, 3.0]) == pytest.approx((1.0, 1.0))
    assert soak.linear_fit([1], [1]) is None
    assert soak.linear_fit([2, 2], [1, 5]) is None


def snap(t, recv, lat_n, cpu_server, busy, rss, drops=0, cpu_self=0.0, gaps=0, due=None,
         skipped=0, steal=0.0):  # fmt: skip
    return {
        "skipped_ticks": skipped,
        "steal": steal,
        "utc": f"t{t}",
        "t_s": t,
        "due_s": t if due is None else due,
        "recv": recv,
        "gap_frames": gaps,
        "lat_n": lat_n,
        "cpu_self": cpu_self,
        "cpu_server": cpu_server,
        "cpu_redis": None,
        "machine_busy": busy,
        "rss_mib": rss,
        "loadgen_rss_mib": 50.0,
        "metrics": {
            "voiceroom_voice_dropped_backlog_total": drops,
            "voiceroom_voice_dropped_overload_total": 0.0,
            "voiceroom_sockets_local": 200.0,
        },
    }


def test_build_rows_per_interval():
    # 10 s warm-up in one interval, then 3 intervals of 10 s (t = 10, 20, 30, 40).
    snaps = [
        snap(0.0, 0, 0, 0.0, 0.0, 100.0),
        snap(10.2, 1000, 0, 2.0, 3.0, 110.0, due=10.0),  # a late snapshot: still measured
        snap(20.2, 3000, 4, 3.0, 5.0, 111.0, drops=5, cpu_self=1.0, gaps=3),
        snap(30.2, 5000, 8, 5.0, 7.5, 112.0, drops=5, cpu_self=2.0, gaps=3, skipped=40),
        snap(40.2, 6000, 10, 6.0, 8.0, 113.5, drops=7, cpu_self=2.5, gaps=4, skipped=45, steal=1),
    ]
    lat = array("q", [ms * MS for ms in (1, 2, 3, 40, 5, 5, 5, 5, 7, 9, 11, 100)])
    rows = soak.build_rows(snaps, lat, [90, 100, 50], [100, 100, 50], warmup=10.0, lat_end=12)
    assert [r["phase"] for r in rows] == ["warm-up", "measure", "measure", "measure"]
    w, a, b, c = rows
    # Warm-up: no loss or latency (only frames sent in the window count).
    assert w["loss_pct"] is None and w["latency_ms"]["p99"] is None
    assert w["deliveries_per_s"] == pytest.approx(1000 / 10.2, abs=0.1)
    assert w["rss_start_mib"] == 100.0 and w["rss_mib"] == 110.0
    # Interval 1: received by send-time bucket 0: 90 of 100 expected.
    assert a["t_start_s"] == pytest.approx(0.2) and a["t_end_s"] == pytest.approx(10.2)
    assert a["loss_pct"] == pytest.approx(10.0)
    assert a["deliveries"] == 2000 and a["deliveries_per_s"] == pytest.approx(200.0)
    assert a["server_cpu_us_per_delivery"] == pytest.approx(1.0 / 2000 * 1e6)
    assert a["server_cpu_pct"] == pytest.approx(10.0)
    # machine 2.0 s busy - server 1.0 - loadgen 1.0 = 0: nobody else.
    assert a["other_processes_cpu_pct"] == pytest.approx(0.0)
    assert a["loadgen_cpu_pct"] == pytest.approx(10.0)
    assert a["drops"]["dropped_backlog"] == 5 and a["drops"]["dropped_rate"] == 0
    assert a["gap_frames"] == 3 and a["sockets_local"] == 200.0
    assert a["latency_ms"] == {"p50": 2.0, "p99": 40.0, "max": 40.0, "n": 4}
    # Interval 2: machine 2.5 - server 2.0 - loadgen 1.0 < 0: clamped to 0.
    assert b["other_processes_cpu_pct"] == 0.0
    assert b["loss_pct"] == 0.0 and b["drops"]["dropped_backlog"] == 0
    assert b["latency_ms"]["n"] == 4 and b["latency_ms"]["max"] == 5.0
    # Interval 3: 0.5 s busy - 1.0 server - 0.5 loadgen; the tail after the window
    # (lat_end) belongs to the last row.
    assert c["latency_ms"]["n"] == 4 and c["latency_ms"]["max"] == 100.0
    assert c["latency_ms"]["p50"] == 9.0
    assert c["drops"]["dropped_backlog"] == 2 and c["rss_mib"] == 113.5
    # The load generator's own stalls and the hypervisor's steal, per interval.
    assert [r["loadgen_skipped_ticks"] for r in rows] == [0, 0, 40, 5]
    assert c["steal_pct"] == pytest.approx(10.0) and b["steal_pct"] == 0.0
    assert c["utc_end"] == "t40.2"


def test_build_rows_others_cpu_and_missing_metrics():
    a = snap(0.0, 0, 0, 0.0, 0.0, 100.0)
    b = snap(10.0, 100, 0, 1.0, 8.0, 100.0, cpu_self=1.0)
    a["metrics"] = None
    rows = soak.build_rows([a, b], array("q"), [0], [0], warmup=0.0)
    # 8 s busy - 1 server - 1 loadgen = 6 s in 10 s: 60 % of a core.
    assert rows[0]["other_processes_cpu_pct"] == pytest.approx(60.0)
    assert rows[0]["drops"] is None and rows[0]["loss_pct"] is None


def series(rss, p99, loss_every=None, others=0.0, interval=30.0, start=None):
    """Measured rows as build_rows makes them: one per value of `rss` (MiB at the end);
    `start`: the RSS at the window start (default: the first value)."""
    rows = []
    start = rss[0] if start is None else start
    for k, (r, p) in enumerate(zip(rss, p99, strict=True)):
        lost = 1 if loss_every and k % loss_every == 0 else 0
        rows.append(
            {
                "phase": "measure",
                "t_start_s": k * interval,
                "t_end_s": (k + 1) * interval,
                "seconds": interval,
                "deliveries": 570_000,
                "deliveries_per_s": 19_000.0,
                "loadgen_cpu_pct": 20.0,
                "expected": 570_000,
                "received": 570_000 - lost,
                "loss_pct": 100.0 * lost / 570_000,
                "latency_ms": {"p50": 0.2, "p99": p, "max": p * 3, "n": 570_000},
                "gap_frames": lost,
                "rss_start_mib": start,
                "rss_mib": r,
                "server_cpu_us_per_delivery": 10.0,
                "other_processes_cpu_pct": others,
                "drops": dict.fromkeys(soak.DROP_COUNTERS, 0.0),
            }
        )
        start = r
    warm = dict(rows[0], phase="warm-up", t_start_s=-60.0, t_end_s=0.0, rss_mib=rss[0])
    warm["rss_start_mib"] = rss[0] - 30  # growth in the warm-up does not count
    return [warm, *rows]


def test_verdict_pass_when_flat():
    rss = [120.0, 120.5, 120.2, 120.6, 120.4, 120.5, 120.3, 120.6, 120.5, 120.4]
    v = soak.verdict(series(rss, [1.0, 1.2, 0.9, 1.1, 1.0, 1.3, 0.9, 1.0, 1.1, 1.0]))
    assert v["ok"] and v["verdict"].startswith("PASS")
    assert v["intervals"] == 10 and v["measured_min"] == pytest.approx(5.0)
    assert v["rss"]["start_mib"] == 120.0 and v["rss"]["end_mib"] == 120.4
    assert v["rss"]["growth_mib"] == pytest.approx(0.4)
    assert v["rss"]["growth_pct"] == pytest.approx(0.33, abs=0.01)
    assert v["rss"]["allowed_mib"] == pytest.approx(2.4)  # 2 % of 120 MiB > 2 MiB
    assert abs(v["rss"]["slope_mib_per_min"]) < 0.1
    assert v["loss"]["loss_pct"] == 0 and v["loss"]["received"] == 5_700_000
    assert v["loss"]["drops"] == dict.fromkeys(soak.DROP_COUNTERS, 0.0)
    assert v["latency"]["p99_first_ms"] == 1.0 and v["latency"]["p99_last_ms"] == 1.0
    assert v["latency"]["max_ms"] == pytest.approx(3.9)
    assert v["deliveries_per_s"] == pytest.approx(19000.0)
    assert v["server_cpu_us_per_delivery"] == 10.0
    assert not v["noise"]["noisy"]
    text = soak.summary(v)
    assert "PASS" in text and "120.0 MiB at the window start" in text


def test_verdict_fails_on_steady_rss_growth():
    # +0.5 MiB per 30 s interval = 1 MiB/min: 10 MiB over 10 minutes.
    rss = [100.0 + 0.5 * k for k in range(1, 21)]
    v = soak.verdict(series(rss, [1.0] * 20, start=100.0))
    assert not v["ok"] and v["verdict"].startswith("FAIL: rss")
    assert v["rss"]["ok"] is False
    assert v["rss"]["slope_mib_per_min"] == pytest.approx(1.0)
    assert v["rss"]["fitted_growth_mib"] == pytest.approx(10.0, abs=0.01)
    assert v["rss"]["start_mib"] == 100.0 and v["rss"]["end_mib"] == 110.0
    assert v["rss"]["growth_mib"] == pytest.approx(10.0)
    assert v["rss"]["growth_pct"] == pytest.approx(10.0)
    assert v["loss"]["ok"] and v["latency"]["ok"]


def test_verdict_fails_on_slow_growth_that_is_only_seen_by_the_fit():
    # 1.9 MiB end-to-end is under the 2 MiB allowed, but the line rises 2.9 MiB.
    rss = [100.0, 100.3, 100.5, 100.8, 101.0, 101.3, 101.6, 102.0, 102.4, 101.9]
    v = soak.verdict(series(rss, [1.0] * 10))
    assert v["rss"]["growth_mib"] == pytest.approx(1.9)
    assert v["rss"]["fitted_growth_mib"] > 2.0 and v["rss"]["ok"] is False


def test_verdict_fails_on_any_loss():
    v = soak.verdict(series([100.0] * 10, [1.0] * 10, loss_every=5))
    assert not v["ok"] and "loss" in v["verdict"]
    assert v["loss"]["received"] == 5_700_000 - 2
    assert v["loss"]["loss_pct"] == pytest.approx(100 * 2 / 5_700_000, abs=1e-6)
    assert v["loss"]["gap_frames"] == 2
    assert v["rss"]["ok"] and v["latency"]["ok"]
    assert soak.verdict(series([100.0] * 10, [1.0] * 10, loss_every=5), soak.Limits(loss_pct=0.1))[
        "ok"
    ]


def test_verdict_fails_on_creeping_latency_not_on_one_spike():
    creeping = [1.0 + 0.5 * k for k in range(10)]  # 1 -> 5.5 ms
    v = soak.verdict(series([100.0] * 10, creeping))
    assert v["latency"]["ok"] is False and "latency" in v["verdict"]
    assert v["latency"]["p99_first_ms"] == 1.0 and v["latency"]["p99_last_ms"] == 5.5
    assert v["latency"]["p99_slope_ms_per_min"] == pytest.approx(1.0)
    spike = [1.0] * 10
    spike[4] = 40.0  # one noisy interval in the middle
    v = soak.verdict(series([100.0] * 10, spike))
    assert v["latency"]["ok"] is True and v["latency"]["p99_max_ms"] == 40.0


def test_verdict_says_when_the_machine_was_noisy():
    v = soak.verdict(series([100.0] * 4, [1.0] * 4, others=55.0))
    assert v["ok"] and v["noise"]["noisy"] and v["noise"]["noisy_intervals"] == 4
    assert "noisy machine" in v["verdict"] and "55%" in v["verdict"]


def test_verdict_says_when_the_load_generator_itself_stalled():
    rows = series([100.0] * 4, [1.0] * 4, others=5.0)
    for r in rows:
        r["loadgen_skipped_ticks"] = 0
    rows[3]["loadgen_skipped_ticks"] = 120
    v = soak.verdict(rows)
    assert v["noise"]["noisy"] and v["noise"]["noisy_intervals"] == 0
    assert v["noise"]["loadgen_skipped_ticks"] == 120
    assert v["noise"]["intervals_with_skipped_ticks"] == 1
    assert v["verdict"].endswith(
        "noisy machine: the load generator's own loop stalled in 1 interval(s)"
        " (120 speaker ticks skipped)"
    )
    rows[3]["loadgen_skipped_ticks"] = 0
    assert not soak.verdict(rows)["noise"]["noisy"]


def test_verdict_without_measured_rows_or_rss():
    with pytest.raises(ValueError):
        soak.verdict(series([100.0], [1.0])[:1])  # the warm-up row only
    rows = series([100.0] * 3, [1.0] * 3)
    for r in rows:
        r["rss_mib"] = r["rss_start_mib"] = None
    v = soak.verdict(rows)
    assert not v["ok"] and v["verdict"].startswith("INCOMPLETE")


def test_table_has_a_row_per_interval():
    rows = series([100.0, 100.5], [1.0, 2.0])
    md = soak.table(rows)
    lines = md.splitlines()
    assert len(lines) == 2 + 3
    assert lines[2].startswith("| warm-up | -60 to 0 |")
    assert lines[4].startswith(
        "| measure | 30 to 60 | 19000 | 0.00 | 0.20 | 2.00 | 6.0 | 100.5 | 10.0 | 0/0/0/0 | 0 |"
    )
    assert lines[4].endswith("| 0 | 20 | - |")  # others' CPU, loadgen CPU, skipped ticks


def test_voice_frames_and_sends_are_bucketed_by_send_time():
    stats = Stats(rooms=1)
    stats.room_of = [0, 0]
    now = time.perf_counter_ns()
    stats.w0, stats.w1 = now - 3000 * MS, now + 1000 * MS
    stats.set_buckets(1000 * MS, soak.buckets(4.0, 1.0))
    assert stats.recv_b == [0, 0, 0, 0] and stats.sent_b == [[0, 0, 0, 0]]
    client = BenchClient("h:1", "/", stats, 1, 0, 120, want_welcome=False)
    client.state = OPEN
    pad = bytes(120 - PAYLOAD_MIN)

    def voice(seq, ts):
        body = struct.pack("!BII", 1, 1, seq) + struct.pack("!BqI", 2, ts, 0) + pad
        return struct.pack("!BBH", 0x82, 126, len(body)) + body

    sends = [stats.w0 + 10, stats.w0 + 1500 * MS, stats.w0 + 1600 * MS, stats.w0 - 5, now - 10]
    for seq, ts in enumerate(sends, 1):
        client.data_received(voice(seq, ts))
    assert stats.recv == 5 and stats.malformed == 0 and stats.gap_frames == 0
    # The one sent before the window (warm-up) is in no bucket.
    assert stats.recv_b == [1, 2, 1, 0]
    assert stats.win_recv == 4 == sum(stats.recv_b)


def test_run_scenario_soak_and_flags():
    assert run.SCENARIOS["soak"]["duration"] == 600 and run.SCENARIOS["soak"]["interval"] == 30
    args = run.build_parser().parse_args(
        ["--scenario", "soak", "--duration", "60", "--interval", "7.5"]
    )
    assert args.duration == 60.0 and args.interval == 7.5
    lg = loadgen.build_parser().parse_args(["--interval", "30"])
    assert lg.interval == 30.0
    with pytest.raises(ValueError):
        loadgen.LoadConfig(interval=-1).validate()


@pytest.mark.processes
def test_time_series_against_bare_relay(bare_relay):
    port, pid = bare_relay
    res = loadgen.run(
        target="bare",
        urls=[f"http://127.0.0.1:{port}"],
        rooms=2,
        members=3,
        speakers=1,
        fps=50,
        frame_bytes=120,
        duration=1.5,
        warmup=0.6,
        grace=0.3,
        interval=0.5,
        server_pids=[pid],
        progress=False,
    )
    rows = res["timeseries"]["rows"]
    assert [r["phase"] for r in rows] == ["warm-up", "warm-up", "measure", "measure", "measure"]
    measured = rows[2:]
    # The buckets add up to the whole window's figures.
    assert sum(r["expected"] for r in measured) == res["expected_deliveries"]
    assert sum(r["received"] for r in measured) == res["received_in_window"]
    assert sum(r["latency_ms"]["n"] for r in measured) == res["latency_ms"]["n"]
    for r in measured:
        assert r["expected"] == pytest.approx(2 * 25 * 2, abs=4)  # 2 rooms x 25 frames x 2
        assert r["loss_pct"] == 0 and r["latency_ms"]["p99"] > 0
        assert r["rss_mib"] > 0 and r["server_cpu_us_per_delivery"] is not None  # 10 ms ticks
        assert r["drops"] is None  # the bare relay has no /metrics
    v = res["soak"]
    assert v["loss"]["loss_pct"] == 0 and v["loss"]["ok"]
    assert v["rss"]["start_mib"] > 0 and v["intervals"] == 3
