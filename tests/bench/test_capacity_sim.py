"""The capacity simulation (bench/capacity_sim.py) at a small size: it runs the real
placement policy, and what it reports holds: balanced nodes, every room of a killed
node moved within the contract's 10 s, nothing moved when nodes are added."""

from __future__ import annotations

import pytest

from bench import capacity_sim
from bench.capacity_sim import SimConfig, simulate
from realtime import placement


def test_small_cluster_balanced_rehomed_in_time_and_nothing_moves_on_add():
    res = simulate(SimConfig(nodes=10, rooms=2_000, capacity=6_000))
    placed, killed, added, after = (
        res["placed"],
        res["killed"],
        res["added"],
        res["after_turnover"],
    )
    assert placed["live_nodes"] == 10 and placed["max_over_mean"] < 1.1
    assert killed["nodes"] == 1 and killed["live_nodes"] == 9
    assert killed["rooms_moved"] == killed["rooms_on_them"] > 0
    assert killed["rooms_left_on_dead_nodes"] == 0
    assert killed["rehome_s"] <= 10.0
    assert killed["sockets"] == placed["sockets"]  # nobody lost
    assert added["live_nodes"] == 10 and added["rooms_moved"] == 0
    assert after["max_over_mean"] < added["max_over_mean"]  # new rooms fill the new node
    assert after["over_capacity_nodes"] == 0


def test_the_simulation_goes_through_the_real_policy(monkeypatch):
    calls = []
    real = placement.choose_home

    def spy(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(capacity_sim, "choose_home", spy)
    res = simulate(SimConfig(nodes=4, rooms=100, capacity=3_000))
    assert len(calls) == res["placements"] >= 100


def test_without_a_live_node_the_simulation_says_so():
    with pytest.raises(RuntimeError, match="no live node"):
        simulate(SimConfig(nodes=1, rooms=10, kill_pct=100))


def test_the_command_prints_the_table(capsys):
    assert capacity_sim.main(["--nodes", "4", "--rooms", "100", "--capacity", "3000"]) == 0
    out = capsys.readouterr().out
    assert "| 1 nodes killed |" in out and "max/mean" in out
