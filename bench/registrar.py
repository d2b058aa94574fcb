"""Registrar benchmark: authn_req through Celery workers against 10,000 provisioned devices.

    .venv/bin/python bench/registrar.py [--devices 10000] [--seconds 10] [--repeats 3]

Measures, in the same run and under the same two loads:

* the registrar: ``registrar.authn_req`` tasks on ``callmgr`` → Celery worker(s) → answer on
  ``targeted`` (each request a random one of the devices);
* the floor: the same messages answered by a trivial kombu echo consumer
  (``bench/echo_consumer.py``): bare RabbitMQ request/reply.

Loads: closed loop with 64 requests in flight (throughput), open loop at 400/s (p50/p99
from the scheduled send time). Each figure is the median of ``--repeats`` runs.
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


def provision(devices: int) -> tuple[str, list[str]]:
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
    return realm, users


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

    realm, users = provision(args.devices)
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
        floor = AmqpLoad(settings.amqp_url, echo)
        whapp = AmqpLoad(settings.amqp_url, authn)
        whapp.check = lambda answer: answer.get("Event-Name") == "authn_resp"
        # warm-up
        whapp.closed("warm-up", args.inflight, 2)
        floor.closed("warm-up", args.inflight, 1)
        results = {
            "floor closed": common.run_repeated(
                lambda: floor.closed("floor", args.inflight, args.seconds), args.repeats),
            "registrar closed": common.run_repeated(
                lambda: whapp.closed("registrar", args.inflight, args.seconds), args.repeats),
            "floor open": common.run_repeated(
                lambda: floor.open("floor", args.rate, args.seconds), args.repeats),
            "registrar open": common.run_repeated(
                lambda: whapp.open("registrar", args.rate, args.seconds), args.repeats),
        }
        floor.close()
        whapp.close()
    finally:
        for proc in procs:
            proc.stop()

    events = "off" if args.no_events else "on"
    print(f"\nregistrar benchmark: {args.devices} devices, {args.workers} worker(s) "
          f"pool={args.pool} c={args.concurrency}, task events {events}, "
          f"median of {args.repeats} x {args.seconds:.0f}s")
    print(f" closed loop, {args.inflight} in flight:")
    print(common.fmt_row("bare RabbitMQ floor (echo)", results["floor closed"]))
    print(common.fmt_row("registrar.authn_req (Celery)", results["registrar closed"]))
    ratio = results["registrar closed"].rate / results["floor closed"].rate
    print(f"  registrar / floor = {ratio:.0%}")
    print(f" open loop, {args.rate:.0f}/s offered:")
    print(common.fmt_row("bare RabbitMQ floor (echo)", results["floor open"]))
    print(common.fmt_row("registrar.authn_req (Celery)", results["registrar open"]))
    targets = [
        ("throughput >= 800/s", results["registrar closed"].rate >= 800),
        (f"p99 <= 20 ms at {args.rate:.0f}/s", results["registrar open"].p99 <= 20),
        ("throughput >= 30% of floor", ratio >= 0.30),
        ("every answer an authn_resp", results["registrar closed"].errors == 0
         and results["registrar open"].errors == 0),
    ]
    for label, ok in targets:
        print(f"  [{'met' if ok else 'MISSED'}] {label}")


if __name__ == "__main__":
    main()
