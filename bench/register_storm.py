"""Register storm: real FreeSWITCH REGISTER/s through Whistle against the same FreeSWITCH
with a static XML directory of the same users.

    .venv/bin/python bench/register_storm.py [--users 1000] [--per-round 3000] [--rounds 3]

Two private FreeSWITCH instances (tests/fskit.py, the operator's deploy/freeswitch/
snippets, ports of their own), both up for the whole run:

* whistle — mod_xml_curl asks a switch bridge (``/fs/directory``), the registrar whapp
  answers from CouchDB/Redis (the bridge keeps credentials for WHISTLE_AUTH_CACHE_TTL), and
  every ``sofia::register`` event is stored by the registrar;
* static — the same snippets, no xml_curl binding, the same users as static XML (the
  ceiling: FreeSWITCH answering from its own memory).

The same SIPp load against each, alternately, round after round: ``--per-round``
registrations of ``--users`` users (tests/sipp/register_load.xml: REGISTER, 401,
REGISTER with Authorization, 200), at ``--rate`` per second with at most ``--limit`` in
flight — more than FreeSWITCH can take, so each run measures its saturated throughput. A
registration counts only when its 200 arrived; SIPp's counts of successful and failed
calls (timeouts, retransmissions exhausted, unexpected messages) must add up to what was
sent. Before each run the registrar's queue is drained (the registrations of the run
before stored), so a run never competes with its predecessor's leftovers. One warm-up pass
per instance first (every user once: the bridge's credential cache
filled, as in steady state when phones re-register). Prints REGISTER/s of both per round,
the medians and their ratio, and the directory lookups per REGISTER that Whistle served.
Target: whistle ≥ 95 % of static.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402  (sets the bench environment first)
from tests import fskit  # noqa: E402

REALM = "storm.example.com"


@dataclass
class Round:
    name: str
    sent: int
    ok: int
    failed: int
    seconds: float
    lookups: float | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def provision(users: int) -> dict[str, str]:
    from whistle_tasks.ops import provisioning

    provisioning.create_account("Storm", REALM)
    passwords = {str(10000 + i): f"pw-{10000 + i}" for i in range(users)}
    outcome = provisioning.create_devices(REALM, [
        {"username": u, "password": p} for u, p in passwords.items()])
    created = sum(1 for _, what, _ in outcome if what == "created")
    if created != users:
        raise SystemExit(f"provisioned {created} of {users} devices: {outcome[:3]}")
    return passwords


def injection_file(passwords: dict[str, str], path: Path) -> Path:
    path.write_text("SEQUENTIAL\n" + "".join(f"{u};{p}\n" for u, p in passwords.items()))
    return path


def run_load(fs: fskit.FreeSwitch, inf: Path, calls: int, rate: int, limit: int,
             workdir: Path, label: str) -> tuple[int, int, int, float]:
    """One SIPp run; (sent, successful, failed, seconds)."""
    stat = workdir / f"{label}.stat.csv"
    stat.unlink(missing_ok=True)
    argv = ["sipp", f"127.0.0.1:{fs.sip_port}", "-sf", str(fskit.SCENARIOS / "register_load.xml"),
            "-inf", str(inf), "-set", "realm", REALM, "-i", "127.0.0.1",
            "-p", str(fskit.free_port()), "-m", str(calls), "-r", str(rate), "-rp", "1000",
            "-l", str(limit), "-recv_timeout", "10000", "-nostdin", "-trace_stat",
            "-stf", str(stat), "-fd", "60", "-trace_err", "-error_file",
            str(workdir / f"{label}.errors.log")]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    rows = list(csv.reader(stat.read_text().splitlines(), delimiter=";"))
    if len(rows) < 2:
        raise SystemExit(f"sipp wrote no statistics (exit {proc.returncode}): "
                         f"{proc.stderr[-2000:]}")
    head, last = rows[0], rows[-1]
    value = dict(zip(head, last, strict=False))
    ok = int(value["SuccessfulCall(C)"])
    failed = int(value["FailedCall(C)"])
    created = int(value["TotalCallCreated"])
    if ok + failed != created or created != calls:
        raise SystemExit(f"{label}: counts do not add up: {created} created of {calls}, "
                         f"{ok} successful + {failed} failed")
    # wall clock around the whole SIPp run (SIPp's own ElapsedTime has whole seconds)
    return calls, ok, failed, seconds


def wait_registrar_idle(timeout: float = 300) -> float:
    """Until the registrar has stored every registration of the previous run (its queue
    empty), so no run pays for the one before; returns the seconds waited."""
    from kombu import Connection

    started = time.monotonic()
    with Connection(common.BENCH_ENV["WHISTLE_AMQP_URL"]) as conn:
        channel = conn.channel()
        quiet = 0
        while time.monotonic() - started < timeout:
            _, messages, _ = channel.queue_declare("registrar", passive=True)
            quiet = quiet + 1 if messages == 0 else 0
            if quiet >= 3:
                return time.monotonic() - started
            time.sleep(0.2)
    raise SystemExit(f"the registrar queue did not drain in {timeout}s")


def directory_requests(port: int) -> float:
    import requests

    total = 0.0
    for line in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith("whistle_bridge_requests_total{") and 'section="directory"' in line:
            total += float(line.rpartition(" ")[2])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-round", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="offered REGISTER/s")
    parser.add_argument("--limit", type=int, default=200, help="registrations in flight")
    args = parser.parse_args()
    reason = fskit.missing()
    if reason:
        raise SystemExit(reason)
    common.reset_bench_resources()
    passwords = provision(args.users)
    workdir = common.OUTPUT / "register_storm"
    workdir.mkdir(parents=True, exist_ok=True)
    inf = injection_file(passwords, workdir / "users.csv")

    registrar = common.worker("registrar", "storm-registrar", pool="threads", concurrency=8)
    whistle = fskit.Platform("storm-whistle", workers=False, log_level="warning")
    static = fskit.FreeSwitch("http://127.0.0.1:9", name="storm-static",
                              static_users={REALM: passwords}, log_level="warning")
    try:
        whistle.start()
        static.start()
        targets = {"whistle": whistle.fs, "static": static}
        for name, fs in targets.items():          # warm-up: every user once
            _, ok, failed, _ = run_load(fs, inf, args.users, args.rate, args.limit, workdir,
                                        f"warmup-{name}")
            print(f"warm-up {name}: {ok} registered, {failed} failed")
        results: dict[str, list[Round]] = {"whistle": [], "static": []}
        for n in range(1, args.rounds + 1):
            for name, fs in targets.items():
                wait_registrar_idle()
                before = directory_requests(whistle.http_port)
                sent, ok, failed, seconds = run_load(fs, inf, args.per_round, args.rate,
                                                     args.limit, workdir, f"round{n}-{name}")
                r = Round(name, sent, ok, failed, seconds)
                if name == "whistle":
                    r.lookups = (directory_requests(whistle.http_port) - before) / max(ok, 1)
                results[name].append(r)
                extra = f", {r.lookups:.2f} directory lookups per REGISTER" if r.lookups \
                    is not None else ""
                print(f"round {n} {name:<8} {r.rate:7.1f} REGISTER/s  ({ok} x 200, {failed} "
                      f"failed, of {sent}, {seconds:.1f} s{extra})", flush=True)
    finally:
        static.cleanup()
        whistle.stop()
        registrar.stop()
    w = statistics.median(r.rate for r in results["whistle"])
    s = statistics.median(r.rate for r in results["static"])
    failures = sum(r.failed for rs in results.values() for r in rs)
    print()
    print(f"register storm, {args.users} users, {args.per_round} REGISTERs per round, "
          f"{args.rounds} rounds, offered {args.rate}/s, {args.limit} in flight")
    print(f"  through Whistle (xml_curl)        {w:7.1f} REGISTER/s (median)")
    print(f"  static XML directory (baseline)   {s:7.1f} REGISTER/s (median)")
    print(f"  ratio                             {100 * w / s:6.1f} %   (target >= 95 %)")
    print(f"  failed registrations              {failures}")
    lookups = statistics.median(r.lookups or 0 for r in results["whistle"])
    print(f"  directory lookups per REGISTER    {lookups:.2f}")
    if failures:
        raise SystemExit("some REGISTERs were not answered 200")


if __name__ == "__main__":
    main()
