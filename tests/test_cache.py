"""The two-tier cache against the real Redis (db 15, from conftest), and without it."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from whistle_tasks.core import cache as cache_module
from whistle_tasks.core.cache import MISSING, Cache, reset_connections
from whistle_tasks.core.config import settings

ROOT = Path(__file__).resolve().parent.parent
DEAD_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def r():
    client = redis.Redis.from_url(os.environ["WHISTLE_REDIS_URL"])
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"the test Redis is not running: {exc}")
    yield client
    client.close()


@pytest.fixture
def ns(r):
    """A namespace of this test only (other suites share db 15); emptied afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(r.scan_iter(match=f"whistle:{name}:*"))
    if keys:
        r.delete(*keys)


@pytest.fixture(autouse=True)
def fresh_links():
    """Each test starts with no Redis link and no remembered outage."""
    reset_connections()
    yield
    reset_connections()


def rkey(ns: str, key: str) -> bytes:
    return f"whistle:{ns}:{key}".encode()


# -- basics ------------------------------------------------------------------------------

def test_redis_url_comes_from_the_test_settings():
    import os

    assert settings.redis_url == os.environ["WHISTLE_REDIS_URL"]
    assert not settings.redis_url.endswith("/0")   # never make run's db
    assert Cache("anything").redis_url == settings.redis_url


def test_local_hit(ns, r):
    c = Cache(ns, ttl=60)
    c.set("k", {"realm": "example.com", "n": 1})
    assert c.get("k") == {"realm": "example.com", "n": 1}
    assert c.stats["hits_local"] == 1 and c.stats["hits_shared"] == 0
    assert json.loads(r.get(rkey(ns, "k"))) == {"realm": "example.com", "n": 1}
    assert 55 <= r.ttl(rkey(ns, "k")) <= 60  # SET ... EX ttl


def test_miss_gives_default_or_missing(ns):
    c = Cache(ns)
    assert c.get("nope") is MISSING
    assert c.get("nope", "dflt") == "dflt"
    assert c.stats["misses"] == 2


def test_cached_none_is_a_value_not_a_miss(ns):
    c = Cache(ns)
    c.set("none", None)
    assert c.get("none", "dflt") is None
    assert Cache(ns).get("none", "dflt") is None  # from Redis too


def test_shared_hit_from_another_instance_is_promoted(ns):
    writer, reader = Cache(ns), Cache(ns)
    writer.set("1000@example.com", {"password": "x", "method": "password"})
    assert reader.get("1000@example.com") == {"password": "x", "method": "password"}
    assert reader.stats["hits_shared"] == 1
    assert reader.get("1000@example.com")["method"] == "password"
    assert reader.stats["hits_local"] == 1  # promoted


def test_values_are_json_in_both_tiers(ns):
    c = Cache(ns)
    c.set("t", {"tuple": (1, 2), 3: "int key"})
    local = c.get("t")
    assert local == {"tuple": [1, 2], "3": "int key"}  # same as what Redis returns
    assert Cache(ns).get("t") == local
    with pytest.raises(TypeError, match="JSON cannot encode"):
        c.set("bad", {"obj": object()})
    with pytest.raises(ValueError, match="JSON cannot encode"):
        c.set("nan", float("nan"))
    assert c.get("bad", "absent") == "absent"


def test_keys_may_contain_any_characters(ns, r):
    c = Cache(ns)
    keys = ["a b", "x:y:z", "*?[]\\", "ünïcødé", "\x00nul", "user@realm.com", ""]
    for i, key in enumerate(keys):
        c.set(key, i)
    other = Cache(ns)
    assert [other.get(key) for key in keys] == list(range(len(keys)))
    assert r.exists(f"whistle:{ns}:x:y:z".encode())
    with pytest.raises(TypeError, match="cache keys are str"):
        c.set(42, "x")


def test_local_only_cache_keeps_objects_as_they_are(ns, r):
    c = Cache(ns, shared=False)
    value = {"tuple": (1, 2)}
    c.set("k", value)
    assert c.get("k") is value
    assert not r.exists(rkey(ns, "k"))
    assert Cache(ns).get("k", "absent") == "absent"


def test_bad_construction_is_refused():
    with pytest.raises(ValueError, match="namespace"):
        Cache("")
    with pytest.raises(ValueError, match="TTL"):
        Cache("x", ttl=0)
    with pytest.raises(ValueError, match="TTL"):
        Cache("x", local_ttl=-1)
    with pytest.raises(ValueError, match="local_size"):
        Cache("x", local_size=0)
    with pytest.raises(ValueError, match="not a Redis URL"):
        Cache("x", redis_url="http://user:pw@host/")
    with pytest.raises(ValueError, match="TTL"):
        Cache("x").set("k", 1, ttl=-5)


# -- expiry ------------------------------------------------------------------------------

def test_both_tiers_expire(ns, r):
    c = Cache(ns, ttl=1)
    c.set("k", "v")
    assert r.ttl(rkey(ns, "k")) == 1
    assert c.get("k") == "v"
    time.sleep(1.15)
    assert not r.exists(rkey(ns, "k"))
    assert c.get("k", "gone") == "gone"
    assert c.stats["misses"] == 1


def test_fractional_ttl_and_per_call_ttl(ns, r):
    c = Cache(ns, ttl=60)
    c.set("short", "v", ttl=0.3)
    assert 0 < r.pttl(rkey(ns, "short")) <= 300
    assert c.get("short") == "v"
    time.sleep(0.4)
    assert c.get("short", "gone") == "gone"


def test_local_ttl_caps_the_local_tier_only(ns):
    c = Cache(ns, ttl=60, local_ttl=0.3)
    c.set("k", "v")
    time.sleep(0.4)
    assert c.get("k") == "v"  # expired locally, still in Redis
    assert c.stats["hits_shared"] == 1


def test_promotion_keeps_what_redis_has_left(ns):
    writer = Cache(ns, ttl=1)
    reader = Cache(ns, ttl=900)  # its own long TTL must not extend the writer's entry
    writer.set("k", "v")
    assert reader.get("k") == "v"
    time.sleep(1.15)
    assert reader.get("k", "gone") == "gone"


def test_a_key_without_expiry_in_redis_is_promoted_for_local_ttl(ns, r):
    r.set(rkey(ns, "forever"), b'"v"')
    c = Cache(ns, local_ttl=0.3)
    assert c.get("forever") == "v"
    time.sleep(0.4)
    assert c.get("forever") == "v"
    assert c.stats["hits_shared"] == 2


# -- deletes -----------------------------------------------------------------------------

def test_delete_propagates_to_redis(ns, r):
    a, b = Cache(ns), Cache(ns)
    a.set("k", 1)
    a.delete("k")
    assert not r.exists(rkey(ns, "k"))
    assert a.get("k", "gone") == "gone"
    assert b.get("k", "gone") == "gone"


def test_delete_local_leaves_redis(ns, r):
    c = Cache(ns)
    c.set("k", 1)
    c.delete_local("k")
    assert r.exists(rkey(ns, "k"))
    assert c.get("k") == 1
    assert c.stats["hits_shared"] == 1


def test_other_processes_local_copies_need_delete_local(ns):
    a, b = Cache(ns), Cache(ns)
    a.set("k", "old")
    assert b.get("k") == "old"  # now in b's local tier
    a.delete("k")
    assert b.get("k") == "old"  # what a change broadcast is for
    b.delete_local("k")
    assert b.get("k", "gone") == "gone"


def test_clear_local(ns):
    c = Cache(ns)
    c.set_many({"a": 1, "b": 2})
    c.clear_local()
    assert c.get_many(["a", "b"]) == {"a": 1, "b": 2}
    assert c.stats["hits_shared"] == 2 and c.stats["hits_local"] == 0


def test_delete_prefix_both_tiers_and_glob_characters_are_literal(ns, r):
    c = Cache(ns)
    c.set_many({"user:1": 1, "user:2": 2, "user*": 3, "users": 4, "other": 5, "u[s]er": 6})
    assert c.delete_prefix("user:") == 2
    assert c.get("user:1", None) is None and c.get("user:2", None) is None
    assert c.delete_prefix("user*") == 1        # the literal "*", not a wildcard
    assert c.delete_prefix("u[s]") == 1
    assert c.delete_prefix("nothing") == 0
    assert c.get_many(["users", "other"]) == {"users": 4, "other": 5}
    assert sorted(r.scan_iter(match=f"whistle:{ns}:*")) == [rkey(ns, "other"), rkey(ns, "users")]


def test_delete_prefix_counts_local_and_remote_keys(ns):
    a, b = Cache(ns), Cache(ns)
    a.set("p:shared", 1)
    b.set("p:only-in-b-local", 2)
    b.delete_local("p:only-in-b-local")  # now only in Redis
    local_only = Cache(ns, shared=False)
    local_only.set("p:x", 1)
    assert a.delete_prefix("p:") == 2
    assert local_only.delete_prefix("p:") == 1


def test_delete_prefix_with_many_keys(ns, r):
    c = Cache(ns, local_size=100)
    c.set_many({f"bulk:{i}": i for i in range(1200)})
    assert c.delete_prefix("bulk:") == 1200
    assert not list(r.scan_iter(match=f"whistle:{ns}:*"))


# -- local tier bounds -------------------------------------------------------------------

def test_eviction_when_local_size_is_exceeded(ns):
    c = Cache(ns, shared=False, local_size=3)
    for key in "abc":
        c.set(key, key)
    c.set("a", "a2")                  # a rewrite moves "a" to the back
    c.set("d", "d")                   # evicts the oldest write: "b"
    assert c.stats["evictions"] == 1
    assert c.get("b", "evicted") == "evicted"
    assert [c.get(k) for k in "acd"] == ["a2", "c", "d"]
    assert len(c._local) == 3


def test_evicted_entries_are_still_in_redis(ns):
    c = Cache(ns, local_size=2)
    c.set_many({"a": 1, "b": 2, "c": 3})
    assert c.stats["evictions"] == 1
    assert c.get("a") == 1
    assert c.stats["hits_shared"] == 1


# -- many at once ------------------------------------------------------------------------

def test_set_many_and_get_many(ns, r):
    c = Cache(ns, ttl=30)
    c.set_many({"a": 1, "b": [2], "c": {"three": 3}})
    assert all(0 < r.ttl(rkey(ns, k)) <= 30 for k in "abc")
    other = Cache(ns)
    other.set("a", 1)  # a local hit for "a"
    found = other.get_many(["a", "b", "c", "missing", "b"])
    assert found == {"a": 1, "b": [2], "c": {"three": 3}}
    assert other.stats["hits_local"] == 1
    assert other.stats["hits_shared"] == 2
    assert other.stats["misses"] == 1
    assert other.get_many(["b", "c"]) == {"b": [2], "c": {"three": 3}}
    assert other.stats["hits_local"] == 3  # promoted by get_many
    assert c.get_many([]) == {}
    c.set_many({})


# -- get_or_load -------------------------------------------------------------------------

def test_get_or_load_caches_the_loaders_result(ns):
    calls = []

    def loader():
        calls.append(1)
        return {"loaded": (1, 2)}

    c = Cache(ns)
    assert c.get_or_load("k", loader) == {"loaded": [1, 2]}
    assert c.get_or_load("k", loader) == {"loaded": [1, 2]}
    assert Cache(ns).get_or_load("k", loader) == {"loaded": [1, 2]}
    assert len(calls) == 1


def test_get_or_load_missing_caches_nothing(ns, r):
    c = Cache(ns)
    assert c.get_or_load("k", lambda: MISSING) is MISSING
    assert c.get("k", "absent") == "absent"
    assert not r.exists(rkey(ns, "k"))
    assert c.get_or_load("k", lambda: None) is None  # None is a value: cached
    assert Cache(ns).get("k", "absent") is None


def test_get_or_load_loader_error_propagates_and_caches_nothing(ns):
    c = Cache(ns)

    def broken():
        raise LookupError("couch said 404")

    with pytest.raises(LookupError, match="404"):
        c.get_or_load("k", broken)
    assert c.get("k", "absent") == "absent"
    assert c.get_or_load("k", lambda: 7) == 7
    assert c._inflight == {}


def test_get_or_load_concurrent_callers_share_one_load(ns):
    c = Cache(ns)
    calls = []
    start = threading.Barrier(8)

    def slow_loader():
        calls.append(threading.get_ident())
        time.sleep(0.2)
        return "value"

    results = []

    def worker():
        start.wait(timeout=5)
        results.append(c.get_or_load("hot", slow_loader))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == ["value"] * 8
    assert len(calls) == 1
    assert c._inflight == {}


def test_get_or_load_with_ttl(ns, r):
    c = Cache(ns, ttl=600)
    c.get_or_load("k", lambda: 1, ttl=5)
    assert 0 < r.ttl(rkey(ns, "k")) <= 5


# -- other processes ---------------------------------------------------------------------

CHILD = """
import json, sys
from whistle_tasks.core.cache import Cache
c = Cache(sys.argv[1])
seen = c.get("from-parent")
c.set("from-child", {"pid": __import__("os").getpid()})
print(json.dumps({"seen": seen, "stats": c.stats}))
"""


def test_shared_tier_across_a_real_process(ns):
    c = Cache(ns)
    c.set("from-parent", {"hello": "child"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, ns], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    report = json.loads(done.stdout)
    assert report["seen"] == {"hello": "child"}
    assert report["stats"]["hits_shared"] == 1
    child_value = c.get("from-child")
    assert child_value["pid"] != os.getpid()
    assert c.stats["hits_shared"] == 1


def _forked_child(ns: str, queue: multiprocessing.Queue) -> None:
    c = Cache(ns)
    queue.put((c.get("k"), os.getpid(), cache_module._link_for(c.redis_url).pid))


def test_forked_child_gets_its_own_connection(ns):
    c = Cache(ns)
    c.set("k", "before fork")  # the parent's link and pool exist now
    parent_link = cache_module._link_for(c.redis_url)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_forked_child, args=(ns, queue))
    child.start()
    value, child_pid, link_pid = queue.get(timeout=30)
    child.join(timeout=30)
    assert child.exitcode == 0
    assert value == "before fork"
    assert link_pid == child_pid != os.getpid()
    assert cache_module._link_for(c.redis_url) is parent_link  # the parent's is untouched
    assert c.get("k") == "before fork"


GEVENT_CHILD = """
from gevent import monkey
monkey.patch_all()
import json, sys, gevent
from whistle_tasks.core.cache import Cache

writer, reader = Cache(sys.argv[1]), Cache(sys.argv[1])

def work(n):
    for i in range(20):
        writer.set(f"{n}:{i}", [n, i])
        reader.delete_local(f"{n}:{i}")
        assert reader.get(f"{n}:{i}") == [n, i], (n, i)
    return n

jobs = [gevent.spawn(work, n) for n in range(50)]
gevent.joinall(jobs, raise_error=True)
print(json.dumps({"done": sorted(j.value for j in jobs), "reader": reader.stats}))
"""


def test_shared_tier_under_gevent(ns):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", GEVENT_CHILD, ns], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout)
    assert report["done"] == list(range(50))
    assert report["reader"]["hits_shared"] == 50 * 20
    assert report["reader"]["redis_errors"] == 0


def test_shared_tier_under_threads(ns):
    writer, reader = Cache(ns), Cache(ns)
    failures = []

    def work(n: int) -> None:
        for i in range(100):
            writer.set(f"{n}:{i}", [n, i])
            reader.delete_local(f"{n}:{i}")
            if reader.get(f"{n}:{i}") != [n, i]:
                failures.append((n, i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    assert reader.stats["redis_errors"] == 0
    assert reader.stats["hits_shared"] >= 790  # counters are best-effort under threads


# -- Redis unavailable -------------------------------------------------------------------

def _warnings(caplog):
    return [rec for rec in caplog.records
            if rec.name == "whistle_tasks.core.cache" and rec.levelno == logging.WARNING]


def test_redis_unavailable_never_raises_and_warns_once(caplog):
    caplog.set_level(logging.INFO, logger="whistle_tasks.core.cache")
    c = Cache("down", redis_url=DEAD_URL)
    c.set("k", {"v": 1})
    assert c.get("k") == {"v": 1}                  # the local tier carries on
    assert c.get("missing", "dflt") == "dflt"
    c.set_many({"a": 1, "b": 2})
    assert c.get_many(["a", "b", "zz"]) == {"a": 1, "b": 2}
    assert c.get_or_load("loaded", lambda: 5) == 5
    assert c.get("loaded") == 5
    c.delete("a")
    assert c.get("a", "gone") == "gone"
    assert c.delete_prefix("b") == 1
    errors = c.stats["redis_errors"]
    for _ in range(200):
        c.get("missing")
    assert c.stats["redis_errors"] == errors  # no connect attempt per call
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert "127.0.0.1:1" in warnings[0].getMessage()
    assert "this process only" in warnings[0].getMessage()
    assert c.stats["redis_errors"] >= 1
    assert c.stats["redis_skipped"] >= 200
    assert c.stats["misses"] >= 201


def test_redis_unavailable_is_retried_after_the_interval_without_new_warnings(caplog):
    caplog.set_level(logging.INFO, logger="whistle_tasks.core.cache")
    c = Cache("down", redis_url=DEAD_URL)
    other = Cache("down-too", redis_url=DEAD_URL)  # same URL: the same outage
    c.get("x")
    errors = c.stats["redis_errors"]
    assert errors == 1
    c.get("x")
    assert c.stats["redis_errors"] == errors  # within the interval: not even tried
    other.get("x")
    assert other.stats["redis_skipped"] == 1 and other.stats["redis_errors"] == 0
    time.sleep(cache_module.RETRY_INTERVAL_S + 0.1)
    c.get("x")
    assert c.stats["redis_errors"] == errors + 1  # tried again, still down
    assert len(_warnings(caplog)) == 1


def test_redis_unavailable_makes_no_attempt_per_call():
    # what it costs per call is measured by bench/cache_cost.py, not asserted here
    c = Cache("down", redis_url=DEAD_URL)
    c.get("warm-up")  # the one failed attempt
    errors, skipped = c.stats["redis_errors"], c.stats["redis_skipped"]
    for _ in range(2000):
        assert c.get("missing", None) is None
    assert c.stats["redis_errors"] == errors
    assert c.stats["redis_skipped"] == skipped + 2000


def test_a_foreign_value_under_our_key_is_a_miss(ns, r, caplog):
    r.set(rkey(ns, "garbage"), b"not json{")
    r.hset(rkey(ns, "a-hash"), "f", "v")
    c = Cache(ns)
    assert c.get("garbage", "dflt") == "dflt"
    assert c.stats["decode_errors"] == 1
    assert c.get("a-hash", "dflt") == "dflt"       # WRONGTYPE: an error, not an outage
    assert c.stats["redis_errors"] == 1
    c.set("fine", 1)
    c.delete_local("fine")
    assert c.get("fine") == 1                       # Redis was not marked down
    assert c.stats["redis_skipped"] == 0


# -- a private Redis server that we stop and start ---------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis(port: int, workdir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
        finally:
            client.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_outage_and_recovery_with_a_real_server(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="whistle_tasks.core.cache")
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _start_redis(port, tmp_path)
    try:
        c = Cache("recovery", redis_url=url)
        c.set("before", 1)
        c.delete_local("before")
        assert c.get("before") == 1  # served by the server; the pool holds a connection

        server.terminate()
        server.wait(timeout=10)
        c.set("during", 2)            # the pooled connection is dead now
        assert c.get("during") == 2   # local tier
        for _ in range(50):
            c.get("nothing")
        assert len(_warnings(caplog)) == 1
        assert c.stats["redis_errors"] >= 1

        server = _start_redis(port, tmp_path)
        time.sleep(cache_module.RETRY_INTERVAL_S + 0.1)
        c.set("after", 3)
        c.delete_local("after")
        assert c.get("after") == 3
        assert c.stats["hits_shared"] == 2
        assert any("is back" in rec.getMessage() for rec in caplog.records)

        # A restart between two calls (no outage seen): the pool notices its dead socket
        # when handing it out and reconnects; no error, no warning.
        errors = c.stats["redis_errors"]
        server.terminate()
        server.wait(timeout=10)
        server = _start_redis(port, tmp_path)
        c.set("restart", 4)
        c.delete_local("restart")
        assert c.get("restart") == 4
        assert c.stats["redis_errors"] == errors
        assert len(_warnings(caplog)) == 1
    finally:
        server.kill()
        server.wait(timeout=10)


# -- cost --------------------------------------------------------------------------------

def test_a_local_hit_asks_redis_nothing(ns):
    # what a local hit costs is measured by bench/cache_cost.py, not asserted here
    c = Cache(ns)
    c.set("k", {"sip": {"username": "1000"}})
    before = dict(c.stats)
    for _ in range(1000):
        assert c.get("k") == {"sip": {"username": "1000"}}
    assert c.stats["hits_local"] == before["hits_local"] + 1000
    assert {k: v for k, v in c.stats.items() if k != "hits_local"} == \
        {k: v for k, v in before.items() if k != "hits_local"}


# -- BatchedLoader: concurrent cold reads grouped -----------------------------------------

def test_batched_loader_groups_concurrent_keys_and_answers_each_its_own():
    from whistle_tasks.core.cache import BatchedLoader

    calls: list[list[str]] = []
    gate = threading.Event()

    def load_many(keys: list[str]) -> dict[str, str]:
        calls.append(list(keys))
        if len(calls) == 1:
            gate.wait(5)  # the first read is slow: the others queue behind it
        return {k: f"value-of-{k}" for k in keys if k != "absent"}

    loader = BatchedLoader(load_many)
    answers: dict[str, object] = {}

    def ask(key: str) -> None:
        answers[f"{key}#{threading.get_ident()}"] = (key, loader.get(key))

    first = threading.Thread(target=ask, args=("k0",))
    first.start()
    while not calls:
        time.sleep(0.01)
    others = [threading.Thread(target=ask, args=(k,))
              for k in ["k1", "k2", "k3", "k1", "absent"]]
    for t in others:
        t.start()
    time.sleep(0.2)  # they are all waiting behind the first read
    gate.set()
    for t in [first, *others]:
        t.join(10)
    assert sorted(v for v in answers.values()) == sorted(
        [("k0", "value-of-k0"), ("k1", "value-of-k1"), ("k1", "value-of-k1"),
         ("k2", "value-of-k2"), ("k3", "value-of-k3"), ("absent", None)])
    # two reads: the lone first key, then every key asked meanwhile (k1 once)
    assert calls[0] == ["k0"]
    assert sorted(calls[1]) == ["absent", "k1", "k2", "k3"]
    assert len(calls) == 2
    assert loader.stats == {"reads": 2, "keys": 5}


def test_batched_loader_gives_a_read_error_to_its_callers_and_carries_on():
    from whistle_tasks.core.cache import BatchedLoader

    def load_many(keys: list[str]) -> dict[str, str]:
        if "bad" in keys:
            raise ConnectionError("couch down")
        return {k: k.upper() for k in keys}

    loader = BatchedLoader(load_many)
    with pytest.raises(ConnectionError):
        loader.get("bad")
    assert loader.get("good") == "GOOD"  # the next read is made, by the next caller
