"""300 concurrent calls sitting in IVR menus and greetings, on one callflow worker.

    .venv/bin/python bench/callflow_calls.py [--calls 300] [--seconds 30] [--repeats 3]

The whole chain runs, FreeSWITCH stood in for at its event socket (``tests/esl_standin.py``,
in this process): a dialplan fetch per call → the bridge → the router parks it → route_win →
ONE callflow worker (Celery, gevent pool) runs its callflow. Half the calls dial a menu
(``menu`` → ``1``: a greeting → back to the menu), half a "voicemail" greeting number
(``play`` of a long greeting → a menu). The stand-in answers like callers and sound files
would: a ``play_and_get_digits`` completes after 2-4 s (a caller thinking, then ``1``), a
``playback`` after 1-3 s (a greeting playing), anything else at once. So at any time the
calls sit in prompts and the worker keeps reacting to them.

Measured, at the stand-in (one clock):

* command round trip: from a ``CHANNEL_EXECUTE_COMPLETE`` the stand-in sends to the next
  ``sendmsg`` of that call: the event through the bridge and RabbitMQ to the worker, the
  engine's next node, the command back through RabbitMQ and the bridge. p50/p99 over the
  measuring window, with every call up;
* the floor, same run: the same round trip of ONE call alone (nothing else on the switch);
* memory per call: the callflow worker's resident memory with every call up, minus its
  memory before the calls (after one call warmed it up), divided by the calls.

Targets (issue #11): round trip p99 ≤ 20 ms; ≤ 200 KiB per call.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402  (sets the bench environment first)

REALM = "pbx.example.com"
MENU, GREETING = "5000", "5100"


class TimedStandIn:
    """The ESL stand-in, answering like callers and greetings, timing every round trip."""

    def __init__(self, seed: int = 3) -> None:
        from tests.esl_standin import EslStandIn

        self.standin = EslStandIn(password="ClueCon", hostname="bench-fs")
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.completed_at: dict[str, float] = {}
        self.samples: list[float] = []
        self.measuring = False
        self.commands: dict[str, int] = defaultdict(int)
        self.quick = False
        original = self.standin._complete

        def complete(held: object) -> None:
            with self.lock:
                self.completed_at[held.uuid] = time.monotonic()  # type: ignore[attr-defined]
            original(held)

        self.standin._complete = complete  # type: ignore[method-assign]
        self.standin.execute_hook = self.hook
        self.standin.auto_complete = True

    def hook(self, call: str, app: str, arg: str | None) -> dict | None:
        now = time.monotonic()
        with self.lock:
            done = self.completed_at.pop(call, None)
            self.commands[call] += 1
            if done is not None and self.measuring:
                self.samples.append((now - done) * 1000)
        if app == "play_and_get_digits":
            delay = 0.02 if self.quick else self.rng.uniform(2.0, 4.0)
            return {"response": "1", "variables": {"variable_collected_digits": "1"},
                    "delay": delay}
        if app == "playback":
            return {"delay": 0.02 if self.quick else self.rng.uniform(1.0, 3.0)}
        return {}

    def start(self) -> TimedStandIn:
        self.standin.start()
        return self

    def window(self, seconds: float) -> common.Result:
        """The round trips of the next ``seconds``."""
        with self.lock:
            self.samples = []
            self.measuring = True
        time.sleep(seconds)
        with self.lock:
            self.measuring = False
            samples = list(self.samples)
        result = common.Result("round trip", sent=len(samples), right=len(samples),
                               seconds=seconds, latencies_ms=samples)
        return result


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def provision() -> None:
    from whistle_tasks.ops import callflows as cf_ops
    from whistle_tasks.ops import provisioning

    provisioning.create_account("PBX", REALM)
    menu = {"module": "menu", "data": {"greeting": "ivr/main-menu.wav", "retries": 3,
                                       "timeout": 5},
            "children": {"1": {"module": "play", "data": {"media": "ivr/sales-closed.wav"},
                               "children": {"_": {"module": "transfer",
                                                  "data": {"number": MENU}}}}}}
    cf_ops.save(REALM, {"numbers": [MENU], "flow": menu})
    cf_ops.save(REALM, {"numbers": [GREETING], "flow": {
        "module": "play", "data": {"media": "voicemail/greeting.wav"},
        "children": {"_": {"module": "transfer", "data": {"number": MENU}}}}})


def place(port: int, number: str) -> str:
    from tests import xmlcurl
    from tests.callflowkit import dialplan_form

    call_id = str(uuid.uuid4())
    status, body = xmlcurl.post(port, "/fs/dialplan", dialplan_form(
        REALM, number, call_id, hostname="bench-fs"))
    if status != 200 or b'application="park"' not in body:
        raise SystemExit(f"call {number} not parked: {status} {body[:300]!r}")
    return call_id


def wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ramp", type=float, default=25, help="new calls per second")
    args = parser.parse_args()

    from bench.auth_storm import start_bridge
    from whistle_tasks.core.config import settings

    common.reset_bench_resources()
    provision()
    fs = TimedStandIn().start()
    procs: list[common.Proc] = []
    calls: list[str] = []
    try:
        pool, _ = settings.pool_of("router")
        procs.append(common.worker("router", "calls-router", pool=pool, concurrency=8))
        callflow = common.worker("callflow", "calls-callflow", pool="gevent",
                                 concurrency=max(500, args.calls + 50))
        procs.append(callflow)
        bridge, port = start_bridge("calls-bridge",
                                    WHISTLE_FS_NODES=f"127.0.0.1:{fs.standin.port}:ClueCon")
        procs.append(bridge)
        fs.standin.wait_for_connections(1, timeout=20)
        worker_pid = callflow.proc.pid

        # the floor: one call alone, prompts completing at once (a new call per window: a
        # call runs 250 nodes at most, and this one runs a node every few milliseconds)
        fs.quick = True
        floors = []
        for _ in range(args.repeats):
            alone = place(port, MENU)
            wait(lambda alone=alone: fs.commands[alone] >= 3, 30, "the call to run")
            floors.append(fs.window(3))
            fs.standin.hangup_call(alone)
            time.sleep(1)
        fs.quick = False
        time.sleep(1)
        idle = rss_kib(worker_pid)

        # the load: every call up, sitting in prompts
        t0 = time.monotonic()
        for index in range(args.calls):
            calls.append(place(port, MENU if index % 2 == 0 else GREETING))
            lag = t0 + (index + 1) / args.ramp - time.monotonic()
            if lag > 0:
                time.sleep(lag)
        wait(lambda: all(fs.commands[c] >= 2 for c in calls), 60, "every call to run")
        time.sleep(5)
        loaded = []
        rss = []
        for _ in range(args.repeats):
            before = {c: fs.commands[c] for c in calls}
            loaded.append(fs.window(args.seconds))
            rss.append(rss_kib(worker_pid))
        # the calls that still moved through their callflow in the last window
        up = sum(1 for c in calls if fs.commands[c] > before[c])
    finally:
        for call in calls:
            fs.standin.hangup_call(call)
        time.sleep(3)
        for proc in procs:
            proc.stop()
        fs.standin.stop()

    floor = common.median_result(floors)
    load = sorted(loaded, key=lambda r: r.p99)[len(loaded) // 2]
    per_call = (sorted(rss)[len(rss) // 2] - idle) / args.calls
    print(f"\ncallflow calls: {args.calls} calls up at once on one callflow worker "
          f"(gevent), stand-in switch; median of {args.repeats} windows of {args.seconds:.0f}s")
    print(f"  {'floor: one call alone':<40} p50 {floor.p50:6.2f} ms   p99 {floor.p99:6.2f} ms"
          f"   ({len(floor.latencies_ms)} round trips)")
    print(f"  {f'{up} calls in menus and greetings':<40} p50 {load.p50:6.2f} ms   "
          f"p99 {load.p99:6.2f} ms   ({len(load.latencies_ms)} round trips, "
          f"{len(load.latencies_ms) / args.seconds:.0f}/s)")
    print(f"  p99 loaded / floor = {load.p99 / floor.p99:.1f}x")
    print(f"  worker memory: {idle / 1024:.1f} MiB idle, {sorted(rss)[len(rss) // 2] / 1024:.1f} "
          f"MiB with the calls: {per_call:.0f} KiB per call")
    for label, ok in (("round trip p99 <= 20 ms", load.p99 <= 20),
                      ("memory per call <= 200 KiB", per_call <= 200)):
        print(f"  [{'met' if ok else 'MISSED'}] {label}")


if __name__ == "__main__":
    main()
