"""Shared by the benchmarks: isolated resources, processes, load shapes and statistics.

Benchmarks use their own RabbitMQ vhost (``whistle_bench``, created here), CouchDB prefix
(``bench_``) and Redis db 13, so they touch neither a running platform nor the tests.
Each one measures the system under test and a baseline in the same run and prints both
with their ratio.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_ENV = {
    "WHISTLE_AMQP_URL": os.environ.get("WHISTLE_BENCH_AMQP_URL",
                                       "amqp://guest:guest@127.0.0.1:5672/whistle_bench"),
    "WHISTLE_REDIS_URL": os.environ.get("WHISTLE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
    "WHISTLE_COUCH_URL": os.environ.get("WHISTLE_BENCH_COUCH_URL", "http://127.0.0.1:5984"),
    "WHISTLE_COUCH_PREFIX": "bench_",
    "WHISTLE_LOG_LEVEL": "WARNING",
}
os.environ.update(BENCH_ENV)

OUTPUT = ROOT / "test-output" / "bench"
# the real FreeSWITCH captures the benchmarks replay (recorded bytes, kept with the tests)
CAPTURES = ROOT / "tests" / "fixtures" / "freeswitch" / "modern"
VENV_BIN = Path(sys.executable).parent


@dataclass
class Result:
    """What one load run measured."""

    name: str
    sent: int = 0
    answered: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    #: percentiles measured elsewhere (wrk reports them, not the samples)
    reported: dict[float, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if p in self.reported:
            return self.reported[p]
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    @property
    def p50(self) -> float:
        return self.pct(50)

    @property
    def p99(self) -> float:
        return self.pct(99)


def median_result(results: Sequence[Result]) -> Result:
    """The run whose throughput is the median (keeps its latencies)."""
    ordered = sorted(results, key=lambda r: r.rate)
    return ordered[len(ordered) // 2]


def ensure_vhost() -> None:
    if "WHISTLE_BENCH_AMQP_URL" in os.environ:
        return
    subprocess.run([str(ROOT / "scripts" / "services.sh"), "vhost", "whistle_bench"], check=True,
                   stdout=subprocess.DEVNULL)


def reset_bench_resources() -> None:
    import redis
    import requests

    ensure_vhost()
    from kombu import Connection

    from whistle_tasks.core.amqp import WHAPP_BINDINGS, whapp_queue

    with Connection(BENCH_ENV["WHISTLE_AMQP_URL"]) as conn:  # no backlog of an earlier run
        channel = conn.channel()
        for whapp in WHAPP_BINDINGS:
            queue = whapp_queue(whapp)(channel)
            queue.declare()
            queue.purge()
    base = BENCH_ENV["WHISTLE_COUCH_URL"]
    for name in requests.get(f"{base}/_all_dbs", timeout=10).json():
        if name.startswith("bench_"):
            requests.delete(f"{base}/{requests.utils.quote(name, safe='')}", timeout=60)
    redis.Redis.from_url(BENCH_ENV["WHISTLE_REDIS_URL"]).flushdb()


class Proc:
    """A process of the platform for the benchmark, its output in test-output/bench/."""

    def __init__(self, name: str, argv: list[str], ready: str | None = None,
                 env: dict[str, str] | None = None, timeout: float = 60) -> None:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        self.log_path = OUTPUT / f"{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})},
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if ready:
            deadline = time.monotonic() + timeout
            while ready not in self.log_path.read_text(errors="replace"):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start:\n"
                                     + self.log_path.read_text(errors="replace")[-3000:])
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def worker(queue: str, name: str, pool: str = "gevent", concurrency: int = 200,
           events: bool = True) -> Proc:
    argv = [str(VENV_BIN / "celery"), "-A", "whistle_tasks", "worker", "-Q", queue, "-P", pool,
            "-c", str(concurrency), "-n", f"{name}@%h", "-l", "WARNING",
            "--without-mingle", "--without-gossip"]
    if not events:
        argv.append("--without-heartbeat")
    env = {} if events else {"WHISTLE_TASK_EVENTS": "false"}
    proc = Proc(name, argv, env=env)
    # -l WARNING hides "ready."; wait for the worker's consumer on its queue instead
    wait_consumers(queue, 1)
    return proc


def wait_consumers(queue: str, n: int, timeout: float = 60) -> None:
    from kombu import Connection

    deadline = time.monotonic() + timeout
    with Connection(BENCH_ENV["WHISTLE_AMQP_URL"]) as conn:
        while True:
            try:
                _, _, consumers = conn.channel().queue_declare(queue, passive=True)
            except Exception:  # noqa: BLE001 - not declared yet
                consumers = 0
            if consumers >= n:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"no consumer on {queue} after {timeout}s")
            time.sleep(0.2)


def fmt_row(label: str, r: Result) -> str:
    return (f"  {label:<34} {r.rate:9.0f}/s   p50 {r.p50:7.2f} ms   p99 {r.p99:7.2f} ms"
            f"   ({r.answered}/{r.sent} answered, {r.errors} errors)")


def run_repeated(fn: Callable[[], Result], repeats: int) -> Result:
    return median_result([fn() for _ in range(repeats)])
