"""Placement at scale, simulated: the REAL policy (realtime.placement.choose_home) over many
simulated nodes, on a simulated clock.

    python -m bench.capacity_sim                      # 100 nodes, 50,000 rooms (docs/capacity.md)
    python -m bench.capacity_sim --nodes 10 --rooms 500 --json out.json

What is simulated, and how it maps to the servers:
- every node heartbeats every `beat_s` (rooms/reaper.py: min(1 s, VOICEROOM_NODE_HEARTBEAT_S))
  with the sockets it holds; between two beats, rooms placed on it count `ROOM_ESTIMATE`
  sockets each (realtime.placement.Directory keeps that count in Redis);
- rooms arrive at `arrival_per_s`; each brings a random number of members (mean 20);
  they are placed by `choose_home` exactly as a join's `ws_url` places them;
- then `kill_pct` of the nodes die at once. The survivors' housekeeping runs every
  `beat_s`; a node is claimed dead once its last beat is older than `dead_after_s`
  (VOICEROOM_NODE_DEAD_AFTER_S), and its rooms are placed again by `choose_home` (the
  reaper's `rooms_rehome`), each taking `place_ms` of Redis round trips (measured:
  docs/capacity.md). "Time to re-home" is from the kill to the last room placed;
- then `add_pct` new, empty nodes join. Rooms in use do not move (a room never moves
  while its home lives); new rooms go to the emptiest nodes, so the balance comes back
  as rooms turn over: `turnover_pct` of the rooms end and as many new ones arrive.

Balance is max/mean of the sockets held by the live nodes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from collections import defaultdict

from realtime.placement import NodeInfo, choose_home


@dataclasses.dataclass
class SimConfig:
    nodes: int = 100
    rooms: int = 50_000
    capacity: int = 12_500  # sockets per node (VOICEROOM_NODE_CAPACITY)
    members_min: int = 5
    members_max: int = 35  # uniform: mean 20
    arrival_per_s: float = 1000.0
    beat_s: float = 1.0
    dead_after_s: float = 6.0
    place_ms: float = 1.5  # one Directory.place against local Redis, 100 nodes (measured)
    kill_pct: float = 10.0
    add_pct: float = 10.0
    turnover_pct: float = 30.0
    seed: int = 14


class Cluster:
    """Simulated nodes and rooms; placement goes through `choose_home` only."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.now = 0.0
        self.info: dict[str, NodeInfo] = {}
        self.alive: set[str] = set()
        self.home: dict[int, str] = {}
        self.size: dict[int, int] = {}
        self.rooms_of: dict[str, set[int]] = defaultdict(set)
        self.next_room = 1
        self.next_node = 0
        self.placements = 0

    # -- nodes -----------------------------------------------------------------------

    def add_node(self) -> str:
        name = f"n{self.next_node:04d}"
        self.next_node += 1
        self.alive.add(name)
        self.info[name] = NodeInfo(name, "", self.now, 0, self.cfg.capacity)
        return name

    def sockets(self, node: str) -> int:
        return sum(self.size[r] for r in self.rooms_of[node])

    def beat_all(self) -> None:
        for node in self.alive:
            self.info[node] = NodeInfo(node, "", self.now, self.sockets(node), self.cfg.capacity)

    def kill(self, nodes: list[str]) -> None:
        self.alive -= set(nodes)  # their info stays: last seen at their last beat

    # -- rooms -----------------------------------------------------------------------

    def place(self, room: int, current: str | None = None) -> str:
        chosen = choose_home(
            room,
            self.info.values(),
            now=self.now,
            dead_after=self.cfg.dead_after_s,
            current=current,
        )
        if chosen is None:
            raise RuntimeError("no live node")
        self.placements += 1
        if chosen != current:
            if current is not None:
                self.rooms_of[current].discard(room)
            self.rooms_of[chosen].add(room)
            self.home[room] = chosen
            i = self.info[chosen]
            self.info[chosen] = dataclasses.replace(i, placed=i.placed + 1)
        return chosen

    def open_rooms(self, count: int) -> None:
        """`count` new rooms arrive at `arrival_per_s`, nodes beating every `beat_s`."""
        per_beat = max(1, int(self.cfg.arrival_per_s * self.cfg.beat_s))
        for k in range(count):
            if k and k % per_beat == 0:
                self.now += self.cfg.beat_s
                self.beat_all()
            room = self.next_room
            self.next_room += 1
            self.size[room] = self.rng.randint(self.cfg.members_min, self.cfg.members_max)
            self.place(room)
        self.now += self.cfg.beat_s
        self.beat_all()

    def close_rooms(self, count: int) -> None:
        for room in self.rng.sample(sorted(self.home), count):
            self.rooms_of[self.home.pop(room)].discard(room)
            del self.size[room]
        self.now += self.cfg.beat_s
        self.beat_all()

    # -- measures --------------------------------------------------------------------

    def balance(self) -> dict:
        loads = [self.sockets(n) for n in sorted(self.alive)]
        mean = sum(loads) / len(loads)
        return {
            "live_nodes": len(loads),
            "sockets": sum(loads),
            "mean_sockets": round(mean, 1),
            "max_sockets": max(loads),
            "min_sockets": min(loads),
            "max_over_mean": round(max(loads) / mean, 3) if mean else None,
            "over_capacity_nodes": sum(1 for x in loads if x > self.cfg.capacity),
        }


def simulate(cfg: SimConfig) -> dict:
    t0 = time.perf_counter()
    c = Cluster(cfg)
    for _ in range(cfg.nodes):
        c.add_node()
    c.beat_all()
    c.open_rooms(cfg.rooms)
    out: dict = {"config": dataclasses.asdict(cfg), "placed": c.balance()}

    # Kill: the survivors claim each dead node once its last beat is dead_after_s old,
    # at their next housekeeping round, and re-home its rooms one by one.
    victims = c.rng.sample(sorted(c.alive), max(1, round(cfg.nodes * cfg.kill_pct / 100)))
    kill_at = c.now + c.rng.uniform(0, cfg.beat_s)  # somewhere between two beats
    last_seen = {v: c.info[v].seen for v in victims}
    c.kill(victims)
    on_dead = {v: sorted(c.rooms_of[v]) for v in victims}
    moved = 0
    finished = kill_at
    claim_rounds: dict[float, list[str]] = defaultdict(list)
    for v in victims:
        # The first housekeeping tick (every beat_s on the beat grid) after the deadline.
        deadline = last_seen[v] + cfg.dead_after_s
        tick = (int(deadline / cfg.beat_s) + 1) * cfg.beat_s
        claim_rounds[tick].append(v)
    for tick in sorted(claim_rounds):
        while c.now < tick:  # the survivors keep beating meanwhile
            c.now = min(tick, c.now + cfg.beat_s)
            c.beat_all()
        # Dead nodes are claimed by different survivors (an atomic claim each), so they
        # are re-homed in parallel: each takes len(rooms) * place_ms.
        for v in claim_rounds[tick]:
            for room in on_dead[v]:
                c.place(room, current=v)
                moved += 1
            finished = max(finished, tick + len(on_dead[v]) * cfg.place_ms / 1000)
    c.beat_all()
    left_on_dead = sum(len(c.rooms_of[v]) for v in victims)
    out["killed"] = {
        "nodes": len(victims),
        "rooms_on_them": sum(len(r) for r in on_dead.values()),
        "rooms_moved": moved,
        "rooms_left_on_dead_nodes": left_on_dead,
        "rehome_s": round(finished - kill_at, 2),
        **c.balance(),
    }

    # Add: new empty nodes; nothing in use moves. Then rooms turn over.
    added = [c.add_node() for _ in range(max(1, round(cfg.nodes * cfg.add_pct / 100)))]
    c.beat_all()
    homes_before = dict(c.home)
    out["added"] = {"nodes": len(added), "rooms_moved": 0, **c.balance()}
    turnover = round(len(c.home) * cfg.turnover_pct / 100)
    c.close_rooms(turnover)
    c.open_rooms(turnover)
    still = [r for r in homes_before if r in c.home]
    out["added"]["rooms_moved"] = sum(1 for r in still if c.home[r] != homes_before[r])
    out["after_turnover"] = {"rooms_turned_over": turnover, **c.balance()}
    out["placements"] = c.placements
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    return out


def report(res: dict) -> str:
    cfg = res["config"]
    rows = [
        ("placed", res["placed"], "-", "-"),
        (
            f"{res['killed']['nodes']} nodes killed",
            res["killed"],
            str(res["killed"]["rooms_moved"]),
            f"{res['killed']['rehome_s']:.2f}",
        ),
        (
            f"{res['added']['nodes']} nodes added",
            res["added"],
            str(res["added"]["rooms_moved"]),
            "-",
        ),
        (
            f"{res['after_turnover']['rooms_turned_over']} rooms turned over",
            res["after_turnover"],
            "-",
            "-",
        ),
    ]
    lines = [
        f"{cfg['nodes']} nodes x {cfg['capacity']} sockets, {cfg['rooms']} rooms of "
        f"{cfg['members_min']}-{cfg['members_max']} members, heartbeat {cfg['beat_s']:g} s, "
        f"dead after {cfg['dead_after_s']:g} s, {cfg['place_ms']:g} ms per placement",
        "",
        "| step | live nodes | sockets | mean | max | max/mean | over capacity | rooms moved "
        "| time to re-home s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, b, moved, took in rows:
        lines.append(
            f"| {name} | {b['live_nodes']} | {b['sockets']} | {b['mean_sockets']:.0f} | "
            f"{b['max_sockets']} | {b['max_over_mean']:.3f} | {b['over_capacity_nodes']} | "
            f"{moved} | {took} |"
        )
    lines.append("")
    lines.append(
        f"rooms left on dead nodes: {res['killed']['rooms_left_on_dead_nodes']}; "
        f"{res['placements']} placements in {res['wall_s']} s of simulation"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.capacity_sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    for f in dataclasses.fields(SimConfig):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    p.add_argument("--json", help="write the result here too")
    args = p.parse_args(argv)
    cfg = SimConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SimConfig)})
    res = simulate(cfg)
    print(report(res))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
