"""What a cache read costs, per call, beside the bare operation it wraps (measured, not
asserted: these were timed assertions in tests/test_cache.py, which a loaded machine
failed at random).

    .venv/bin/python bench/cache_cost.py [--repeats 5] [--calls 20000]

* local hit (:class:`whistle_tasks.core.cache.Cache`'s own tier) beside a bare
  ``OrderedDict`` look-up (the floor);
* Redis hit (the shared tier: the local copy dropped before each read) beside a bare
  ``redis-py`` ``GET`` of the same key on the same server (the floor);
* a read while Redis is down (the local tier misses; no connect attempt within the retry
  interval) beside the local miss of a cache that has no Redis at all (the floor).

Subject and floor alternate (subject, floor, ...; ``--repeats`` pairs); each figure is the
median µs per call, the ratio the median of the per-pair ratios. Every call's answer is
checked (the value that was set, or the default for a miss): calls = right + wrong.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402  (sets the bench environment first)

DEAD_URL = "redis://127.0.0.1:1/0"
VALUE = {"sip": {"username": "1000", "password": "pw-1000"}}


def per_call(fn: Callable[[], object], expected: object, calls: int) -> tuple[float, int]:
    """µs per call, and how many calls did not answer ``expected``."""
    wrong = 0
    started = time.perf_counter()
    for _ in range(calls):
        if fn() != expected:
            wrong += 1
    return (time.perf_counter() - started) / calls * 1e6, wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()

    import json

    import redis

    from whistle_tasks.core.cache import Cache

    local = Cache("bench-cost-local")
    local.set("k", VALUE)
    bare_dict: OrderedDict[str, tuple[float, object]] = OrderedDict(
        k=(time.monotonic() + 3600, VALUE))

    def dict_get() -> object:
        entry = bare_dict.get("k")
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    shared = Cache("bench-cost-shared")
    shared.set("k", VALUE)

    def shared_get() -> object:
        shared.delete_local("k")
        return shared.get("k")

    client = redis.Redis.from_url(common.BENCH_ENV["WHISTLE_REDIS_URL"])
    client.set(b"bench-cost-raw", json.dumps(VALUE))

    def raw_get() -> object:
        return json.loads(client.get(b"bench-cost-raw"))

    down = Cache("bench-cost-down", redis_url=DEAD_URL)
    down.get("warm-up")  # its one failed attempt; then no attempt within the interval
    no_redis = Cache("bench-cost-alone", shared=False)

    cases = [("local hit", lambda: local.get("k"), "bare dict look-up", dict_get, VALUE,
              args.calls),
             ("Redis hit (shared tier)", shared_get, "bare redis-py GET + json", raw_get,
              VALUE, max(1000, args.calls // 10)),
             ("read while Redis is down", lambda: down.get("missing", None),
              "local miss, no Redis", lambda: no_redis.get("missing", None), None, args.calls)]
    print(f"cache cost: {args.repeats} alternating pairs; µs per call (median)")
    failures = 0
    for label, fn, floor_label, floor_fn, expected, calls in cases:
        subject, floor, wrong = [], [], 0
        for _ in range(args.repeats):
            us, bad = per_call(fn, expected, calls)
            subject.append(us)
            wrong += bad
            us, bad = per_call(floor_fn, expected, calls)
            floor.append(us)
            wrong += bad
        ratio = statistics.median(s / f for s, f in zip(subject, floor, strict=True))
        total = 2 * calls * args.repeats
        failures += wrong
        print(f"  {label:<26} {statistics.median(subject):8.2f} µs   {floor_label:<26} "
              f"{statistics.median(floor):8.2f} µs   ratio {ratio:5.1f}x   "
              f"({total} calls = {total - wrong} right + {wrong} wrong)")
    print(f"  [{'met' if failures == 0 else 'MISSED'}] every call answered right")


if __name__ == "__main__":
    main()
