"""A registrar worker's start: time to ready and resident memory, with its credential cache
primed (``WHISTLE_PRIME_CREDENTIALS``: its default bound, or every device) and unprimed.

    .venv/bin/python bench/registrar_start.py [--devices 100000] [--rounds 2]

``--devices`` device credentials are written to ``sip_auth`` in bulk (a set-up shortcut:
the aggregate the registrar reads, without the account database copies), then a registrar
worker is started again and again, alternating: unprimed (``WHISTLE_PRIME_CREDENTIALS=0``:
every first look-up reads CouchDB, tier 3 of ``bench/auth_storm.py``), primed with the
default bound, and primed with everything (the limit above the device count). Start time is
from the process's spawn to its "registrar ready" log line (its caches loaded; the worker
consumes nothing before); memory is its VmRSS then. The Redis db is emptied before each
start. Medians of the rounds. With more devices than the bound, start time and memory stay
those of the bound (what the bound is for); priming everything grows with the devices.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402  (sets the bench environment first)

REALM = "start.example.com"


def provision(devices: int) -> None:
    from whistle_tasks.core.couch import get_couch
    from whistle_tasks.ops import provisioning

    account = provisioning.create_account("Start", REALM)
    couch = get_couch()
    t0 = time.perf_counter()
    batch = 5000
    for start in range(0, devices, batch):
        couch.bulk_docs("sip_auth", [{
            "_id": uuid.uuid4().hex, "pvt_type": "device", "name": f"{u}", "enabled": True,
            "sip": {"username": f"{u}", "password": f"pw-{u}"}, "realm": REALM,
            "pvt_account_id": account["_id"], "pvt_account_db": account["pvt_account_db"]}
            for u in range(1_000_000 + start, 1_000_000 + min(devices, start + batch))])
    print(f"wrote {devices} credentials to sip_auth in {time.perf_counter() - t0:.0f}s",
          flush=True)


def start_once(label: str, prime: int) -> tuple[float, float, str]:
    """Seconds to ready, MiB resident then, and the worker's ready line."""
    import redis

    redis.Redis.from_url(common.BENCH_ENV["WHISTLE_REDIS_URL"]).flushdb()
    from whistle_tasks.core.config import settings

    pool, n = settings.pool_of("registrar")
    t0 = time.monotonic()
    proc = common.Proc(f"start-{label}", [
        str(common.VENV_BIN / "celery"), "-A", "whistle_tasks", "worker", "-Q", "registrar",
        "-P", pool, "-c", str(n), "-n", f"start-{label}-{uuid.uuid4().hex[:6]}@%h",
        "-l", "WARNING", "--without-mingle", "--without-gossip"],
        env={"WHISTLE_PRIME_CREDENTIALS": str(prime), "WHISTLE_LOG_LEVEL": "INFO"})
    try:
        deadline = t0 + 1800
        while True:
            text = proc.log_path.read_text(errors="replace")
            line = next((x for x in text.splitlines() if "registrar ready" in x
                         or "could not prime" in x), None)
            if line:
                break
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not get ready:\n{text[-2000:]}")
            time.sleep(0.05)
        took = time.monotonic() - t0
        rss = 0
        for row in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                rss = int(row.split()[1]) / 1024
        # a Celery worker forks nothing with the threads pool: the main process is all of it
        return took, rss, line.split("registrar ready: ", 1)[-1]
    finally:
        proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-all", action="store_true",
                        help="skip priming every device (minutes with a million)")
    args = parser.parse_args()
    from whistle_tasks.core.config import settings

    common.reset_bench_resources()
    provision(args.devices)
    bound = settings.prime_credentials
    modes = [("unprimed", 0), (f"primed-{bound}", bound),
             ("primed-all", max(bound, args.devices + 1))]
    if bound >= args.devices:
        modes.pop(1)  # the default bound primes everything here
    elif args.no_all:
        modes.pop()
    results: dict[str, list[tuple[float, float, str]]] = {m: [] for m, _ in modes}
    for r in range(args.rounds):
        for label, prime in modes:
            results[label].append(start_once(label, prime))
            took, rss, line = results[label][-1]
            print(f"  round {r + 1} {label:<16} ready in {took:6.1f}s, {rss:7.1f} MiB "
                  f"({line})", flush=True)
    print(f"\nregistrar start with {args.devices} devices, median of {args.rounds} rounds")
    base_t = statistics.median(t for t, _, _ in results["unprimed"])
    base_m = statistics.median(m for _, m, _ in results["unprimed"])
    for label, _ in modes:
        t = statistics.median(x for x, _, _ in results[label])
        m = statistics.median(x for _, x, _ in results[label])
        print(f"  {label:<16} ready in {t:6.1f}s ({t - base_t:+.1f}s), {m:7.1f} MiB "
              f"({m - base_m:+.1f} MiB over unprimed)")


if __name__ == "__main__":
    main()
