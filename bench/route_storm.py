"""Route storm: dialplan lookups for 10,000 numbers on 10,000 registered devices, end to end.

    .venv/bin/python bench/route_storm.py [--seconds 10] [--repeats 3]

Each request is a real dialplan body (capture d) for a different number, posted to the
bridge, routed by the router whapp (number → device → registered contact) and rendered as a
bridge to that contact; every answer is checked. Closed loop with 64 in flight (``wrk``, a
new connection per request as libcurl), open loop at 300/s (p50/p99 from the scheduled send
time), beside the no-AMQP floor: a bridge answering from a fixed in-process answer
(``bench/floor_bridge.py``) with the same parse and render. Targets (issue #4, this
2-core machine): ≥ 600 routes/s; p99 ≤ 30 ms at 300/s offered.

Set-up shortcut (documented, not measured): the 10,000 registrations are written to CouchDB
in bulk and copied to Redis (the registrar's own priming), instead of 10,000 REGISTERs.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gevent import monkey  # noqa: E402

monkey.patch_all()

from bench import common, wrk  # noqa: E402
from bench.auth_storm import start_bridge  # noqa: E402
from bench.http_load import HttpLoad, request_bytes  # noqa: E402

FIXTURE = (common.CAPTURES /
           "d_call_1001_bridge" / "xmlcurl_03_dialplan_default_1001.body")
REALM = "routes.example.com"
MARKER = 'application="bridge"'


def provision(count: int) -> list[str]:
    from whistle_tasks.core.couch import get_couch
    from whistle_tasks.data import registrations
    from whistle_tasks.ops import imports, provisioning

    provisioning.create_account("Routes", REALM)
    users = [str(300000 + i) for i in range(count)]
    t0 = time.perf_counter()
    provisioning.create_devices(REALM, [{"username": u, "password": f"pw-{u}"} for u in users])
    csv = "number,to\n" + "".join(f"{u},device:{u}\n" for u in users)
    summary = imports.import_numbers(imports.read_numbers(csv.encode(), REALM), REALM)
    now = time.time()
    docs = [registrations.to_document({
        "Realm": REALM, "Username": u, "Contact": f"<sip:{u}@192.0.2.{i % 250 + 1}:5060>",
        "Expires": 3600, "Event-Timestamp": now}) for i, u in enumerate(users)]
    couch = get_couch()
    for start in range(0, len(docs), 1000):
        couch.bulk_docs("registrations", docs[start:start + 1000])
    primed = registrations.prime()
    couch.view(couch_db_of(REALM), "numbers", "by_number", limit=1)  # build the index now
    print(f"provisioned {count} devices, {summary.created} numbers, {primed} registrations "
          f"in {time.perf_counter() - t0:.1f}s")
    return users


def couch_db_of(realm: str) -> str:
    from whistle_tasks.ops.provisioning import get_account

    return get_account(realm)["pvt_account_db"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--numbers", type=int, default=10_000)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--rate", type=float, default=300)
    args = parser.parse_args()
    if not FIXTURE.exists():
        raise SystemExit(f"needs the real dialplan capture at {FIXTURE}")
    from tests.xmlcurl import rewrite
    from whistle_tasks.core.config import settings

    common.reset_bench_resources()
    users = provision(args.numbers)
    template = FIXTURE.read_bytes()
    bodies = [rewrite(template, {
        "Caller-Destination-Number": u, "Hunt-Destination-Number": u,
        "variable_sip_req_host": REALM, "variable_sip_to_host": REALM,
        "variable_sip_req_user": u, "variable_sip_to_user": u,
        "variable_ecallmgr_Realm": REALM, "variable_ecallmgr_Username": users[0],
        "Unique-ID": str(uuid.uuid4()), "Channel-Call-UUID": str(uuid.uuid4())})
        for u in users]

    procs = []
    for whapp in ("router", "registrar"):
        pool, n = settings.pool_of(whapp)
        procs.append(common.worker(whapp, f"routes-{whapp}", pool=pool, concurrency=n))
    try:
        real, real_port = start_bridge("routes-bridge")
        floor, floor_port = start_bridge("routes-floor", floor=True)
        procs += [real, floor]
        real_url = f"http://127.0.0.1:{real_port}/fs/dialplan"
        floor_url = f"http://127.0.0.1:{floor_port}/fs/dialplan"
        # warm-up: every number once, so the router's caches hold them (a running system)
        t0 = time.perf_counter()
        warm = wrk.closed("warm-up", real_url, bodies, connections=args.inflight,
                          seconds=max(3, args.numbers / 400), marker=MARKER)
        print(f"warm-up: {warm.sent} routes in {time.perf_counter() - t0:.0f}s, "
              f"{warm.errors} not bridged")

        def check(answer: bytes) -> bool:
            return answer.startswith(b"HTTP/1.1 200") and MARKER.encode() in answer

        counter = iter(range(10**9))
        real_load = HttpLoad("127.0.0.1", real_port, lambda i: request_bytes(
            "127.0.0.1", real_port, "/fs/dialplan", bodies[next(counter) % len(bodies)]), check)
        floor_load = HttpLoad("127.0.0.1", floor_port, lambda i: request_bytes(
            "127.0.0.1", floor_port, "/fs/dialplan", bodies[next(counter) % len(bodies)]), check)
        results = {
            "floor closed": common.run_repeated(lambda: wrk.closed(
                "floor", floor_url, bodies, connections=args.inflight, seconds=args.seconds,
                marker=MARKER), args.repeats),
            "real closed": common.run_repeated(lambda: wrk.closed(
                "routes", real_url, bodies, connections=args.inflight, seconds=args.seconds,
                marker=MARKER), args.repeats),
            "floor open": common.run_repeated(
                lambda: floor_load.open("floor", args.rate, args.seconds), args.repeats),
            "real open": common.run_repeated(
                lambda: real_load.open("routes", args.rate, args.seconds), args.repeats),
        }
    finally:
        for proc in procs:
            proc.stop()

    r = results
    print(f"\nroute storm: {args.numbers} numbers on {args.numbers} registered devices, "
          f"median of {args.repeats} x {args.seconds:.0f}s")
    print(f" closed loop, {args.inflight} in flight:")
    print(common.fmt_row("floor (fixed answer, no AMQP)", r["floor closed"]))
    print(common.fmt_row("bridge + router + registrations", r["real closed"]))
    print(f"  routes / floor = {r['real closed'].rate / r['floor closed'].rate:.0%}")
    print(f" open loop, {args.rate:.0f}/s offered:")
    print(common.fmt_row("floor (fixed answer, no AMQP)", r["floor open"]))
    print(common.fmt_row("bridge + router + registrations", r["real open"]))
    for label, ok in (("routes >= 600/s", r["real closed"].rate >= 600),
                      (f"p99 <= 30 ms at {args.rate:.0f}/s", r["real open"].p99 <= 30),
                      ("every answer a bridge to the contact",
                       r["real closed"].errors == 0 and r["real open"].errors == 0)):
        print(f"  [{'met' if ok else 'MISSED'}] {label}")


if __name__ == "__main__":
    main()
