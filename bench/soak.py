"""Soak: authentication, routing and event load at about half the measured capacity for
ten minutes; the resident memory of the bridge and of the workers must stay flat (within
10 % after warm-up), every lookup and every route must be answered right (each checked
against its exact expected answer: the user's own entry and password, the number's own
registered contact; every request accounted for: right, wrong, error, timeout), and the
bridge's own counters must show nothing dropped, nothing left unconfirmed, no answer past
its budget, and every event written into it handled.

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
from bench.auth_storm import entry_check, expected_entry, start_bridge  # noqa: E402
from bench.event_firehose import bridge_counter  # noqa: E402
from bench.http_load import HttpLoad, request_bytes  # noqa: E402
from bench.route_storm import FIXTURE as ROUTE_FIXTURE  # noqa: E402

REALM = "soak.example.com"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def all_event_frames() -> list:
    """Every event frame of the captures the bridge subscribes to (call events and the
    CUSTOM registrations: the registrar's writes are part of the load)."""
    from bench.event_firehose import CASES
    from switch_bridge.freeswitch import translate as events
    from switch_bridge.freeswitch.esl.protocol import parse_event
    from tests.esl_standin import load_capture_events

    wanted = set(events.subscription())
    frames = []
    for case in CASES:
        for frame in load_capture_events(common.CAPTURES / case / f"esl_{case[0]}_json.txt"):
            event = parse_event(frame)
            if event is not None and (event.name in wanted or event.name == "CUSTOM"):
                frames.append(frame)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--auth-rate", type=float, default=150)
    parser.add_argument("--route-rate", type=float, default=100)
    parser.add_argument("--event-rate", type=float, default=1000)
    args = parser.parse_args()

    from bench.route_storm import contact_of, provision, route_needles
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
    frames = all_event_frames()
    events = b"".join(f.to_bytes() for f in frames)
    per_copy = len(frames)
    auth_expected = {u: expected_entry(REALM, u, f"pw-{u}") for u in users}
    route_expected = {u: route_needles(contact_of(i, u)) for i, u in enumerate(users)}

    def route_check(user: object, answer: bytes) -> bool:
        text = answer.decode("utf-8", "replace")
        return answer.startswith(b"HTTP/1.1 200") and all(
            n in text for n in route_expected[str(user)])

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

    def auth_request(i: int) -> tuple[bytes, str]:
        k = rng.randrange(len(users))
        return request_bytes("127.0.0.1", port, "/fs/directory", auth_bodies[k]), users[k]

    def route_request(i: int) -> tuple[bytes, str]:
        k = rng.randrange(len(users))
        return request_bytes("127.0.0.1", port, "/fs/dialplan", route_bodies[k]), users[k]

    auth = HttpLoad("127.0.0.1", port, auth_request, entry_check(auth_expected))
    route = HttpLoad("127.0.0.1", port, route_request, route_check)

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

    def counters() -> dict[str, float]:
        names = {"dropped": "whistle_bridge_dropped_messages",
                 "buffered": "whistle_bridge_buffered_messages",
                 "confirmed": "whistle_bridge_confirmed_messages",
                 "published": 'whistle_bridge_events_total{outcome="published"}',
                 "ignored": 'whistle_bridge_events_total{outcome="ignored"}',
                 "invalid": 'whistle_bridge_events_total{outcome="invalid"}',
                 "timeouts directory": 'whistle_bridge_timeouts_total{section="directory"}',
                 "timeouts dialplan": 'whistle_bridge_timeouts_total{section="dialplan"}'}
        return {k: bridge_counter(port, v) for k, v in names.items()}

    before = counters()
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
        # the bridge finishes what it was given: every event handled, the outbox empty
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = counters()
            handled = sum(after[k] - before[k] for k in ("published", "ignored", "invalid"))
            if handled >= sent_events and after["buffered"] == 0:
                break
            gevent.sleep(0.5)
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
    delta = {k: after[k] - before[k] for k in after}
    handled = delta["published"] + delta["ignored"] + delta["invalid"]
    print(f"  events: {sent_events} written into the bridge = {handled:.0f} handled "
          f"({delta['published']:.0f} published, {delta['ignored']:.0f} ignored, "
          f"{delta['invalid']:.0f} invalid); {delta['confirmed']:.0f} messages confirmed by "
          f"RabbitMQ, {after['buffered']:.0f} left unconfirmed, {delta['dropped']:.0f} dropped")
    budget = delta["timeouts directory"] + delta["timeouts dialplan"]
    print(f"  answers past the bridge's budget: {budget:.0f} "
          f"({delta['timeouts directory']:.0f} directory, {delta['timeouts dialplan']:.0f} "
          "dialplan)")
    print("  resident memory (MiB) after warm-up: first → last (min..max)")
    flat = True
    for name in procs:
        values = [s[name] for s in warm]
        growth = (values[-1] - values[0]) / values[0] if values[0] else 0
        flat &= max(values) <= min(values) * 1.10
        print(f"    {name:<10} {values[0] / 1024:7.1f} → {values[-1] / 1024:7.1f} "
              f"({min(values) / 1024:.1f}..{max(values) / 1024:.1f}, {growth:+.1%})")
    bad = results["auth"].bad + results["route"].bad
    accounted = results["auth"].accounted and results["route"].accounted
    nothing_lost = (delta["dropped"] == 0 and after["buffered"] == 0 and delta["invalid"] == 0
                    and handled == sent_events)
    print(f"  [{'met' if flat else 'MISSED'}] memory flat within 10 % after warm-up")
    print(f"  [{'met' if bad == 0 and accounted else 'MISSED'}] every lookup and route "
          f"answered right ({bad} not)")
    print(f"  [{'met' if budget == 0 else 'MISSED'}] no answer past its budget")
    print(f"  [{'met' if nothing_lost else 'MISSED'}] every event handled, nothing dropped "
          "or left unconfirmed")
    print("  timeline (s: bridge/registrar/router MiB): " + ", ".join(
        f"{t:.0f}: {s['bridge'] // 1024}/{s['registrar'] // 1024}/{s['router'] // 1024}"
        for t, s in samples))


if __name__ == "__main__":
    main()
