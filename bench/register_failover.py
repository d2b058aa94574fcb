"""Register storm with the first of two bridges dead: what mod_xml_curl's second binding
costs a real FreeSWITCH.

    .venv/bin/python bench/register_failover.py [--users 300] [--per-round 1000] [--rounds 2]

One private FreeSWITCH (tests/fskit.py) whose xml_curl lists two bridges (the shipped
snippet's second pair of bindings uncommented), both bridges holding a lease on the node
(``WHISTLE_BRIDGE_LEASE_MS=2000``), a registrar worker. The same SIPp REGISTER load as
bench/register_storm.py (saturated: more offered than FreeSWITCH takes), round after
round: both bridges up, then the first one SIGKILLed (its port refuses: FreeSWITCH's
lookup fails at once and asks the second binding). Prints REGISTER/s and failures of each
phase and the directory lookups the second bridge served. A *hung* first bridge (accepting
TCP, never answering) is not measured here: each lookup would wait the binding's timeout
(3 s) before asking the second, as deploy/README.md says.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402  (sets the bench environment first)
from bench.register_storm import (  # noqa: E402
    directory_requests,
    injection_file,
    provision,
    run_load,
    wait_registrar_idle,
)
from tests import fskit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--per-round", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=int, default=1000, help="offered REGISTER/s")
    parser.add_argument("--limit", type=int, default=200, help="registrations in flight")
    args = parser.parse_args()
    reason = fskit.missing()
    if reason:
        raise SystemExit(reason)
    common.reset_bench_resources()
    passwords = provision(args.users)
    workdir = common.OUTPUT / "register_failover"
    workdir.mkdir(parents=True, exist_ok=True)
    inf = injection_file(passwords, workdir / "users.csv")
    registrar = common.worker("registrar", "failover-registrar", pool="threads",
                              concurrency=8)
    platform = fskit.Platform("failover", workers=False, log_level="warning", bridges=2)
    phases: dict[str, list[tuple[float, int, float]]] = {"both up": [], "first dead": []}
    try:
        platform.start()
        _, ok, failed, _ = run_load(platform.fs, inf, args.users, args.rate, args.limit,
                                    workdir, "warmup")
        print(f"warm-up: {ok} registered, {failed} failed")
        second = platform.http_ports[1]
        for phase in phases:
            if phase == "first dead":
                platform.bridges[0].kill(signal.SIGKILL)
                fskit.wait_until(lambda: "connected active" in fskit.bridge_health(second),
                                 30, what="the second bridge active")
                time.sleep(1.0)
            for n in range(1, args.rounds + 1):
                wait_registrar_idle()
                before = directory_requests(second)
                sent, ok, failed, seconds = run_load(platform.fs, inf, args.per_round,
                                                     args.rate, args.limit, workdir,
                                                     f"{phase.replace(' ', '-')}-{n}")
                served = (directory_requests(second) - before) / max(ok, 1)
                phases[phase].append((ok / seconds, failed, served))
                print(f"{phase:<10} round {n}: {ok / seconds:7.1f} REGISTER/s ({ok} x 200, "
                      f"{failed} failed, of {sent}; {served:.2f} lookups per REGISTER "
                      f"served by the second bridge)", flush=True)
    finally:
        platform.stop()
        registrar.stop()
    print()
    print(f"register storm with two bridges, {args.users} users, {args.per_round} per round, "
          f"offered {args.rate}/s, {args.limit} in flight")
    for phase, rounds in phases.items():
        print(f"  {phase:<10} {statistics.median(r for r, _, _ in rounds):7.1f} REGISTER/s "
              f"(median), {sum(f for _, f, _ in rounds)} failed")


if __name__ == "__main__":
    main()
