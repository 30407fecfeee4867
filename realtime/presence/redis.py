"""`RedisStore`: presence shared by every node through Redis (REDIS_URL set); small Lua
scripts make the compare-and-set steps atomic across nodes."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import cast

from redis.exceptions import RedisError

from realtime.presence.store import (
    AttachResult,
    ResumeRefused,
    Session,
    _carry,
    _redeemable,
    _window,
)
from realtime.redis_client import RedisConfig

MINE_GRACE_S = 60.0  # a socket attached this recently may still be opening (RedisStore)


def _text(value: bytes | str) -> str:
    """A key, member or value read from Redis, as text. The client does not decode
    responses, so it is bytes; redis-py's types also allow str (decode_responses=True)."""
    return value if isinstance(value, str) else value.decode()


# Attach = compare-and-set of the whole session. KEYS: room hash, the replaced session's
# token key (the new one's when there is none), the new token key, the deadlines zset.
# ARGV: user, the session json exactly as read ('' = none), the new json, the new token's
# value "room:user:session". Writes only if the session is still byte for byte the one
# the caller read and checked, so of two nodes redeeming one token exactly one wins; the
# replaced token dies in the same step.
_ATTACH = """
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if KEYS[2] ~= KEYS[3] then redis.call('DEL', KEYS[2]) end
redis.call('SET', KEYS[3], ARGV[4])
redis.call('ZREM', KEYS[4], ARGV[4])
return 1
"""

# Compare-and-set of the whole session json. KEYS[1] room hash; ARGV: user, json as read,
# new json.
_SWAP = """
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# Optimistic retries before giving up (as a Redis error: the socket closes 4503).
_CAS_TRIES = 20

# Compare the stored session's id (ARGV[2]) and socket channel (ARGV[4]), each only when
# given, then write the new value (or delete when ARGV[3] == '').
_CAS = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return false end
local decoded = cjson.decode(current)
if ARGV[2] ~= '' and decoded['session_id'] ~= ARGV[2] then return false end
if ARGV[4] ~= '' and decoded['channel'] ~= ARGV[4] then return false end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return current
"""


class RedisStore:
    """Presence shared by every node through Redis (REDIS_URL set).

    Keys (prefix `vr:` by default):
      p:{room}            hash user_id -> Session json
      rt:{token}          "room:user:session" of the session's latest token only (deleted
                          when redeemed or replaced; expires with the window once detached)
      deadlines           zset "room:user:session" -> window end
      beats               zset node -> last heartbeat
      nodes               hash node -> last heartbeat, of nodes of a release before
                          2026-12-04 (a rolling upgrade): still claimed when they die
      n:{node}            set "room:user" attached through that node

    Redis keeps only live state, and may lose it (restarted without persistence, or a
    failover to a replica that lagged). So each node also remembers, in its own memory,
    the session of every socket it attached (`_mine`, by socket channel): with that,
    `reattach` puts its live sockets back when the shared copy is gone.
    """

    def __init__(self, redis: RedisConfig | str, prefix: str) -> None:
        # With Sentinel, each new connection asks the sentinels for the master: after a
        # failover the next command (retried by redis-py) reaches the promoted replica.
        self.r = RedisConfig.of(redis).client(socket_timeout=5, socket_connect_timeout=5)
        self.p = prefix + ":"
        self._mine: dict[str, tuple[float, Session]] = {}  # channel -> (attached at, session)
        self._mine_lock = threading.Lock()
        self._attach = self.r.register_script(_ATTACH)
        self._swap = self.r.register_script(_SWAP)
        self._cas = self.r.register_script(_CAS)

    def _room(self, room_id: int) -> str:
        return f"{self.p}p:{room_id}"

    def attach(self, room_id, user_id, *, node, channel, resume_token=None):
        room_key = self._room(room_id)
        for _ in range(_CAS_TRIES):
            raw = self.r.hget(room_key, user_id)
            previous = Session.loads(raw) if raw else None
            if resume_token is not None and not _redeemable(previous, resume_token, time.time()):
                raise ResumeRefused
            session = _carry(previous, room_id, user_id, node, channel)
            new_key = f"{self.p}rt:{session.resume_token}"
            old_key = f"{self.p}rt:{previous.resume_token}" if previous else new_key
            member = f"{room_id}:{user_id}:{session.session_id}"
            if self._attach(
                keys=[room_key, old_key, new_key, f"{self.p}deadlines"],
                args=[user_id, raw or "", session.dumps(), member],
            ):
                break
            # Changed since read (another socket, a detach, a save): check it again.
        else:
            raise RedisError("presence kept changing under attach")
        pipe = self.r.pipeline()
        if previous is not None and previous.node != node:
            pipe.srem(f"{self.p}n:{previous.node}", f"{room_id}:{user_id}")
        pipe.sadd(f"{self.p}n:{node}", f"{room_id}:{user_id}")
        pipe.execute()
        self._remember(session)
        return AttachResult(session=session, previous=previous)

    def _remember(self, session: Session) -> None:
        with self._mine_lock:
            self._mine[session.channel] = (time.monotonic(), dataclasses.replace(session))

    def _forget(self, channel: str) -> None:
        with self._mine_lock:
            self._mine.pop(channel, None)

    def keep_only(self, live: set[str]) -> dict[str, Session]:
        """Forget the sessions of sockets that ended without a detach here (kicked or
        replaced through another node); returns those kept, by channel. Recent ones stay:
        they may still be opening (attached, not yet among the live sockets)."""
        old = time.monotonic() - MINE_GRACE_S
        with self._mine_lock:
            self._mine = {c: e for c, e in self._mine.items() if c in live or e[0] > old}
            return {c: e[1] for c, e in self._mine.items()}

    def detach(self, room_id, user_id, channel, *, seq):
        self._forget(channel)
        current = self.get(room_id, user_id)
        if current is None or current.channel != channel or not current.connected:
            return None
        return self._detach(current, seq=seq)

    def _detach(self, current: Session, *, seq: int | None) -> Session | None:
        window = _window()
        deadline = time.time() + window
        updated = dataclasses.replace(
            current,
            connected=False,
            deadline=deadline,
            seq=current.seq if seq is None else seq,
            seq_stale=seq is None,
        )
        done = self._cas(
            keys=[self._room(current.room_id)],
            args=[current.user_id, current.session_id, updated.dumps(), current.channel],
        )
        if not done or not Session.loads(done).connected:
            return None
        member = f"{current.room_id}:{current.user_id}:{current.session_id}"
        pipe = self.r.pipeline()
        pipe.zadd(f"{self.p}deadlines", {member: deadline})
        pipe.expire(f"{self.p}rt:{current.resume_token}", int(window) + 5)
        pipe.srem(f"{self.p}n:{current.node}", f"{current.room_id}:{current.user_id}")
        pipe.execute()
        return updated

    def remove(self, room_id, user_id, session_id=None):
        raw = self._cas(keys=[self._room(room_id)], args=[user_id, session_id or "", "", ""])
        if not raw:
            return None
        session = Session.loads(raw)
        self._forget(session.channel)
        pipe = self.r.pipeline()
        pipe.delete(f"{self.p}rt:{session.resume_token}")
        pipe.zrem(f"{self.p}deadlines", f"{room_id}:{user_id}:{session.session_id}")
        pipe.srem(f"{self.p}n:{session.node}", f"{room_id}:{user_id}")
        pipe.execute()
        return session

    def get(self, room_id, user_id):
        raw = self.r.hget(self._room(room_id), user_id)
        return Session.loads(raw) if raw else None

    def sessions(self, room_id):
        return [Session.loads(v) for v in self.r.hvals(self._room(room_id))]

    def sessions_of_rooms(self, room_ids):
        if not room_ids:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for rid in room_ids:
            pipe.hvals(self._room(rid))
        return {
            rid: [Session.loads(v) for v in values]
            for rid, values in zip(room_ids, pipe.execute(), strict=True)
        }

    def counts(self, room_ids):
        if not room_ids:
            return {}
        pipe = self.r.pipeline()
        for rid in room_ids:
            pipe.hlen(self._room(rid))
        return dict(zip(room_ids, pipe.execute(), strict=True))

    def update(self, room_id, user_id, session_id, **fields):
        # A compare-and-set of the whole json, so an update never writes back a channel
        # or resume token that a newer socket replaced meanwhile.
        room_key = self._room(room_id)
        for _ in range(_CAS_TRIES):
            raw = self.r.hget(room_key, user_id)
            if not raw:
                return None
            current = Session.loads(raw)
            if current.session_id != session_id:
                return None
            updated = dataclasses.replace(current, **fields)
            if self._swap(keys=[room_key], args=[user_id, raw, updated.dumps()]):
                break
        else:
            raise RedisError("presence kept changing under update")
        with self._mine_lock:
            if updated.channel in self._mine:
                since = self._mine[updated.channel][0]
                self._mine[updated.channel] = (since, dataclasses.replace(updated))
        return updated

    def resolve_resume_token(self, token):
        raw = self.r.get(f"{self.p}rt:{token}")
        if not raw:
            return None
        room_id, user_id, session_id = _text(raw).split(":")
        current = self.get(int(room_id), int(user_id))
        if current is None or current.session_id != session_id:
            return None
        if not _redeemable(current, token, time.time()):
            return None
        return int(room_id), int(user_id), session_id

    def pop_expired(self, now):
        key = f"{self.p}deadlines"
        claimed = []
        # Members only (no withscores): a list of bytes.
        members = cast(list[bytes], self.r.zrangebyscore(key, "-inf", now, start=0, num=500))
        for member in members:
            # ZREM is the claim: of several nodes reaping at once, one gets 1.
            if self.r.zrem(key, member):
                room_id, user_id, session_id = member.decode().split(":")
                claimed.append((int(room_id), int(user_id), session_id))
        return claimed

    def heartbeat(self, node, now):
        """Returns True when this node had no heartbeat entry: its first beat, or Redis
        lost its data, or other nodes declared this node dead (its heartbeats stopped
        reaching Redis). In the last two cases presence may have lost this node's live
        sockets: see `reattach`."""
        return bool(self.r.zadd(f"{self.p}beats", {node: now}))

    def defer(self, room_id, user_id, session_id, until):
        """Put an expired deadline back (its timeout failed), to be claimed again."""
        self.r.zadd(f"{self.p}deadlines", {f"{room_id}:{user_id}:{session_id}": until})

    def claim_dead_nodes(self, now, dead_after):
        """Nodes whose last heartbeat is older than `dead_after`, each claimed by one
        caller (ZREM). The heartbeats are a sorted set by time, so every node's check
        each second reads the dead entries only, not every node's (docs/capacity.md)."""
        key = f"{self.p}beats"
        stale = cast(list[bytes], self.r.zrangebyscore(key, "-inf", f"({now - dead_after}"))
        dead = [_text(node) for node in stale if self.r.zrem(key, node)]
        # Heartbeats of nodes of a release before the sorted set (a rolling upgrade):
        # claimed as before, until the last of them is gone and the hash with it (then
        # HGETALL answers {}: one round trip, as a check that the hash exists would be).
        legacy = f"{self.p}nodes"
        for node, seen in cast(dict[bytes, bytes], self.r.hgetall(legacy)).items():
            if float(seen) < now - dead_after and self.r.hdel(legacy, node):
                dead.append(_text(node))
        return dead

    def detach_node(self, node):
        """Put every session still attached through `node` into its resume window."""
        detached = []
        for entry in self.r.smembers(f"{self.p}n:{node}"):
            room_id, user_id = (int(x) for x in _text(entry).split(":"))
            current = self.get(room_id, user_id)
            if current is not None and current.node == node and current.connected:
                updated = self._detach(current, seq=None)
                if updated is not None:
                    detached.append(updated)
        self.r.delete(f"{self.p}n:{node}")
        return detached

    def reattach(self, node, sockets):
        """Make presence agree with the sockets this node really holds.

        `sockets`: (room, user, channel, seq) of every live local socket. A socket whose
        session is missing (Redis lost it) gets it back from this node's memory, with
        the same session id and resume token; one whose session was put in the resume
        window (this node was declared dead) is connected again. Sessions presence
        still attaches to this node but that have no socket here any more (they
        dropped while Redis was unreachable) enter their resume window.
        Returns (sessions reattached, sessions detached).
        """
        mine = self.keep_only({channel for _, _, channel, _ in sockets})
        reattached = []
        for room_id, user_id, channel, seq in sockets:
            known = mine.get(channel)
            if known is None:
                continue
            current = self.get(room_id, user_id)
            if current is not None and (
                current.session_id != known.session_id or current.channel != channel
            ):
                continue  # a newer socket (elsewhere) has the session now
            if current is not None and current.connected and current.node == node:
                self.r.sadd(f"{self.p}n:{node}", f"{room_id}:{user_id}")
                continue
            session = dataclasses.replace(
                current or known, node=node, connected=True, deadline=None, seq=seq
            )
            if current is None:
                if not self.r.hsetnx(self._room(room_id), user_id, session.dumps()):
                    continue  # a new session started elsewhere meanwhile
            elif not self._cas(
                keys=[self._room(room_id)],
                args=[user_id, current.session_id, session.dumps(), channel],
            ):
                continue
            member = f"{room_id}:{user_id}:{session.session_id}"
            pipe = self.r.pipeline()
            pipe.set(f"{self.p}rt:{session.resume_token}", member)
            pipe.zrem(f"{self.p}deadlines", member)
            pipe.sadd(f"{self.p}n:{node}", f"{room_id}:{user_id}")
            pipe.execute()
            self._remember(session)
            reattached.append(session)
        detached = []
        here = {(room_id, user_id) for room_id, user_id, _, _ in sockets}
        for entry in self.r.smembers(f"{self.p}n:{node}"):
            room_id, user_id = (int(x) for x in _text(entry).split(":"))
            if (room_id, user_id) in here:
                continue
            current = self.get(room_id, user_id)
            if current is not None and current.channel in mine:
                continue  # still opening
            if current is not None and current.node == node and current.connected:
                updated = self._detach(current, seq=None)
                if updated is not None:
                    detached.append(updated)
            else:
                self.r.srem(f"{self.p}n:{node}", entry)
        return reattached, detached

    def clear(self):
        with self._mine_lock:
            self._mine.clear()
        keys = list(self.r.scan_iter(match=f"{self.p}*", count=1000))
        if keys:
            self.r.delete(*keys)
