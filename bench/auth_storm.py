"""Auth storm: real sip_auth bodies POSTed into the bridge, end to end through the registrar.

    .venv/bin/python bench/auth_storm.py [--seconds 10] [--repeats 3]

Modes (issue #3):

* warm — 500 users re-registering (the common case): the bridge's credential cache answers;
* cold — each request a different one of 10,000 users and a bridge whose cache keeps
  nothing (``WHISTLE_AUTH_CACHE_TTL=0``), so every request crosses AMQP to the registrar,
  as after a restart.

Each under a closed loop with 64 requests in flight (throughput; made by ``wrk``, a new
connection per request as libcurl does) and an open loop at 400/s (p50/p99 from the
scheduled send time; a gevent client), beside the floor: the same loads answered by a
bridge from a fixed in-process answer (``bench/floor_bridge.py``: no AMQP, no cache,
the same parse and render). Every answer is checked to be the user's directory entry.
Targets (this 2-core machine): warm ≥ 3,000/s, p99 ≤ 10 ms at 400/s; cold ≥ 800/s,
p99 ≤ 25 ms at 400/s.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gevent import monkey  # noqa: E402

monkey.patch_all()

from bench import common, wrk  # noqa: E402
from bench.http_load import HttpLoad, request_bytes  # noqa: E402

FIXTURE = (common.CAPTURES /
           "a_register_unregister" / "xmlcurl_01_directory_sip_auth_REGISTER_1000.body")
REALM = "storm.example.com"
MARKER = '<param name="password"'   # every answer must be the user's directory entry


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--warm-users", type=int, default=500)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--rate", type=float, default=400)
    args = parser.parse_args()
    if not FIXTURE.exists():
        raise SystemExit(f"needs the real sip_auth capture at {FIXTURE}")

    from tests.xmlcurl import rewrite
    from whistle_tasks.core.config import settings
    from whistle_tasks.ops import provisioning

    common.reset_bench_resources()
    provisioning.create_account("Storm", REALM)
    users = [str(200000 + i) for i in range(args.devices)]
    t0 = time.perf_counter()
    provisioning.create_devices(REALM, [{"username": u, "password": f"pw-{u}"} for u in users])
    print(f"provisioned {len(users)} devices in {time.perf_counter() - t0:.1f}s")
    template = FIXTURE.read_bytes()
    bodies = {u: rewrite(template, {
        "sip_auth_username": u, "sip_auth_realm": REALM, "user": u, "domain": REALM,
        "sip_to_user": u, "sip_to_host": REALM, "sip_from_user": u, "sip_from_host": REALM,
        "key_value": REALM}) for u in users}

    pool, n = settings.pool_of("registrar")
    procs = [common.worker("registrar", "storm-registrar", pool=pool, concurrency=n)]
    results = {}
    try:
        for mode in ("warm", "cold"):
            cache = {"WHISTLE_AUTH_CACHE_TTL": "3600" if mode == "warm" else "0"}
            real, real_port = start_bridge(f"bridge-{mode}", **cache)
            floor, floor_port = start_bridge(f"bridge-floor-{mode}", floor=True)
            procs += [real, floor]
            chosen = users[:args.warm_users] if mode == "warm" else users
            rng = random.Random(11)

            def make(i: int, port: int, chosen: list[str] = chosen, rng: random.Random = rng,
                     mode: str = mode) -> bytes:
                user = chosen[rng.randrange(len(chosen))] if mode == "warm" else \
                    chosen[i % len(chosen)]
                return request_bytes("127.0.0.1", port, "/fs/directory", bodies[user])

            def check(answer: bytes) -> bool:
                return answer.startswith(b"HTTP/1.1 200") and MARKER.encode() in answer

            real_load = HttpLoad("127.0.0.1", real_port, lambda i, p=real_port: make(i, p), check)
            floor_load = HttpLoad("127.0.0.1", floor_port, lambda i, p=floor_port: make(i, p),
                                  check)
            mode_bodies = [bodies[u] for u in chosen]
            real_url = f"http://127.0.0.1:{real_port}/fs/directory"
            floor_url = f"http://127.0.0.1:{floor_port}/fs/directory"
            # warm-up: every warm user once (fills the bridge cache)
            wrk.closed("warm-up", real_url, mode_bodies, connections=args.inflight,
                       seconds=3, marker=MARKER)
            results[mode] = {
                "floor closed": common.run_repeated(
                    lambda u=floor_url, b=mode_bodies: wrk.closed(
                        "floor", u, b, connections=args.inflight, seconds=args.seconds,
                        marker=MARKER), args.repeats),
                "real closed": common.run_repeated(
                    lambda u=real_url, b=mode_bodies, m=mode: wrk.closed(
                        m, u, b, connections=args.inflight, seconds=args.seconds,
                        marker=MARKER), args.repeats),
                "floor open": common.run_repeated(
                    lambda fl=floor_load: fl.open("floor", args.rate, args.seconds),
                    args.repeats),
                "real open": common.run_repeated(
                    lambda rl=real_load, m=mode: rl.open(m, args.rate, args.seconds),
                    args.repeats),
            }
            real.stop()
            floor.stop()
    finally:
        for proc in procs:
            proc.stop()

    targets = {"warm": (3000, 10.0), "cold": (800, 25.0)}
    print(f"\nauth storm: {args.devices} devices, registrar pool={pool} c={n}, "
          f"median of {args.repeats} x {args.seconds:.0f}s")
    for mode, r in results.items():
        rate_target, p99_target = targets[mode]
        print(f" {mode}: closed loop, {args.inflight} in flight")
        print(common.fmt_row("floor (fixed answer, no AMQP)", r["floor closed"]))
        print(common.fmt_row(f"bridge + registrar ({mode})", r["real closed"]))
        print(f"  {mode} / floor = {r['real closed'].rate / r['floor closed'].rate:.0%}")
        print(f" {mode}: open loop, {args.rate:.0f}/s offered")
        print(common.fmt_row("floor (fixed answer, no AMQP)", r["floor open"]))
        print(common.fmt_row(f"bridge + registrar ({mode})", r["real open"]))
        for label, ok in ((f"{mode} >= {rate_target}/s", r["real closed"].rate >= rate_target),
                          (f"{mode} p99 <= {p99_target:.0f} ms at {args.rate:.0f}/s",
                           r["real open"].p99 <= p99_target),
                          (f"{mode}: every answer the user's entry",
                           r["real closed"].errors == 0 and r["real open"].errors == 0)):
            print(f"  [{'met' if ok else 'MISSED'}] {label}")


if __name__ == "__main__":
    main()
