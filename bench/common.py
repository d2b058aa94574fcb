"""Shared by the benchmarks: isolated resources, processes, load shapes and statistics.

Benchmarks use their own RabbitMQ vhost (``whistle_bench``, created here), CouchDB prefix
(``bench_``) and Redis db 13, so they touch neither a running platform nor the tests.
Each one measures the system under test and a baseline in the same run and prints both
with their ratio.
"""

from __future__ import annotations

import os
import statistics
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
    # several people may benchmark on one machine: each may take a prefix of their own
    "WHISTLE_COUCH_PREFIX": os.environ.get("WHISTLE_BENCH_COUCH_PREFIX", "bench_"),
    "WHISTLE_LOG_LEVEL": "WARNING",
}
os.environ.update(BENCH_ENV)

OUTPUT = ROOT / "test-output" / "bench"
# the real FreeSWITCH captures the benchmarks replay (recorded bytes, kept with the tests)
CAPTURES = ROOT / "tests" / "fixtures" / "freeswitch" / "modern"
VENV_BIN = Path(sys.executable).parent


@dataclass
class Result:
    """What one load run measured, every request accounted for.

    Each request sent ends as exactly one of: ``right`` (answered with the exact expected
    answer), ``wrong`` (answered, but not that answer), ``errors`` (the request failed:
    connection refused or reset, an HTTP error before any answer...) or ``timeouts`` (no
    answer within the budget, or still unanswered when the run ended). The four add up to
    ``sent`` (:meth:`accounted`); every one of them has a latency sample (a failure's or a
    timeout's is the time it took to fail), so p99 does not leave the bad ones out.
    """

    name: str
    sent: int = 0
    right: int = 0
    wrong: int = 0
    errors: int = 0
    timeouts: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    #: percentiles measured elsewhere (wrk reports them, not the samples)
    reported: dict[float, float] = field(default_factory=dict)
    #: requests a closed-loop tool had in flight when its run ended (wrk stops without
    #: waiting for them): neither sent nor counted, shown beside the accounting
    cut_off: int = 0

    @property
    def answered(self) -> int:
        return self.right + self.wrong

    @property
    def bad(self) -> int:
        """Everything that was not the right answer."""
        return self.wrong + self.errors + self.timeouts

    @property
    def accounted(self) -> bool:
        return self.sent == self.right + self.wrong + self.errors + self.timeouts

    @property
    def rate(self) -> float:
        """Right answers per second (a wrong answer is not throughput)."""
        return self.right / self.seconds if self.seconds else 0.0

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

    def accounting(self) -> str:
        """``sent = right + wrong + error + timeout``, and whether it adds up."""
        tail = f", {self.cut_off} cut off at the end" if self.cut_off else ""
        ok = "" if self.accounted else "  ** DOES NOT ADD UP **"
        return (f"{self.sent} sent = {self.right} right + {self.wrong} wrong + "
                f"{self.errors} error + {self.timeouts} timeout{tail}{ok}")


def median_result(results: Sequence[Result]) -> Result:
    """The run whose throughput is the median (keeps its latencies)."""
    ordered = sorted(results, key=lambda r: r.rate)
    return ordered[len(ordered) // 2]


def merged(name: str, results: Sequence[Result]) -> Result:
    """Every request of several runs in one result (accounting, latencies; the rate over
    their summed time)."""
    out = Result(name)
    for r in results:
        out.sent += r.sent
        out.right += r.right
        out.wrong += r.wrong
        out.errors += r.errors
        out.timeouts += r.timeouts
        out.cut_off += r.cut_off
        out.seconds += r.seconds
        out.latencies_ms.extend(r.latencies_ms)
    if all(r.reported for r in results) and results:
        out.reported = {p: statistics.median(r.reported[p] for r in results)
                        for p in results[0].reported}
    return out


@dataclass
class Paired:
    """Subject and floor measured in alternating rounds (subject, floor, subject, floor...),
    so a change of the machine's load hits both alike. The ratio is the median of the
    per-round ratios; the rates shown are the medians of each side's rounds."""

    subject: list[Result]
    floor: list[Result]

    @property
    def ratios(self) -> list[float]:
        return [s.rate / f.rate if f.rate else float("nan")
                for s, f in zip(self.subject, self.floor, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def subject_rate(self) -> float:
        return statistics.median(r.rate for r in self.subject)

    @property
    def floor_rate(self) -> float:
        return statistics.median(r.rate for r in self.floor)

    @property
    def subject_all(self) -> Result:
        return merged(self.subject[0].name, self.subject)

    @property
    def floor_all(self) -> Result:
        return merged(self.floor[0].name, self.floor)

    def p99_ratio(self) -> float:
        return statistics.median(s.p99 / f.p99 if f.p99 else float("nan")
                                 for s, f in zip(self.subject, self.floor, strict=True))


def paired(subject: Callable[[], Result], floor: Callable[[], Result], rounds: int) -> Paired:
    """``rounds`` pairs, alternating: subject, floor, subject, floor..."""
    out = Paired([], [])
    for i in range(rounds):
        out.subject.append(subject())
        out.floor.append(floor())
        print(f"    round {i + 1}: {out.subject[-1].rate:9.0f}/s vs floor "
              f"{out.floor[-1].rate:9.0f}/s  ({out.ratios[-1]:.0%})", flush=True)
    return out


def print_paired(label: str, floor_label: str, pair: Paired, *, latency: bool = False) -> None:
    """The medians, the ratio and every request's accounting of both sides."""
    s, f = pair.subject_all, pair.floor_all
    print(f"  {floor_label:<36} {pair.floor_rate:9.0f}/s (median of {len(pair.floor)})"
          + (f"  p50 {f.p50:7.2f} ms  p99 {f.p99:7.2f} ms" if latency else ""))
    print(f"  {label:<36} {pair.subject_rate:9.0f}/s (median of {len(pair.subject)})"
          + (f"  p50 {s.p50:7.2f} ms  p99 {s.p99:7.2f} ms" if latency else ""))
    print(f"  ratio (median of the per-round ratios) = {pair.ratio:.0%}  "
          f"[{', '.join(f'{r:.0%}' for r in pair.ratios)}]")
    print(f"    {floor_label}: {f.accounting()}")
    print(f"    {label}: {s.accounting()}")


def ensure_vhost() -> None:
    if "WHISTLE_BENCH_AMQP_URL" in os.environ:
        return
    subprocess.run([str(ROOT / "scripts" / "services.sh"), "vhost", "whistle_bench"], check=True,
                   stdout=subprocess.DEVNULL)


def amqp_connect(url: str | None = None):  # noqa: ANN201 - an amqp.Connection
    """A raw py-amqp connection to the benchmarks' broker and vhost (from the URL, never a
    hard-coded vhost)."""
    from urllib.parse import unquote, urlsplit

    import amqp as pyamqp

    parts = urlsplit(url or BENCH_ENV["WHISTLE_AMQP_URL"])
    vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
    conn = pyamqp.Connection(f"{parts.hostname}:{parts.port or 5672}",
                             userid=unquote(parts.username or "guest"),
                             password=unquote(parts.password or "guest"), virtual_host=vhost)
    conn.connect()
    return conn


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
        if name.startswith(BENCH_ENV["WHISTLE_COUCH_PREFIX"]):
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
           events: bool = True, env: dict[str, str] | None = None) -> Proc:
    argv = [str(VENV_BIN / "celery"), "-A", "whistle_tasks", "worker", "-Q", queue, "-P", pool,
            "-c", str(concurrency), "-n", f"{name}@%h", "-l", "WARNING",
            "--without-mingle", "--without-gossip"]
    if not events:
        argv.append("--without-heartbeat")
    env = {**({} if events else {"WHISTLE_TASK_EVENTS": "false"}), **(env or {})}
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
    return (f"  {label:<34} {r.rate:9.0f}/s   p50 {r.p50:7.2f} ms   p99 {r.p99:7.2f} ms\n"
            f"  {'':<34} {r.accounting()}")


def run_repeated(fn: Callable[[], Result], repeats: int) -> Result:
    return median_result([fn() for _ in range(repeats)])
