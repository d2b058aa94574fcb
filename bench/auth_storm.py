"""Auth storm: real sip_auth bodies POSTed into the bridge, end to end, at each of the three
tiers a directory look-up can be answered from.

    .venv/bin/python bench/auth_storm.py [--seconds 10] [--repeats 3] [--tiers 1,2,3]

* **tier 1, bridge cache**: 500 users re-registering (the common case); the bridge's
  credential cache answers (its rendered XML kept). Floor: the same bridge answering from
  a fixed in-process answer (``bench/floor_bridge.py``: same parse and render, no cache,
  no AMQP).
* **tier 2, worker cache**: a bridge that keeps nothing (``WHISTLE_AUTH_CACHE_TTL=0``), so
  every look-up crosses AMQP to the registrar, whose worker primed every credential at
  start (``WHISTLE_PRIME_CREDENTIALS``; its memory tier, Redis behind it). Floor: the
  fixed-answer bridge.
* **tier 3, CouchDB**: the same bridge, a registrar started with nothing primed
  (``WHISTLE_PRIME_CREDENTIALS=0``, Redis db emptied) and every request a different user
  never asked before, so each is a read of the ``credentials/by_realm_user`` view. Floor:
  pouchdb-server's own bare read rate of the same documents (the same view reads, made by
  ``wrk`` on kept-alive connections, 64 in flight), measured in the same rounds.

Each tier under a closed loop with 64 requests in flight (``wrk``, a new connection per
request as libcurl does) and an open loop (400/s; 200/s for tier 3), in alternating rounds
(subject, floor, subject, floor...): rates are medians, ratios the median of the per-round
ratios. Every answer is checked against the exact answer expected for its request (its
user's directory entry with that user's own password: ``<user id="U">``,
``<param name="password" value="pw-U"/>``, the realm and the ``ecallmgr_`` user and
realm; the floor's its own fixed password; the bare read the user's own row), and every
request is accounted for (right, wrong, error, timeout). Targets (this 2-core machine):
tier 1 ≥ 3,000/s, p99 ≤ 10 ms at 400/s; tier 3 ≥ 50 % of the bare read rate, p99
≤ 25 ms at 200/s.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gevent import monkey  # noqa: E402

monkey.patch_all()

from bench import common, wrk  # noqa: E402
from bench.http_load import HttpLoad, request_bytes  # noqa: E402

FIXTURE = (common.CAPTURES /
           "a_register_unregister" / "xmlcurl_01_directory_sip_auth_REGISTER_1000.body")
REALM = "storm.example.com"
KEY_PATTERN = '<user id="([^"]+)"'  # the user an answer is for (wrk's Lua pattern)
COUCH_KEY_PATTERN = '"key":%["[^"]*","([^"]+)"%]'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bridge(name: str, *, floor: bool = False, **env: str) -> tuple[common.Proc, int]:
    """A bridge process (``floor``: the benchmarks' floor, bench/floor_bridge.py)."""
    import requests

    port = free_port()
    argv = [sys.executable, "-m", "switch_bridge"]
    if floor:  # answers from memory, and no credential cache either: parse + render only
        argv = [sys.executable, str(Path(__file__).with_name("floor_bridge.py"))]
        env = {"WHISTLE_AUTH_CACHE_TTL": "0", **env}
    proc = common.Proc(name, argv, env={
        "WHISTLE_HTTP_LISTEN": f"127.0.0.1:{port}", "WHISTLE_FS_NODES": "127.0.0.1:1:none",
        **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, port
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bridge {name} did not come up:\n{proc.log_path.read_text()[-2000:]}")


def expected_entry(realm: str, user: str, password: str) -> list[str]:
    """What the directory answer for ``user`` must hold, exactly."""
    return [f'<domain name="{realm}">', f'<user id="{user}">',
            f'<param name="password" value="{password}"/>',
            f'<variable name="ecallmgr_Username" value="{user}"/>',
            f'<variable name="ecallmgr_Realm" value="{realm}"/>']


def entry_check(expected: dict[str, list[str]]):  # noqa: ANN201
    """HttpLoad's check: status 200 and the request's own user's exact entry."""

    def check(user: object, answer: bytes) -> bool:
        if not answer.startswith(b"HTTP/1.1 200"):
            return False
        text = answer.decode("utf-8", "replace")
        return all(needle in text for needle in expected[str(user)])

    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", type=int, default=30_000,
                        help="provisioned devices (tier 3 needs a fresh slice per round)")
    parser.add_argument("--warm-users", type=int, default=500)
    parser.add_argument("--tier2-users", type=int, default=10_000)
    parser.add_argument("--cold-slice", type=int, default=7_000,
                        help="never-asked users per closed-loop round of tier 3")
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--rate", type=float, default=400)
    parser.add_argument("--cold-rate", type=float, default=200)
    parser.add_argument("--tiers", default="1,2,3")
    args = parser.parse_args()
    if not FIXTURE.exists():
        raise SystemExit(f"needs the real sip_auth capture at {FIXTURE}")
    tiers = [int(t) for t in args.tiers.split(",")]

    import redis

    from tests.xmlcurl import rewrite
    from whistle_tasks.core.config import settings
    from whistle_tasks.core.couch import get_couch
    from whistle_tasks.ops import provisioning

    common.reset_bench_resources()
    provisioning.create_account("Storm", REALM)
    users = [str(200000 + i) for i in range(args.devices)]
    t0 = time.perf_counter()
    provisioning.create_devices(REALM, [{"username": u, "password": f"pw-{u}"} for u in users],
                                chunk=1000)
    couch = get_couch()
    couch.view("sip_auth", "credentials", "by_realm_user", limit=1)  # the index, built now
    print(f"provisioned {len(users)} devices in {time.perf_counter() - t0:.1f}s", flush=True)
    template = FIXTURE.read_bytes()
    bodies = {u: rewrite(template, {
        "sip_auth_username": u, "sip_auth_realm": REALM, "user": u, "domain": REALM,
        "sip_to_user": u, "sip_to_host": REALM, "sip_from_user": u, "sip_from_host": REALM,
        "key_value": REALM}) for u in users}
    real_expected = {u: expected_entry(REALM, u, f"pw-{u}") for u in users}
    from bench.floor_bridge import PASSWORD
    floor_expected = {u: expected_entry(REALM, u, PASSWORD) for u in users}
    view_path = (couch.db_url("sip_auth").split("//", 1)[1].partition("/")[2]
                 + "/_design/credentials/_view/by_realm_user")
    couch_expected = {u: [f'"password":"pw-{u}"', f'"username":"{u}"'] for u in users}

    def view_get(u: str) -> str:
        return f"/{view_path}?limit=1&key={quote(json.dumps([REALM, u], separators=(',', ':')))}"

    pool, n = settings.pool_of("registrar")
    procs: list[common.Proc] = []
    results: dict[int, dict[str, common.Paired]] = {}
    notes: dict[int, list[str]] = {}
    try:
        real, real_port = start_bridge("bridge-nocache", WHISTLE_AUTH_CACHE_TTL="0")
        floor, floor_port = start_bridge("bridge-floor", floor=True)
        procs += [real, floor]
        real_url = f"http://127.0.0.1:{real_port}/fs/directory"
        floor_url = f"http://127.0.0.1:{floor_port}/fs/directory"

        def closed(url: str, chosen: list[str], expected: dict[str, list[str]],
                   name: str):  # noqa: ANN202
            return lambda: wrk.closed(name, url, [(u, bodies[u]) for u in chosen], expected,
                                      KEY_PATTERN, connections=args.inflight,
                                      seconds=args.seconds)

        def opened(port: int, chosen: list[str], expected: dict[str, list[str]], name: str,
                   rate: float):  # noqa: ANN202
            count = iter(range(10**9))

            def make(i: int) -> tuple[bytes, str]:
                u = chosen[next(count) % len(chosen)]
                return request_bytes("127.0.0.1", port, "/fs/directory", bodies[u]), u

            load = HttpLoad("127.0.0.1", port, make, entry_check(expected))
            return lambda: load.open(name, rate, args.seconds)

        if 3 in tiers:
            # tier 3: a registrar with nothing primed, an empty Redis db, fresh users each round
            redis.Redis.from_url(common.BENCH_ENV["WHISTLE_REDIS_URL"]).flushdb()
            cold = common.worker("registrar", "storm-registrar-cold", pool=pool, concurrency=n,
                                 env={"WHISTLE_PRIME_CREDENTIALS": "0",
                                      "WHISTLE_LOG_LEVEL": "INFO"})
            procs.append(cold)
            position = [0]

            def fresh(count: int) -> list[str]:
                start = position[0]
                position[0] += count
                if position[0] > len(users):
                    raise SystemExit(f"tier 3 needs more than {len(users)} devices "
                                     "(--devices)")
                return users[start:start + count]

            current: list[list[str]] = [[]]

            def cold_subject() -> common.Result:
                current[0] = fresh(args.cold_slice)
                r = closed(real_url, current[0], real_expected, "tier 3")()
                if r.answered > len(current[0]):
                    notes.setdefault(3, []).append(
                        f"a round answered {r.answered} > its {len(current[0])} fresh users: "
                        "some were second reads (raise --cold-slice)")
                return r

            def cold_floor() -> common.Result:  # the same documents, read bare
                return wrk.closed("couch bare read", f"http://127.0.0.1:5984/{view_path}",
                                  [(u, view_get(u).encode()) for u in current[0]],
                                  couch_expected, COUCH_KEY_PATTERN, connections=args.inflight,
                                  seconds=args.seconds, method="GET")

            couch_url = common.BENCH_ENV["WHISTLE_COUCH_URL"]
            if couch_url.rstrip("/") != "http://127.0.0.1:5984":
                raise SystemExit("tier 3's floor reads pouchdb-server at 127.0.0.1:5984")
            print("tier 3 (CouchDB read), closed loop, alternating:", flush=True)
            t3_closed = common.paired(cold_subject, cold_floor, args.repeats)

            open_users = max(1, int(args.cold_rate * args.seconds))

            def cold_open() -> common.Result:
                current[0] = fresh(open_users)
                return opened(real_port, current[0], real_expected, "tier 3",
                              args.cold_rate)()

            def cold_open_floor() -> common.Result:
                count = iter(range(10**9))
                chosen = list(current[0])

                def make(i: int) -> tuple[bytes, str]:
                    u = chosen[next(count) % len(chosen)]
                    return (f"GET {view_get(u)} HTTP/1.1\r\nHost: 127.0.0.1:5984\r\n"
                            "Connection: close\r\n\r\n").encode(), u

                def check(u: object, answer: bytes) -> bool:
                    text = answer.decode("utf-8", "replace")
                    return answer.startswith(b"HTTP/1.1 200") and all(
                        n.replace(",", ", ") in text or n in text for n in couch_expected[str(u)])

                return HttpLoad("127.0.0.1", 5984, make, check).open(
                    "couch bare read", args.cold_rate, args.seconds)

            print(f"tier 3 (CouchDB read), open loop {args.cold_rate:.0f}/s, alternating:",
                  flush=True)
            t3_open = common.paired(cold_open, cold_open_floor, args.repeats)
            results[3] = {"closed": t3_closed, "open": t3_open}
            cold.stop()
            procs.remove(cold)

        if 1 in tiers or 2 in tiers:
            primed = common.worker("registrar", "storm-registrar", pool=pool, concurrency=n,
                                   env={"WHISTLE_LOG_LEVEL": "INFO"})
            procs.append(primed)
            wait_primed(primed, len(users))
        if 2 in tiers:
            chosen = users[:args.tier2_users]
            print("tier 2 (worker cache), closed loop, alternating:", flush=True)
            t2_closed = common.paired(closed(real_url, chosen, real_expected, "tier 2"),
                                      closed(floor_url, chosen, floor_expected, "floor"),
                                      args.repeats)
            print(f"tier 2 (worker cache), open loop {args.rate:.0f}/s, alternating:",
                  flush=True)
            t2_open = common.paired(
                opened(real_port, chosen, real_expected, "tier 2", args.rate),
                opened(floor_port, chosen, floor_expected, "floor", args.rate), args.repeats)
            results[2] = {"closed": t2_closed, "open": t2_open}
        if 1 in tiers:
            warm, warm_port = start_bridge("bridge-cache", WHISTLE_AUTH_CACHE_TTL="3600")
            procs.append(warm)
            warm_url = f"http://127.0.0.1:{warm_port}/fs/directory"
            chosen = users[:args.warm_users]
            closed(warm_url, chosen, real_expected, "warm-up")()  # fills the bridge cache
            print("tier 1 (bridge cache), closed loop, alternating:", flush=True)
            t1_closed = common.paired(closed(warm_url, chosen, real_expected, "tier 1"),
                                      closed(floor_url, chosen, floor_expected, "floor"),
                                      args.repeats)
            print(f"tier 1 (bridge cache), open loop {args.rate:.0f}/s, alternating:",
                  flush=True)
            t1_open = common.paired(
                opened(warm_port, chosen, real_expected, "tier 1", args.rate),
                opened(floor_port, chosen, floor_expected, "floor", args.rate), args.repeats)
            results[1] = {"closed": t1_closed, "open": t1_open}
    finally:
        for proc in procs:
            proc.stop()

    print(f"\nauth storm: {args.devices} devices, registrar pool={pool} c={n}, "
          f"{args.repeats} alternating pairs x {args.seconds:.0f}s, {args.inflight} in flight")
    labels = {1: ("tier 1: bridge cache hit", "floor: fixed answer, no AMQP"),
              2: ("tier 2: registrar cache hit", "floor: fixed answer, no AMQP"),
              3: ("tier 3: CouchDB read (cold)", "floor: pouchdb-server bare read")}
    for tier in sorted(results):
        r = results[tier]
        label, floor_label = labels[tier]
        print(f" {label}, closed loop:")
        common.print_paired(label, floor_label, r["closed"])
        rate = args.cold_rate if tier == 3 else args.rate
        print(f" {label}, open loop {rate:.0f}/s:")
        common.print_paired(label, floor_label, r["open"], latency=True)
        s_closed, s_open = r["closed"].subject_all, r["open"].subject_all
        checks = [(f"tier {tier}: every request answered right",
                   s_closed.bad == 0 and s_open.bad == 0 and s_closed.accounted
                   and s_open.accounted)]
        if tier == 1:
            checks += [("tier 1 >= 3,000/s", r["closed"].subject_rate >= 3000),
                       ("tier 1 p99 <= 10 ms at 400/s", s_open.p99 <= 10)]
        if tier == 3:
            checks += [("tier 3 >= 50% of the bare read rate", r["closed"].ratio >= 0.5),
                       (f"tier 3 p99 <= 25 ms at {rate:.0f}/s", s_open.p99 <= 25)]
        for line in notes.get(tier, []):
            print(f"  note: {line}")
        for text, ok in checks:
            print(f"  [{'met' if ok else 'MISSED'}] {text}")


def wait_primed(proc: common.Proc, devices: int, timeout: float = 600) -> None:
    """Until the worker logged that its caches are primed (it starts consuming before)."""
    deadline = time.monotonic() + timeout
    while "registrar ready" not in proc.log_path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SystemExit(f"the registrar did not prime {devices} credentials in {timeout}s")
        time.sleep(0.5)


if __name__ == "__main__":
    main()
