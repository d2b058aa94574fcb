"""Route storm: dialplan lookups for 10,000 numbers on 10,000 registered devices, end to end.

    .venv/bin/python bench/route_storm.py [--seconds 10] [--repeats 3]

Each request is a real dialplan body (capture d) for a different number, posted to the
bridge, routed by the router whapp (number → device → registered contact) and rendered as a
bridge to that contact. Every answer is checked against the exact answer expected for its
request: a ``bridge`` to that number's own registered contact
(``U@192.0.2.N:5060``; the floor's: its fixed contact), and every request is accounted
for (right, wrong, error, timeout). Closed loop with 64 in flight (``wrk``, a new
connection per request as libcurl), open loop at 300/s (p50/p99 from the scheduled send
time), beside the no-AMQP floor: a bridge answering from a fixed in-process answer
(``bench/floor_bridge.py``) with the same parse and render, in alternating rounds (routes,
floor, routes, floor...): rates are medians, the ratio the median of the per-round
ratios. Targets (issue #13, this 2-core machine): ≥ 1,000 routes/s at 64 in flight; p99
≤ 15 ms at 300/s offered.

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
#: the user of the contact an answer bridges to (wrk's Lua pattern): the request's key
KEY_PATTERN = 'application="bridge" data="[^"]-(%d+)@192%.0%.2%.%d+:5060'


def contact_of(i: int, user: str) -> str:
    """The contact the i-th device registered (what its number must bridge to)."""
    return f"{user}@192.0.2.{i % 250 + 1}:5060"


def route_needles(contact: str) -> list[str]:
    return ['application="bridge"', f"{contact}"]


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
        "Realm": REALM, "Username": u, "Contact": f"<sip:{contact_of(i, u)}>",
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

    from bench.floor_bridge import CONTACT

    floor_user = CONTACT.split(":")[1].split("@")[0]
    expected = {u: route_needles(contact_of(i, u)) for i, u in enumerate(users)}
    floor_expected = {floor_user: route_needles(CONTACT.split(":", 1)[1])}
    real_requests = list(zip(users, bodies, strict=True))
    floor_requests = [(floor_user, b) for b in bodies]

    def check_with(expected: dict[str, list[str]]):  # noqa: ANN202
        def check(key: object, answer: bytes) -> bool:
            text = answer.decode("utf-8", "replace")
            return answer.startswith(b"HTTP/1.1 200") and all(
                n in text for n in expected[str(key)])
        return check

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
        warm = wrk.closed("warm-up", real_url, real_requests, expected, KEY_PATTERN,
                          connections=args.inflight, seconds=max(3, args.numbers / 400))
        print(f"warm-up: {warm.sent} routes in {time.perf_counter() - t0:.0f}s, "
              f"{warm.bad} not the right bridge", flush=True)

        counter = iter(range(10**9))

        def make(port: int, floor: bool):  # noqa: ANN202
            def one(i: int) -> tuple[bytes, str]:
                k = next(counter) % len(bodies)
                return (request_bytes("127.0.0.1", port, "/fs/dialplan", bodies[k]),
                        floor_user if floor else users[k])
            return one

        real_load = HttpLoad("127.0.0.1", real_port, make(real_port, False),
                             check_with(expected))
        floor_load = HttpLoad("127.0.0.1", floor_port, make(floor_port, True),
                              check_with(floor_expected))
        print(" closed loop, routes vs floor, alternating:", flush=True)
        closed = common.paired(
            lambda: wrk.closed("routes", real_url, real_requests, expected, KEY_PATTERN,
                               connections=args.inflight, seconds=args.seconds),
            lambda: wrk.closed("floor", floor_url, floor_requests, floor_expected,
                               KEY_PATTERN, connections=args.inflight, seconds=args.seconds),
            args.repeats)
        print(f" open loop {args.rate:.0f}/s, routes vs floor, alternating:", flush=True)
        opened = common.paired(lambda: real_load.open("routes", args.rate, args.seconds),
                               lambda: floor_load.open("floor", args.rate, args.seconds),
                               args.repeats)
    finally:
        for proc in procs:
            proc.stop()

    print(f"\nroute storm: {args.numbers} numbers on {args.numbers} registered devices, "
          f"{args.repeats} alternating pairs x {args.seconds:.0f}s")
    print(f" closed loop, {args.inflight} in flight:")
    common.print_paired("bridge + router + registrations", "floor (fixed answer, no AMQP)",
                        closed)
    print(f" open loop, {args.rate:.0f}/s offered:")
    common.print_paired("bridge + router + registrations", "floor (fixed answer, no AMQP)",
                        opened, latency=True)
    s_closed, s_open = closed.subject_all, opened.subject_all
    for label, ok in (("routes >= 1,000/s", closed.subject_rate >= 1000),
                      (f"p99 <= 15 ms at {args.rate:.0f}/s", s_open.p99 <= 15),
                      ("every request answered with the bridge to its own contact",
                       s_closed.bad == 0 and s_open.bad == 0 and s_closed.accounted
                       and s_open.accounted)):
        print(f"  [{'met' if ok else 'MISSED'}] {label}")


if __name__ == "__main__":
    main()
