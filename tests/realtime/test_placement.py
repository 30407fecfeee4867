"""Placement policy (pure) and its Redis directory: a room has one home, new rooms go to
live nodes with room to spare, a dead home is replaced, homes do not move otherwise."""

from __future__ import annotations

import os
import secrets
import threading

import pytest

from realtime.placement import (
    Directory,
    NodeInfo,
    check_node_url,
    choose_home,
    ws_url_for,
)

NOW = 1_000_000.0


def node(name: str, sockets: int = 0, *, seen: float = NOW, capacity: int = 1000, placed=0):
    return NodeInfo(name, f"http://h/{name}", seen, sockets, capacity, placed)


def test_a_new_room_goes_to_the_least_loaded_live_node():
    nodes = [node("a", 500), node("b", 100), node("c", 900)]
    assert choose_home(1, nodes, now=NOW, dead_after=6) == "b"


def test_rooms_placed_since_the_last_heartbeat_count_as_load():
    # b reported fewer sockets, but 20 rooms went to it since: a is now the emptier.
    nodes = [node("a", 300), node("b", 100, placed=20)]
    assert choose_home(1, nodes, now=NOW, dead_after=6) == "a"


def test_a_dead_node_gets_no_room_and_a_room_on_it_moves():
    nodes = [node("a", 0, seen=NOW - 7), node("b", 800)]
    assert choose_home(1, nodes, now=NOW, dead_after=6) == "b"
    assert choose_home(1, nodes, now=NOW, dead_after=6, current="a") == "b"
    assert choose_home(1, [node("a", seen=NOW - 7)], now=NOW, dead_after=6) is None


def test_a_room_stays_on_its_live_home_however_loaded():
    nodes = [node("a", 990), node("b", 0)]
    assert choose_home(1, nodes, now=NOW, dead_after=6, current="a") == "a"


def test_an_idle_room_on_a_full_node_is_placed_again():
    nodes = [node("a", 990), node("b", 0)]
    assert choose_home(1, nodes, now=NOW, dead_after=6, current="a", idle=True) == "b"
    # ... but not when its home has room to spare.
    nodes = [node("a", 500), node("b", 0)]
    assert choose_home(1, nodes, now=NOW, dead_after=6, current="a", idle=True) == "a"


def test_a_rehomed_room_goes_where_its_members_already_are_if_there_is_room():
    nodes = [node("a", 0, seen=NOW - 10), node("b", 600), node("c", 0)]
    prefer = {"a": 5, "b": 3}
    assert choose_home(1, nodes, now=NOW, dead_after=6, current="a", prefer=prefer) == "b"
    full = [node("a", 0, seen=NOW - 10), node("b", 995), node("c", 0)]
    assert choose_home(1, full, now=NOW, dead_after=6, current="a", prefer=prefer) == "c"


def test_when_every_node_is_full_the_least_loaded_still_gets_the_room():
    nodes = [node("a", 1000), node("b", 995)]
    assert choose_home(1, nodes, now=NOW, dead_after=6) == "b"


def test_equal_nodes_share_new_rooms():
    nodes = [node(f"n{i}") for i in range(4)]
    homes = {choose_home(r, nodes, now=NOW, dead_after=6) for r in range(200)}
    assert homes == {"n0", "n1", "n2", "n3"}


def test_ws_url_names_the_home_nodes_public_url_or_is_the_path():
    assert ws_url_for(7, None) == "/ws/rooms/7/"
    assert ws_url_for(7, "") == "/ws/rooms/7/"
    assert (
        ws_url_for(7, "http://example.com:8080/node/a")
        == "ws://example.com:8080/node/a/ws/rooms/7/"
    )
    assert ws_url_for(7, "https://example.com/") == "wss://example.com/ws/rooms/7/"


@pytest.mark.parametrize("bad", ["example.com", "/node/a", "ftp://x", "http://x/?a=1"])
def test_a_node_url_must_be_an_absolute_http_url(bad):
    with pytest.raises(ValueError):
        check_node_url(bad)
    assert check_node_url("https://x.example/node/a/") == "https://x.example/node/a"


# -- the directory in Redis -----------------------------------------------------------------


@pytest.fixture
def directory():
    d = Directory(os.environ["REDIS_URL"], f"vrtest{secrets.token_hex(4)}")
    yield d
    d.clear()


@pytest.mark.redis
def test_the_directory_places_once_and_keeps_the_home(directory):
    directory.beat(node("a", 100))
    directory.beat(node("b", 0))
    first = directory.place(1, now=NOW, dead_after=6)
    assert first.node == "b"
    directory.beat(node("b", 900))  # b filled up: the room stays
    assert directory.place(1, now=NOW, dead_after=6).node == "b"
    assert directory.home_of(1) == "b" and directory.rooms_on("b") == [1]
    assert directory.place(2, now=NOW, dead_after=6).node == "a"


@pytest.mark.redis
def test_placements_between_heartbeats_are_spread(directory):
    for name in ("a", "b", "c"):
        directory.beat(node(name, 0, capacity=10_000))
    homes = [directory.place(r, now=NOW, dead_after=6).node for r in range(30)]
    assert {h: homes.count(h) for h in set(homes)} == {"a": 10, "b": 10, "c": 10}
    directory.beat(node("a", 200, capacity=10_000))  # a's beat resets its count
    assert {n.node: n.placed for n in directory.nodes()} == {"a": 0, "b": 10, "c": 10}


@pytest.mark.redis
def test_a_dead_nodes_rooms_move_to_live_nodes(directory):
    directory.beat(node("a", 0))
    directory.beat(node("b", 500))
    for room in range(5):
        assert directory.place(room, now=NOW, dead_after=6).node == "a"
    directory.beat(node("b", 500, seen=NOW + 8))
    later = NOW + 8  # a's last beat is 8 s old
    for room in directory.rooms_on("a"):
        assert directory.place(room, now=later, dead_after=6).node == "b"
    assert directory.rooms_on("a") == [] and directory.rooms_on("b") == [0, 1, 2, 3, 4]


@pytest.mark.redis
def test_two_nodes_placing_one_room_at_once_agree(directory):
    for name in ("a", "b", "c", "d"):
        directory.beat(node(name))
    answers: list[str] = []
    barrier = threading.Barrier(8)

    def place() -> None:
        other = Directory(os.environ["REDIS_URL"], directory.p[: -len(":pl:")])
        barrier.wait()
        answers.append(other.place(42, now=NOW, dead_after=6).node)

    threads = [threading.Thread(target=place) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(answers)) == 1 and answers[0] == directory.home_of(42)
    placed = {n.node: n.placed for n in directory.nodes()}
    assert sum(placed.values()) == 1


@pytest.mark.redis
def test_a_placed_room_is_answered_from_its_homes_entry_alone(directory, monkeypatch):
    directory.beat(node("a", 0))
    directory.beat(node("b", 500))
    assert directory.place(1, now=NOW, dead_after=6).node == "a"
    whole_table = []
    real_nodes = directory.nodes

    def counted():
        whole_table.append(1)
        return real_nodes()

    monkeypatch.setattr(directory, "nodes", counted)
    # Steady state: the home is alive, so neither the table nor the policy is consulted.
    home = directory.place(1, now=NOW + 1, dead_after=6)
    assert home == NodeInfo("a", "http://h/a", NOW, 0, 1000, 1)
    assert whole_table == []
    # A dead home, and an idle room on a full home, still read the whole table and move.
    directory.beat(node("b", 500, seen=NOW + 8))
    assert directory.place(1, now=NOW + 8, dead_after=6).node == "b"
    assert len(whole_table) == 1
    directory.beat(node("b", 1000, seen=NOW + 8))
    directory.beat(node("a", 0, seen=NOW + 8))
    assert directory.place(1, now=NOW + 8, dead_after=6, idle=True).node == "a"
    assert len(whole_table) == 2
    assert directory.node("nobody") is None
