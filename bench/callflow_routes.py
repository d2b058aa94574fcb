"""Callflow lookups in the router: route_req → route_resp for an account of 10,000 callflows.

    .venv/bin/python bench/callflow_routes.py [--callflows 10000] [--seconds 10] [--repeats 3]

The account holds 10,000 callflows: a third menus (many nodes: the router parks them with
the callflow's id), a third one-node devices (registered: answered at once with a bridge,
the fast path), a third one-node forwards to a SIP URI (fast path), and 100 of them matched
by patterns rather than numbers (``^\\+1555<nn>(\\d{4})$``: a number of those misses the
exact look-up, then tries the patterns, longest first). Each request is a ``route_req`` to a
random number (one in ten a pattern's), sent over RabbitMQ as the bridge sends it, answered
by the router whapp (Celery, its default pool); every answer is checked against the exact
answer expected for its request: a menu's number parks with its own callflow's id, a
device's bridges to that device's registered contact, a forward's bridges to its own SIP
URI; every request is accounted for (right, wrong, error, timeout).

Beside it, in the same run, the floor: the same messages answered by a trivial echo
consumer (``bench/echo_consumer.py``, bare RabbitMQ request/reply). Closed loop with 64 in
flight (throughput), open loop at 500/s (p50/p99 from the scheduled send time), in
alternating rounds (router, floor, router, floor...): rates are medians, the ratio the
median of the per-round ratios. Target (issue #11): ≥ 1,000 lookups/s with 64 in flight.

Set-up shortcut (documented, not measured): the callflows are written with ``_bulk_docs``
(every one checked by the same validator ``whistle callflow set`` uses) and the
registrations written to CouchDB in bulk and copied to Redis, instead of one CLI call or
one REGISTER each.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402  (sets the bench environment first)
from bench.amqp_load import AmqpLoad  # noqa: E402

REALM = "callflows.example.com"
PATTERNS = 100


def provision(count: int) -> tuple[list[tuple[str, str, str]], int]:
    """The callflows; returns ``[(number, expected Method, a string the answer must hold:
    the callflow's id, the device's contact or the forward's URI)]`` and the seconds it
    took."""
    from schemas import callflow as cf
    from whistle_tasks.core.couch import get_couch
    from whistle_tasks.data import registrations
    from whistle_tasks.ops import callflows as cf_ops
    from whistle_tasks.ops import provisioning

    t0 = time.perf_counter()
    provisioning.create_account("Callflows", REALM)
    account = provisioning.get_account(REALM)
    third = count // 3
    devices = [str(400000 + i) for i in range(third)]
    provisioning.create_devices(REALM, [{"username": u, "password": f"pw-{u}"}
                                        for u in devices])
    now = time.time()
    regs = [registrations.to_document({
        "Realm": REALM, "Username": u, "Contact": f"<sip:{u}@192.0.2.{i % 250 + 1}:5060>",
        "Expires": 3600, "Event-Timestamp": now}) for i, u in enumerate(devices)]
    couch = get_couch()
    for start in range(0, len(regs), 1000):
        couch.bulk_docs("registrations", regs[start:start + 1000])
    registrations.prime()
    modules = cf_ops.modules()
    docs: list[dict] = []
    expected: list[tuple[str, str, str]] = []
    contacts = {u: f"{u}@192.0.2.{i % 250 + 1}:5060" for i, u in enumerate(devices)}
    for i in range(count):
        number = f"+1415{i:07d}"
        kind = i % 3
        device = devices[(i // 3) % len(devices)]
        if i < PATTERNS:
            pattern = rf"^\+1555{i:03d}(\d{{4}})$"
            doc = {"patterns": [pattern], "flow": {
                "module": "menu", "data": {"greeting": "ivr/main.wav"},
                "children": {"1": {"module": "play", "data": {"media": "a.wav"}}}}}
            number = f"+1555{i:03d}0000"
            method = "park"
        elif kind == 0:
            doc = {"numbers": [number], "flow": {
                "module": "menu", "data": {"greeting": "ivr/main.wav"},
                "children": {"1": {"module": "device", "data": {"username": device}},
                             "2": {"module": "play", "data": {"media": "b.wav"}},
                             "_": {"module": "hangup"}}}}
            method = "park"
        elif kind == 1:
            doc = {"numbers": [number], "flow": {"module": "device",
                                                 "data": {"username": device}}}
            method = "bridge"
        else:
            doc = {"numbers": [number], "flow": {"module": "forward",
                                                 "data": {"uri": f"sip:{i}@pbx.example.net"}}}
            method = "bridge"
        cf.validate(doc, modules)
        doc_id = uuid.uuid4().hex
        docs.append({**doc, "_id": doc_id, "pvt_type": "callflow",
                     "pvt_account_id": account["_id"]})
        needle = doc_id if method == "park" else (
            contacts[device] if doc["flow"]["module"] == "device"
            else doc["flow"]["data"]["uri"])
        expected.append((number, method, needle))
    db = account["pvt_account_db"]
    for start in range(0, len(docs), 1000):
        couch.bulk_docs(db, docs[start:start + 1000])
    couch.view(db, "numbers", "by_number", limit=1)      # build the indexes now
    couch.view(db, "callflows", "by_pattern", limit=1)
    return expected, int(time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callflows", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--rate", type=float, default=500)
    args = parser.parse_args()

    common.reset_bench_resources()
    from schemas import contracts
    from whistle_tasks.core.config import settings

    expected, took = provision(args.callflows)
    print(f"provisioned {len(expected)} callflows ({PATTERNS} by pattern) in {took}s")
    patterned = [e for e in expected if e[0].startswith("+1555")]
    exact = [e for e in expected if not e[0].startswith("+1555")]
    rng = random.Random(11)

    def route(i: int) -> tuple[str, dict, str]:
        number, _, _ = rng.choice(patterned if i % 10 == 0 else exact)
        msg = {"Event-Category": "dialplan", "Event-Name": "route_req", "App-Name": "bench",
               "App-Version": "1", "Call-ID": f"bench-{i}", "Request": f"{number}@{REALM}",
               "From": f"1000@{REALM}", "To": f"{number}@{REALM}",
               "Custom-Channel-Vars": {"Realm": REALM, "Username": "1000"}}
        return str(contracts.ROUTE.task), msg, contracts.ROUTE.key(msg)

    def echo(i: int) -> tuple[str, dict, str]:
        task, msg, _ = route(i)
        return task, msg, "bench.echo.x"

    by_number = {number: (method, needle) for number, method, needle in expected}
    wrong: list[dict] = []

    def right(request: dict, answer: dict) -> bool:
        method, needle = by_number[request["To"].partition("@")[0]]
        ok = (answer.get("Event-Name") == "route_resp" and answer.get("Msg-ID") == request["Msg-ID"]
              and answer.get("Method") == method and needle in json.dumps(answer))
        if not ok and len(wrong) < 3:
            wrong.append({"request": request["To"], "expected": [method, needle],
                          "answer": answer})
        return ok

    from bench.registrar import echo_right

    procs = []
    try:
        procs.append(common.Proc("echo", [sys.executable, str(common.ROOT / "bench" /
                                                               "echo_consumer.py"),
                                          settings.amqp_url], ready="echo consumer ready"))
        pool, n = settings.pool_of("router")
        procs.append(common.worker("router", "bench-router", pool=pool, concurrency=n))
        time.sleep(2)  # the router primes its caches as it starts
        floor = AmqpLoad(settings.amqp_url, echo, check=echo_right)
        whapp = AmqpLoad(settings.amqp_url, route, check=right)
        # warm-up: a running router has seen its numbers
        whapp.closed("warm-up", args.inflight, max(3.0, args.callflows / 1500))
        floor.closed("warm-up", args.inflight, 1)
        print(" closed loop, router vs floor, alternating:", flush=True)
        closed = common.paired(lambda: whapp.closed("router", args.inflight, args.seconds),
                               lambda: floor.closed("floor", args.inflight, args.seconds),
                               args.repeats)
        print(f" open loop {args.rate:.0f}/s, router vs floor, alternating:", flush=True)
        opened = common.paired(lambda: whapp.open("router", args.rate, args.seconds),
                               lambda: floor.open("floor", args.rate, args.seconds),
                               args.repeats)
        floor.close()
        whapp.close()
    finally:
        for proc in procs:
            proc.stop()

    print(f"\ncallflow lookups: {len(expected)} callflows in one account, router "
          f"pool={pool} c={n}, {args.repeats} alternating pairs x {args.seconds:.0f}s")
    print(f" closed loop, {args.inflight} in flight:")
    common.print_paired("router.route_req (callflows)", "bare RabbitMQ floor (echo)", closed)
    print(f" open loop, {args.rate:.0f}/s offered:")
    common.print_paired("router.route_req (callflows)", "bare RabbitMQ floor (echo)", opened,
                        latency=True)
    for w in wrong:
        print(f" wrong answer: {w}")
    s_closed, s_open = closed.subject_all, opened.subject_all
    for label, ok in (("lookups >= 1,000/s with 64 in flight", closed.subject_rate >= 1000),
                      ("every request answered right (method and target)",
                       s_closed.bad == 0 and s_open.bad == 0 and s_closed.accounted
                       and s_open.accounted)):
        print(f"  [{'met' if ok else 'MISSED'}] {label}")


if __name__ == "__main__":
    main()
