"""Placement: each room has one home node, where all its sockets belong.

Two halves:
- the policy (`choose_home`, `ws_url_for`): pure functions over the nodes' heartbeats,
  with no I/O, so the same code runs in the servers, in the tests and in the capacity
  simulation (bench/capacity_sim.py);
- the directory (`Directory`): the heartbeats and the homes, kept in Redis and shared by
  every node.

Why Redis and not a Room column: a home is only meaningful while its node is alive, and
whether it is alive is itself known only from the heartbeats in Redis. If Redis loses its
data, the heartbeats go with it and every home has to be judged again anyway; the policy
then puts a room back where its members' sockets are (`prefer`), so nothing moves that
need not. Keeping it in Redis also costs the database no write per placement and no
migration. Without Redis (embedded mode, one process) there is no directory and every
`ws_url` is the path.

The load measure is the number of sockets a node reported at its last heartbeat, plus
`room_estimate` sockets for every room placed on it since (a node's own beat resets its
count): between two beats a burst of new rooms is spread instead of piling onto the node
that looked emptiest at the last beat.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

from realtime.redis_client import RedisConfig

ROOM_ESTIMATE = 20  # sockets a newly placed room is expected to bring (contract: 20-person rooms)


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    """One node as its last heartbeat described it."""

    node: str
    url: str  # public base URL (VOICEROOM_NODE_URL), "" when the deployment names none
    seen: float  # epoch seconds of the last heartbeat
    sockets: int  # open room sockets then
    capacity: int  # sockets it is meant to hold (VOICEROOM_NODE_CAPACITY)
    placed: int = 0  # rooms placed on it since that heartbeat

    def load(self, room_estimate: int = ROOM_ESTIMATE) -> int:
        return self.sockets + self.placed * room_estimate

    def alive(self, now: float, dead_after: float) -> bool:
        """Heard from within `dead_after` seconds of `now`."""
        return now - self.seen <= dead_after

    def spare(self, room_estimate: int = ROOM_ESTIMATE) -> bool:
        """Room for one more room of `room_estimate` sockets."""
        return self.load(room_estimate) + room_estimate <= self.capacity


def live(nodes: Iterable[NodeInfo], now: float, dead_after: float) -> dict[str, NodeInfo]:
    return {n.node: n for n in nodes if n.alive(now, dead_after)}


def _spread(room_id: int, node: str) -> bytes:
    # Ties (equally loaded nodes, e.g. a fresh cluster) go to a node picked by the room's
    # id (rendezvous hashing): stable for a room, different across rooms.
    return hashlib.blake2b(f"{room_id}:{node}".encode(), digest_size=8).digest()


def keeps_home(
    home: NodeInfo,
    *,
    now: float,
    dead_after: float,
    idle: bool = False,
    room_estimate: int = ROOM_ESTIMATE,
) -> bool:
    """Whether a room stays on its current home `home`: while the home is alive, except
    an `idle` room (no sockets) on a home with no room to spare (`choose_home`)."""
    return home.alive(now, dead_after) and (not idle or home.spare(room_estimate))


def choose_home(
    room_id: int,
    nodes: Iterable[NodeInfo],
    *,
    now: float,
    dead_after: float,
    current: str | None = None,
    idle: bool = False,
    prefer: Mapping[str, int] | None = None,
    room_estimate: int = ROOM_ESTIMATE,
) -> str | None:
    """The node where room `room_id` should live; None when no node is alive.

    - A room whose home (`current`) is alive stays there: rooms never move in steady
      state, however loaded their node, except an `idle` room (no sockets) whose home
      has no room to spare, which is placed again like a new room.
    - Otherwise (a new room, a dead home, an idle room on a full node): the node among
      `prefer` (room's sockets per node now) with the most of the room's sockets, if it
      has room to spare, so a room that lost its home stays with the members it has;
      else the live node with spare room and the lowest load per capacity; when every
      node is full, the least loaded one anyway (refusing is the load shedding's job).
    """
    alive = live(nodes, now, dead_after)
    if not alive:
        return None
    home = alive.get(current) if current else None
    if home is not None and keeps_home(home, now=now, dead_after=dead_after, idle=idle,
                                       room_estimate=room_estimate):  # fmt: skip
        return home.node
    spare = [n for n in alive.values() if n.spare(room_estimate)]
    if prefer:
        for node, _count in sorted(prefer.items(), key=lambda kv: (-kv[1], kv[0])):
            if node in alive and alive[node].spare(room_estimate):
                return node
    pool = spare or list(alive.values())
    best = min(
        pool,
        key=lambda n: (n.load(room_estimate) / max(n.capacity, 1), _spread(room_id, n.node)),
    )
    return best.node


def ws_url_for(room_id: int, base_url: str | None) -> str:
    """The `ws_url` of a room living on a node with public base URL `base_url`
    (`http(s)://host[:port][/prefix]`): its ws(s):// form plus `/ws/rooms/{id}/`; the
    path alone when the deployment names no node URL."""
    path = f"/ws/rooms/{room_id}/"
    if not base_url:
        return path
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}[parts.scheme]
    prefix = parts.path.rstrip("/")
    return urlunsplit((scheme, parts.netloc, prefix + path, "", ""))


def check_node_url(url: str) -> str:
    """VOICEROOM_NODE_URL, validated: an absolute http(s) URL without query or fragment."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"VOICEROOM_NODE_URL must be http(s)://host[:port][/prefix], not {url!r}")
    if parts.query or parts.fragment:
        raise ValueError("VOICEROOM_NODE_URL takes no query string or fragment")
    return url.rstrip("/")


# -- the directory in Redis -------------------------------------------------------------------

# Move a room's home from ARGV[2] ('' = none) to ARGV[3], only if it is still ARGV[2].
# KEYS: homes hash, old node's room set, new node's room set, placed-count hash.
# ARGV: room, old node, new node.
_MOVE = """
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[2] ~= '' then redis.call('SREM', KEYS[2], ARGV[1]) end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
return 1
"""


def _node_info(node: str, body: bytes, placed: bytes | None) -> NodeInfo:
    d = json.loads(body)
    return NodeInfo(
        node=node,
        url=d["url"],
        seen=float(d["seen"]),
        sockets=int(d["sockets"]),
        capacity=int(d["capacity"]),
        placed=int(placed or 0),
    )


class Directory:
    """Heartbeats and homes in Redis, shared by every node.

    Keys (prefix `vr:` by default):
      pl:nodes        hash node -> {"url", "seen", "sockets", "capacity"} json
      pl:placed       hash node -> rooms placed on it since its last heartbeat
      pl:home         hash room -> node
      pl:rooms:{node} set of the rooms homed on that node (to re-home them when it dies)
    """

    def __init__(self, redis: RedisConfig | str, prefix: str) -> None:
        # Through Sentinel when configured (realtime/redis_client.py), like every Redis user.
        self.r = RedisConfig.of(redis).client(socket_timeout=5, socket_connect_timeout=5)
        self.p = prefix + ":pl:"
        self._move = self.r.register_script(_MOVE)

    def beat(self, info: NodeInfo) -> None:
        body = {"url": info.url, "seen": info.seen, "sockets": info.sockets}
        body["capacity"] = info.capacity
        pipe = self.r.pipeline()
        pipe.hset(self.p + "nodes", info.node, json.dumps(body, separators=(",", ":")))
        pipe.hset(self.p + "placed", info.node, 0)
        pipe.execute()

    def nodes(self) -> list[NodeInfo]:
        pipe = self.r.pipeline()
        pipe.hgetall(self.p + "nodes")
        pipe.hgetall(self.p + "placed")
        raw, placed = pipe.execute()
        return [_node_info(node.decode(), body, placed.get(node)) for node, body in raw.items()]

    def node(self, node: str) -> NodeInfo | None:
        """One node's entry (with its `placed` count), or None when it has none."""
        pipe = self.r.pipeline()
        pipe.hget(self.p + "nodes", node)
        pipe.hget(self.p + "placed", node)
        body, placed = pipe.execute()
        return _node_info(node, body, placed) if body else None

    def home_of(self, room_id: int) -> str | None:
        raw = self.r.hget(self.p + "home", room_id)
        return raw.decode() if raw else None

    def place(
        self,
        room_id: int,
        *,
        now: float,
        dead_after: float,
        idle: bool = False,
        prefer: Mapping[str, int] | None = None,
    ) -> NodeInfo | None:
        """The room's home, placed (or placed again) by `choose_home` when it has none
        alive; atomic across nodes (of two nodes placing one room at once, one wins and
        the other answers with the winner's choice)."""
        for _ in range(5):
            current = self.home_of(room_id)
            if current:
                # Steady state (every join and ticket of a placed room): the home's own
                # entry answers, without reading every node's (docs/capacity.md).
                home = self.node(current)
                if home is not None and keeps_home(home, now=now, dead_after=dead_after, idle=idle):
                    return home
            nodes = self.nodes()
            chosen = choose_home(
                room_id,
                nodes,
                now=now,
                dead_after=dead_after,
                current=current,
                idle=idle,
                prefer=prefer,
            )
            if chosen is None:
                return None
            by_id = {n.node: n for n in nodes}
            if chosen == current:
                return by_id[chosen]
            keys = [
                self.p + "home",
                f"{self.p}rooms:{current or ''}",
                f"{self.p}rooms:{chosen}",
                self.p + "placed",
            ]
            if self._move(keys=keys, args=[room_id, current or "", chosen]):
                return by_id[chosen]
        return None

    def rooms_on(self, node: str) -> list[int]:
        return sorted(int(r) for r in self.r.smembers(f"{self.p}rooms:{node}"))

    def forget_node(self, node: str) -> None:
        """Drop a dead node's heartbeat (its rooms stay listed until re-homed)."""
        pipe = self.r.pipeline()
        pipe.hdel(self.p + "nodes", node)
        pipe.hdel(self.p + "placed", node)
        pipe.execute()

    def forget_room(self, room_id: int) -> None:
        node = self.home_of(room_id)
        pipe = self.r.pipeline()
        pipe.hdel(self.p + "home", room_id)
        if node:
            pipe.srem(f"{self.p}rooms:{node}", room_id)
        pipe.execute()

    def clear(self) -> None:
        keys = list(self.r.scan_iter(match=f"{self.p}*", count=1000))
        if keys:
            self.r.delete(*keys)
