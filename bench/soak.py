"""Soak: authentication, routing and event load at about half the measured capacity for
ten minutes; the resident memory of the bridge and of the workers must stay flat (within
10 % after warm-up) and no request may fail.

    .venv/bin/python bench/soak.py [--minutes 10] [--auth-rate 150] [--route-rate 100]
                                   [--event-rate 1000]

The three loads share one bridge and two cores, so together they make about half of the
measured capacity (BENCHMARKS.md): authentication 150/s of ~900/s cold (17 %), routes
100/s of ~650/s (15 %), events 1,000/s of ~5,700/s (18 %). (Each at half of its own
capacity at once — 300 + 200 + 3,000/s — overloads the bridge: measured, 10 % of lookups
then miss their budget and the bridge's buffer grows.) The
bridge keeps credentials 10 s (``WHISTLE_AUTH_CACHE_TTL``) so authentication mixes cached
answers and trips to the registrar. Memory (VmRSS) is sampled every 15 s; the verdict
compares the samples after the warm-up (the first 20 % of the run).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gevent import monkey  # noqa: E402

monkey.patch_all()

import gevent  # noqa: E402

from bench import common  # noqa: E402
from bench.auth_storm import FIXTURE as AUTH_FIXTURE  # noqa: E402
from bench.auth_storm import start_bridge  # noqa: E402
from bench.event_firehose import stream_frames  # noqa: E402
from bench.http_load import HttpLoad, request_bytes  # noqa: E402
from bench.route_storm import FIXTURE as ROUTE_FIXTURE  # noqa: E402

REALM = "soak.example.com"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--auth-rate", type=float, default=150)
    parser.add_argument("--route-rate", type=float, default=100)
    parser.add_argument("--event-rate", type=float, default=1000)
    args = parser.parse_args()

    from bench.route_storm import provision
    from tests.esl_standin import EslStandIn
    from tests.xmlcurl import rewrite
    from whistle_tasks.core.config import settings

    common.reset_bench_resources()
    import bench.route_storm as rs

    rs.REALM = REALM
    users = provision(args.users)
    auth_template, route_template = AUTH_FIXTURE.read_bytes(), ROUTE_FIXTURE.read_bytes()
    auth_bodies = [rewrite(auth_template, {
        "sip_auth_username": u, "sip_auth_realm": REALM, "user": u, "domain": REALM,
        "sip_to_user": u, "sip_to_host": REALM, "sip_from_user": u, "sip_from_host": REALM})
        for u in users]
    route_bodies = [rewrite(route_template, {
        "Caller-Destination-Number": u, "Hunt-Destination-Number": u,
        "variable_sip_req_host": REALM, "variable_sip_to_host": REALM,
        "variable_ecallmgr_Realm": REALM, "variable_ecallmgr_Username": users[0],
        "Unique-ID": str(uuid.uuid4())}) for u in users]
    events = b"".join(f.to_bytes() for f in stream_frames("json"))
    per_copy = len(stream_frames("json"))

    standin = EslStandIn(password="ClueCon").start()
    procs = {}
    for whapp in ("registrar", "router"):
        pool, n = settings.pool_of(whapp)
        procs[whapp] = common.worker(whapp, f"soak-{whapp}", pool=pool, concurrency=n)
    bridge, port = start_bridge("soak-bridge", WHISTLE_AUTH_CACHE_TTL="10",
                                WHISTLE_FS_NODES=f"127.0.0.1:{standin.port}:ClueCon")
    procs["bridge"] = bridge
    standin.wait_for_connections(1, timeout=10)
    rng = random.Random(5)
    auth = HttpLoad("127.0.0.1", port, lambda i: request_bytes(
        "127.0.0.1", port, "/fs/directory", auth_bodies[rng.randrange(len(auth_bodies))]),
        lambda a: a.startswith(b"HTTP/1.1 200") and b'name="password"' in a)
    route = HttpLoad("127.0.0.1", port, lambda i: request_bytes(
        "127.0.0.1", port, "/fs/dialplan", route_bodies[rng.randrange(len(route_bodies))]),
        lambda a: a.startswith(b"HTTP/1.1 200") and b'application="bridge"' in a)

    # warm-up, not counted: every user and number once, as a running platform has them
    # (measured: without it the first seconds time out while the registrar builds its
    # credential index and primes its caches)
    warm = auth.closed("warm-up", 16, 10), route.closed("warm-up", 16, 10)
    print(f"warm-up: {warm[0].answered} lookups, {warm[1].answered} routes (not counted)")
    seconds = args.minutes * 60
    samples: list[tuple[float, dict[str, int]]] = []
    results = {}
    sent_events = 0

    def events_loop() -> None:
        nonlocal sent_events
        interval = per_copy / args.event_rate
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            standin.send_raw(events)
            sent_events += per_copy
            gevent.sleep(interval)

    def memory_loop() -> None:
        end = time.monotonic() + seconds
        start = time.monotonic()
        while time.monotonic() < end:
            samples.append((time.monotonic() - start,
                            {name: rss_kib(p.proc.pid) for name, p in procs.items()}))
            gevent.sleep(15)

    started = time.monotonic()
    try:
        jobs = [gevent.spawn(lambda: results.__setitem__(
                    "auth", auth.open("auth", args.auth_rate, seconds))),
                gevent.spawn(lambda: results.__setitem__(
                    "route", route.open("route", args.route_rate, seconds))),
                gevent.spawn(events_loop), gevent.spawn(memory_loop)]
        gevent.joinall(jobs)
        samples.append((time.monotonic() - started,
                        {name: rss_kib(p.proc.pid) for name, p in procs.items()}))
    finally:
        for proc in procs.values():
            proc.stop()
        standin.stop()

    warm = [s for t, s in samples if t >= seconds * 0.2]
    print(f"\nsoak: {args.minutes:g} min, auth {args.auth_rate:g}/s, routes "
          f"{args.route_rate:g}/s, events {args.event_rate:g}/s offered")
    for name in ("auth", "route"):
        r = results[name]
        print(common.fmt_row(name, r))
    print(f"  events sent into the bridge: {sent_events}")
    print("  resident memory (MiB) after warm-up: first → last (min..max)")
    flat = True
    for name in procs:
        values = [s[name] for s in warm]
        growth = (values[-1] - values[0]) / values[0] if values[0] else 0
        flat &= max(values) <= min(values) * 1.10
        print(f"    {name:<10} {values[0] / 1024:7.1f} → {values[-1] / 1024:7.1f} "
              f"({min(values) / 1024:.1f}..{max(values) / 1024:.1f}, {growth:+.1%})")
    errors = results["auth"].errors + results["route"].errors
    print(f"  [{'met' if flat else 'MISSED'}] memory flat within 10 % after warm-up")
    print(f"  [{'met' if errors == 0 else 'MISSED'}] no error ({errors})")
    print("  timeline (s: bridge/registrar/router MiB): " + ", ".join(
        f"{t:.0f}: {s['bridge'] // 1024}/{s['registrar'] // 1024}/{s['router'] // 1024}"
        for t, s in samples))


if __name__ == "__main__":
    main()
