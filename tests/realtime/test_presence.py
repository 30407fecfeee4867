"""Presence stores: resume tokens are single use, new on every attach, and redeemed only
inside the resume window, by exactly one socket. Each test runs on both stores (the Redis
one when REDIS_URL is set)."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time

import pytest

from realtime.presence import LocalStore, RedisStore, ResumeRefused, Session


def _redis_store() -> RedisStore:
    return RedisStore(os.environ["REDIS_URL"], f"vrtest{secrets.token_hex(4)}")


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
def kind(request) -> str:
    return request.param


@pytest.fixture
def make_store(kind):
    """Builds stores of this test's kind; a second Redis store is a second node sharing
    the first one's Redis (same prefix)."""
    made: list = []

    def make(share_with=None):
        if kind == "local":
            store = share_with or LocalStore()
        elif share_with is not None:
            store = RedisStore(os.environ["REDIS_URL"], share_with.p[:-1])
        else:
            store = _redis_store()
        made.append(store)
        return store

    yield make
    for store in made:
        store.clear()


@pytest.fixture
def store(make_store):
    return make_store()


def test_every_attach_issues_a_new_token_and_kills_the_one_before(store, settings):
    settings.VOICEROOM_RESUME_WINDOW_S = 20
    first = store.attach(1, 7, node="n", channel="c1").session
    # Another socket takes over (a ticket or the Token header): a new token.
    second = store.attach(1, 7, node="n", channel="c2").session
    assert second.session_id == first.session_id
    assert second.resume_token != first.resume_token
    store.detach(1, 7, "c2", seq=0)
    assert store.resolve_resume_token(first.resume_token) is None
    with pytest.raises(ResumeRefused):
        store.attach(1, 7, node="n", channel="c3", resume_token=first.resume_token)
    # The latest one works, once, and hands out the next.
    assert store.resolve_resume_token(second.resume_token) == (1, 7, first.session_id)
    third = store.attach(1, 7, node="n", channel="c3", resume_token=second.resume_token).session
    assert third.resume_token not in (first.resume_token, second.resume_token)
    assert third.session_id == first.session_id and third.connected
    store.detach(1, 7, "c3", seq=0)
    assert store.resolve_resume_token(second.resume_token) is None
    with pytest.raises(ResumeRefused):
        store.attach(1, 7, node="n", channel="c4", resume_token=second.resume_token)
    assert store.get(1, 7).resume_token == third.resume_token  # the refusal changed nothing
    assert store.resolve_resume_token(third.resume_token) == (1, 7, first.session_id)


def test_the_token_of_a_connected_session_is_refused_and_the_socket_keeps_it(store):
    live = store.attach(1, 7, node="n", channel="c1").session
    assert store.resolve_resume_token(live.resume_token) is None
    with pytest.raises(ResumeRefused):
        store.attach(1, 7, node="n", channel="thief", resume_token=live.resume_token)
    current = store.get(1, 7)
    assert current.channel == "c1" and current.connected
    assert current.resume_token == live.resume_token
    # Its owner can still use it once the socket drops.
    store.detach(1, 7, "c1", seq=0)
    assert store.resolve_resume_token(live.resume_token) == (1, 7, live.session_id)


def test_a_token_presented_after_the_window_closed_is_refused(store, settings):
    settings.VOICEROOM_RESUME_WINDOW_S = 0.3
    session = store.attach(1, 7, node="n", channel="c1").session
    store.detach(1, 7, "c1", seq=0)
    time.sleep(0.4)  # the window closed; the reaper has not ended the session yet
    assert store.get(1, 7) is not None
    assert store.resolve_resume_token(session.resume_token) is None
    with pytest.raises(ResumeRefused):
        store.attach(1, 7, node="n", channel="c2", resume_token=session.resume_token)


def test_token_issued_at_is_when_the_current_token_was_issued(store):
    before = time.time()
    first = store.attach(1, 7, node="n", channel="c1").session
    after = time.time()
    assert before <= first.token_issued_at <= after
    time.sleep(0.01)
    store.detach(1, 7, "c1", seq=0)
    resumed = store.attach(1, 7, node="n", channel="c2", resume_token=first.resume_token).session
    assert resumed.token_issued_at > first.token_issued_at
    assert store.get(1, 7).token_issued_at == resumed.token_issued_at


def test_a_session_written_before_token_issued_at_existed_still_loads():
    raw = {
        "room_id": 1,
        "user_id": 7,
        "session_id": "s",
        "resume_token": "t",
        "node": "n",
        "channel": "c",
    }
    assert Session.loads(json.dumps(raw)).token_issued_at == 0.0


def test_two_nodes_redeeming_one_token_at_once_exactly_one_wins(make_store, kind):
    first = make_store()
    second = make_store(share_with=first)
    token = first.attach(1, 7, node="n1", channel="c1").session.resume_token
    first.detach(1, 7, "c1", seq=0)
    if kind == "redis":
        # Both nodes read the session before either writes: the compare-and-set in Lua
        # is all that can keep the second one out.
        both_read = threading.Barrier(2, timeout=5)
        for store in (first, second):
            real_hget = store.r.hget

            def hget(*args, real_hget=real_hget, waited=[]):  # noqa: B006 (one per store)
                raw = real_hget(*args)
                if not waited:
                    waited.append(True)
                    both_read.wait()
                return raw

            store.r.hget = hget
    results: dict[str, object] = {}

    def redeem(store, channel):
        try:
            results[channel] = store.attach(
                1, 7, node=channel, channel=channel, resume_token=token
            ).session
        except ResumeRefused as exc:
            results[channel] = exc

    threads = [
        threading.Thread(target=redeem, args=(first, "a")),
        threading.Thread(target=redeem, args=(second, "b")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    winners = [c for c, r in results.items() if isinstance(r, Session)]
    losers = [c for c, r in results.items() if isinstance(r, ResumeRefused)]
    assert len(winners) == 1 and len(losers) == 1, results
    current = first.get(1, 7)
    assert current.channel == winners[0]
    assert current.resume_token == results[winners[0]].resume_token


@pytest.mark.redis
def test_an_update_racing_a_takeover_never_brings_back_the_old_token_or_socket():
    """A self-mute from the old socket read the session just before a newer socket took
    it over: writing its copy back would revive the replaced resume token (and channel)
    and make the new one useless."""
    store = _redis_store()
    try:
        old = store.attach(1, 7, node="n", channel="old").session
        real_hget = store.r.hget
        raced = []

        def hget(*args):
            raw = real_hget(*args)
            if not raced:
                raced.append(None)
                raced[0] = store.attach(1, 7, node="n", channel="new").session
            return raw

        store.r.hget = hget
        store.update(1, 7, old.session_id, self_muted=True)
        store.r.hget = real_hget
        current = store.get(1, 7)
        newer = raced[0]
        assert current.channel == "new"
        assert current.resume_token == newer.resume_token != old.resume_token
        assert current.self_muted is True
        store.detach(1, 7, "new", seq=0)
        assert store.resolve_resume_token(newer.resume_token) == (1, 7, old.session_id)
        assert store.resolve_resume_token(old.resume_token) is None
    finally:
        store.clear()


def test_sessions_of_rooms_reads_several_rooms_in_one_call(store):
    """The speak re-check reads every local room's sessions at once (one Redis round
    trip, not one per room): the same sessions `sessions` gives room by room."""
    store.attach(1, 7, node="n", channel="c7")
    store.attach(1, 8, node="n", channel="c8")
    store.attach(2, 9, node="n", channel="c9")
    store.update(1, 8, store.get(1, 8).session_id, self_muted=True)
    got = store.sessions_of_rooms([1, 2, 3])
    assert set(got) == {1, 2, 3}
    for rid in (1, 2, 3):
        assert sorted(got[rid], key=lambda s: s.user_id) == sorted(
            store.sessions(rid), key=lambda s: s.user_id
        )
    assert {s.user_id: s.self_muted for s in got[1]} == {7: False, 8: True}
    assert got[3] == []
    assert store.sessions_of_rooms([]) == {}


@pytest.mark.redis
def test_dead_nodes_are_read_from_the_old_heartbeats_only_and_claimed_once():
    store = _redis_store()
    other = RedisStore(os.environ["REDIS_URL"], store.p[:-1])
    try:
        assert store.heartbeat("a", 100.0) is True  # a node's first beat
        assert store.heartbeat("a", 110.0) is False
        assert store.heartbeat("b", 103.0) is True
        assert store.heartbeat("c", 104.0) is True
        # At 110 with 6 s: b (7 s old) is dead; c (6 s, not older) is not yet.
        assert store.claim_dead_nodes(110.0, 6.0) == ["b"]
        assert other.claim_dead_nodes(110.0, 6.0) == []  # claimed once, by one node
        reads = []
        real = store.r.zrangebyscore
        store.r.zrangebyscore = lambda *a, **k: reads.append(a) or real(*a, **k)
        assert store.claim_dead_nodes(120.0, 6.0) == ["c", "a"]  # oldest first
        assert len(reads) == 1 and reads[0][1:] == ("-inf", "(114.0")
        # A claimed node that beats again is a new entry: its caller must reattach.
        assert store.heartbeat("b", 121.0) is True
    finally:
        store.r.delete(*(store.r.keys(f"{store.p}*") or [f"{store.p}none"]))


@pytest.mark.redis
def test_heartbeats_of_nodes_of_the_old_release_are_still_claimed():
    # A rolling upgrade: nodes before the sorted set beat into the hash `nodes`.
    store = _redis_store()
    try:
        store.r.hset(f"{store.p}nodes", mapping={"old-dead": 100.0, "old-live": 109.0})
        store.heartbeat("new", 109.0)
        assert store.claim_dead_nodes(110.0, 6.0) == ["old-dead"]
        assert store.claim_dead_nodes(110.0, 6.0) == []
        assert store.claim_dead_nodes(120.0, 6.0) == ["new", "old-live"]
        assert not store.r.exists(f"{store.p}nodes")  # the last old node gone: no more reads
    finally:
        store.r.delete(*(store.r.keys(f"{store.p}*") or [f"{store.p}none"]))
