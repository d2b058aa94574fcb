"""Registrar benchmark: authn_req through Celery workers against 10,000 provisioned devices.

    .venv/bin/python bench/registrar.py [--devices 10000] [--seconds 10] [--repeats 3]

Measures, in the same run and under the same two loads:

* the registrar: ``registrar.authn_req`` tasks on ``callmgr`` → Celery worker(s) → answer on
  ``targeted`` (each request a random one of the devices);
* the floor: the same messages answered by a trivial kombu echo consumer
  (``bench/echo_consumer.py``): bare RabbitMQ request/reply.

Loads: closed loop with 64 requests in flight (throughput), open loop at 400/s (p50/p99
from the scheduled send time). Subject and floor run in alternating rounds (registrar,
floor, registrar, floor...; ``--repeats`` pairs): the rates are the medians, the ratio the
median of the per-round ratios. Every answer is checked against the exact answer expected
for its request (an ``authn_resp`` with the device's own method and secret, its user and
realm; the echo's own Msg-ID), and every request is accounted for (right, wrong, error,
timeout). This is the registrar's *worker-cache* tier: the worker primed its credentials
at start (``WHISTLE_PRIME_CREDENTIALS``); ``bench/auth_storm.py`` measures the others.
Targets (issue #2, this 2-core machine): ≥ 800 authn/s; p99 ≤ 20 ms at 400/s; throughput
≥ 30 % of the floor's.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402  (sets the bench environment first)
from bench.amqp_load import AmqpLoad  # noqa: E402


def provision(devices: int) -> tuple[str, list[str], dict[str, tuple[str, str]]]:
    """The devices, and each one's expected (Auth-Method, Auth-Password)."""
    from whistle_tasks.ops import provisioning

    realm = "bench.example.com"
    provisioning.create_account("Bench", realm)
    users = [f"{100000 + i}" for i in range(devices)]
    t0 = time.perf_counter()
    rows = [{"username": u, "password": f"pw-{u}"} if i % 2 else
            {"username": u, "a1_hash": provisioning.a1_hash(u, realm, f"pw-{u}")}
            for i, u in enumerate(users)]
    results = provisioning.create_devices(realm, rows)
    created = sum(1 for _, outcome, _ in results if outcome == "created")
    print(f"provisioned {created} devices in {time.perf_counter() - t0:.1f}s")
    expected = {row["username"]: ("password", row["password"]) if "password" in row else
                ("a1-hash", row["a1_hash"]) for row in rows}
    return realm, users, expected


def authn_right(expected: dict[str, tuple[str, str]], realm: str):  # noqa: ANN201
    """The exact-answer check of an authn_req: the device's own method and secret, for
    the user and realm asked."""

    def check(request: dict, answer: dict) -> bool:
        user = request["Auth-User"]
        ccv = answer.get("Custom-Channel-Vars") or {}
        return (answer.get("Event-Name") == "authn_resp"
                and answer.get("Msg-ID") == request["Msg-ID"]
                and (answer.get("Auth-Method"), answer.get("Auth-Password")) == expected[user]
                and ccv.get("Username") == user and ccv.get("Realm") == realm)

    return check


def echo_right(request: dict, answer: dict) -> bool:
    return answer.get("Event-Name") == "echo" and answer.get("Msg-ID") == request["Msg-ID"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--rate", type=float, default=400)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool", help="Celery pool (default: the registrar's in settings)")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--no-events", action="store_true",
                        help="workers without task events (Flower sees nothing)")
    args = parser.parse_args()

    common.reset_bench_resources()
    from schemas import contracts
    from whistle_tasks.core.config import settings

    default_pool, default_n = settings.pool_of("registrar")
    args.pool = args.pool or default_pool
    args.concurrency = args.concurrency or default_n

    realm, users, expected = provision(args.devices)
    rng = random.Random(7)

    def authn(i: int) -> tuple[str, dict, str]:
        user = users[rng.randrange(len(users))]
        msg = {"Event-Category": "directory", "Event-Name": "authn_req", "App-Name": "bench",
               "App-Version": "1", "Auth-Realm": realm, "Auth-User": user,
               "From": f"sip:{user}@{realm}", "To": f"sip:{user}@{realm}", "Method": "REGISTER",
               "Call-ID": f"bench-{i}", "Orig-IP": "192.0.2.1", "User-Agent": "bench"}
        return str(contracts.AUTHN.task), msg, contracts.AUTHN.key(msg)

    def echo(i: int) -> tuple[str, dict, str]:
        task, msg, _ = authn(i)
        return task, msg, "bench.echo.x"

    procs = []
    try:
        procs.append(common.Proc("echo", [sys.executable, str(common.ROOT / "bench" /
                                                               "echo_consumer.py"),
                                          settings.amqp_url], ready="echo consumer ready"))
        for n in range(args.workers):
            procs.append(common.worker("registrar", f"bench-registrar-{n}", pool=args.pool,
                                       concurrency=args.concurrency, events=not args.no_events))
        time.sleep(2)  # let the workers prime their caches
        floor = AmqpLoad(settings.amqp_url, echo, check=echo_right)
        whapp = AmqpLoad(settings.amqp_url, authn, check=authn_right(expected, realm))
        # warm-up
        whapp.closed("warm-up", args.inflight, 2)
        floor.closed("warm-up", args.inflight, 1)
        print(" closed loop, registrar vs floor, alternating:")
        closed = common.paired(lambda: whapp.closed("registrar", args.inflight, args.seconds),
                               lambda: floor.closed("floor", args.inflight, args.seconds),
                               args.repeats)
        print(" open loop, registrar vs floor, alternating:")
        opened = common.paired(lambda: whapp.open("registrar", args.rate, args.seconds),
                               lambda: floor.open("floor", args.rate, args.seconds),
                               args.repeats)
        floor.close()
        whapp.close()
    finally:
        for proc in procs:
            proc.stop()

    events = "off" if args.no_events else "on"
    print(f"\nregistrar benchmark: {args.devices} devices, {args.workers} worker(s) "
          f"pool={args.pool} c={args.concurrency}, task events {events}, "
          f"{args.repeats} alternating pairs x {args.seconds:.0f}s")
    print(f" closed loop, {args.inflight} in flight:")
    common.print_paired("registrar.authn_req (Celery)", "bare RabbitMQ floor (echo)", closed)
    print(f" open loop, {args.rate:.0f}/s offered:")
    common.print_paired("registrar.authn_req (Celery)", "bare RabbitMQ floor (echo)", opened,
                        latency=True)
    s_closed, s_open = closed.subject_all, opened.subject_all
    targets = [
        ("throughput >= 800/s", closed.subject_rate >= 800),
        (f"p99 <= 20 ms at {args.rate:.0f}/s", s_open.p99 <= 20),
        ("throughput >= 30% of floor", closed.ratio >= 0.30),
        ("every request answered right", s_closed.bad == 0 and s_open.bad == 0
         and s_closed.accounted and s_open.accounted),
    ]
    for label, ok in targets:
        print(f"  [{'met' if ok else 'MISSED'}] {label}")


if __name__ == "__main__":
    main()
