"""The one-box supervisor behind ``whistle up``: start the platform's processes, keep them up.

Two parts, usable on their own:

- :func:`platform_specs` turns the settings into a list of :class:`ProcessSpec` (name, argv,
  env): the switch bridge, the media service (gunicorn), one Celery worker per whapp queue
  (times ``workers_of``), celery beat and Flower. Nothing is started; the list can be
  printed, filtered or extended.
- :class:`Supervisor` runs a list of specs: ``start()``, ``run_forever()``, ``stop()``,
  ``status()``. A process that exits is restarted with exponential back-off (1 s doubling
  to 30 s; back to 1 s once it stayed up 60 s). ``stop()`` (or SIGINT/SIGTERM/SIGHUP while
  ``run_forever()`` runs) sends SIGTERM to every child's process group, which is Celery's
  warm shutdown, waits, and SIGKILLs what is left after the timeout; a second Ctrl-C skips
  the wait.

Why it looks like this:

- Plain ``subprocess`` and signals, no dependency: the supervisor must be the simplest
  process on the box. One thread reads each child's output and one waits for its exit; the
  main loop sleeps on a queue until an exit, a signal or the next scheduled restart, so an
  idle supervisor uses no CPU.
- Every child gets its own session (process group): Ctrl-C in a terminal reaches only the
  supervisor, which then stops the children in order, and a child's own children (a prefork
  pool) are signalled with it. On Linux a child also gets SIGTERM if the supervisor dies
  without cleaning up (``PR_SET_PDEATHSIG``), so a killed ``whistle up`` leaves no workers
  consuming from the queues.
- Output is merged, line by line, into one stream prefixed by the process name
  (``12:00:01 registrar-1 | ...``), as foreman/honcho do; the supervisor's own lines use
  the name ``whistle``. Known secrets (passwords in the service URLs, ESL passwords) and
  anything that looks like a credential are masked in every line.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from whistle_tasks.core import log
from whistle_tasks.core.config import Settings
from whistle_tasks.ops.table import render

SUPERVISOR_NAME = "whistle"
PLATFORM_EXTRAS = ("bridge", "media", "beat", "flower", "api")
#: threads of each media-service process (gunicorn's gthread worker)
MEDIA_THREADS = 8
# Celery's pool names (celery.concurrency.ALIASES, "custom" excluded)
CELERY_POOLS = frozenset({"prefork", "processes", "solo", "threads", "gevent", "eventlet"})


class SpecError(ValueError):
    """A process set cannot be built from the given settings or options."""


@dataclass(frozen=True)
class ProcessSpec:
    """One process to run: its name (unique), argv, extra environment, what to show."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    address: str = ""
    summary: str = ""
    cwd: str | None = None

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise SpecError(f"process name {self.name!r}: must be non-empty, without spaces")
        if not self.argv:
            raise SpecError(f"process {self.name}: empty command")
        object.__setattr__(self, "argv", tuple(str(a) for a in self.argv))

    @property
    def command(self) -> str:
        """A short description of the command, for tables."""
        if self.summary:
            return self.summary
        argv = list(self.argv)
        argv[0] = os.path.basename(argv[0])
        text = shlex.join(argv)
        return text if len(text) <= 72 else text[:69] + "..."


# --- the platform's process set ------------------------------------------------------


def parse_counts(text: str, what: str = "--workers") -> dict[str, int]:
    """``"registrar=2,router=3"`` → ``{"registrar": 2, "router": 3}``; precise errors."""
    counts: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SpecError(f"{what}: {item!r} is not NAME=COUNT")
        try:
            count = int(raw)
        except ValueError:
            raise SpecError(f"{what}: {item!r}: COUNT must be a whole number") from None
        if count < 0:
            raise SpecError(f"{what}: {item!r}: COUNT must be 0 or more")
        counts[name] = count
    return counts


def _split_address(address: str, what: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(f"{what}: {address!r} is not HOST:PORT")
    return host, int(port)


def _worker_pool(settings: Settings, whapp: str) -> tuple[str, int]:
    try:
        pool, concurrency = settings.pool_of(whapp)
    except ValueError:
        raise SpecError(f"WHISTLE_WORKER_POOLS: cannot read the entry of {whapp!r} in "
                        f"{settings.worker_pools!r} (expected {whapp}=POOL:N)") from None
    if pool not in CELERY_POOLS:
        raise SpecError(f"WHISTLE_WORKER_POOLS: unknown pool {pool!r} for {whapp} "
                        f"(one of {', '.join(sorted(CELERY_POOLS))})")
    if concurrency < 1:
        raise SpecError(f"WHISTLE_WORKER_POOLS: concurrency of {whapp} must be at least 1")
    return pool, concurrency


def _workers_of(settings: Settings, whapp: str, override: Mapping[str, int]) -> int:
    if whapp in override:
        return override[whapp]
    try:
        count = settings.workers_of(whapp)
    except ValueError:
        raise SpecError(f"WHISTLE_WORKERS_PER_QUEUE: cannot read the entry of {whapp!r} in "
                        f"{settings.workers_per_queue!r} (expected {whapp}=N)") from None
    if count < 0:
        raise SpecError(f"WHISTLE_WORKERS_PER_QUEUE: {whapp} must be 0 or more")
    return count


def platform_specs(settings: Settings, *, only: Iterable[str] | None = None,
                   workers: Mapping[str, int] | None = None, bridge: bool = True,
                   media: bool = True, beat: bool = True, flower: bool = True,
                   api: bool = True, bridges: int = 1,
                   run_dir: str | Path = ".run",
                   python: str = sys.executable) -> list[ProcessSpec]:
    """The processes of one Whistle box, from the settings.

    ``only`` narrows the workers to some whapps (``WHAPP_BINDINGS`` order is kept);
    ``workers`` overrides ``workers_of`` per whapp (0 runs none). ``python`` is the
    interpreter whose Celery runs (``python -m celery``), so a venv's Celery is used even
    when its ``bin/`` is not on ``PATH``; the bridge is that venv's ``whistle bridge``.
    ``bridges`` > 1 runs that many bridges for the same nodes (redundant: one active per
    node, by lease), on consecutive HTTP ports from ``WHISTLE_HTTP_LISTEN``'s.
    """
    from whistle_tasks.core.amqp import WHAPP_BINDINGS

    whapps = list(WHAPP_BINDINGS)
    override = dict(workers or {})
    unknown = sorted(set(override) - set(whapps))
    if unknown:
        raise SpecError(f"--workers: unknown whapp {', '.join(unknown)} "
                        f"(whapps: {', '.join(whapps)})")
    if only is not None:
        wanted = {name.strip() for name in only if name.strip()}
        unknown = sorted(wanted - set(whapps))
        if unknown:
            raise SpecError(f"--only: unknown whapp {', '.join(unknown)} "
                            f"(whapps: {', '.join(whapps)})")
        whapps = [name for name in whapps if name in wanted]

    level = settings.log_level.upper()
    celery = (python, "-m", "celery", "-A", "whistle_tasks")
    specs: list[ProcessSpec] = []
    if bridge:
        host, port = _split_address(settings.http_listen, "WHISTLE_HTTP_LISTEN")
        nodes = ",".join(":".join(n.strip().split(":")[:2])
                         for n in settings.fs_nodes.split(",") if n.strip())
        whistle = Path(python).parent / "whistle"
        if bridges < 1:
            raise SpecError("--bridges must be at least 1")
        for i in range(bridges):
            env: dict[str, str] = {}
            listen = settings.http_listen
            if bridges > 1:
                listen = f"{host}:{int(port) + i}"
                env = {"WHISTLE_HTTP_LISTEN": listen,
                       "WHISTLE_BRIDGE_LEASE_MS": str(settings.bridge_lease_ms or 2000)}
                if settings.spool_dir:
                    env["WHISTLE_SPOOL_DIR"] = str(Path(settings.spool_dir) / f"bridge-{i + 1}")
            role = f", redundant {i + 1}/{bridges}" if bridges > 1 else ""
            specs.append(ProcessSpec(
                "bridge" if i == 0 else f"bridge-{i + 1}", (str(whistle), "bridge"), env=env,
                address=f"http://{listen}",
                summary=f"whistle bridge (FreeSWITCH {nodes or 'none'}{role})"))
    if media:
        host, port = _split_address(settings.media_listen, "WHISTLE_MEDIA_LISTEN")
        if settings.media_workers < 1:
            raise SpecError("WHISTLE_MEDIA_WORKERS must be at least 1")
        specs.append(ProcessSpec(
            "media", (python, "-m", "gunicorn", "--bind", settings.media_listen,
                      "--workers", str(settings.media_workers), "--worker-class", "gthread",
                      "--threads", str(MEDIA_THREADS), "--graceful-timeout", "10",
                      "--log-level", level.lower(), "whistle_tasks.web.wsgi:media"),
            address=f"http://{settings.media_listen}",
            summary=f"gunicorn media service ({settings.media_workers}x{MEDIA_THREADS} "
                    "threads)"))
    for whapp in whapps:
        pool, concurrency = _worker_pool(settings, whapp)
        count = _workers_of(settings, whapp, override)
        for i in range(1, count + 1):
            specs.append(ProcessSpec(
                f"{whapp}-{i}",
                (*celery, "worker", "-Q", whapp, "-P", pool, "-c", str(concurrency),
                 "-n", f"{whapp}-{i}@%h", "--without-mingle", "--without-gossip",
                 "-l", level),
                summary=f"celery worker -Q {whapp} -P {pool} -c {concurrency}"))
    if beat:
        schedule = Path(run_dir) / "celerybeat-schedule"
        specs.append(ProcessSpec(
            "beat", (*celery, "beat", "-s", str(schedule), "-l", level),
            summary=f"celery beat (schedule {schedule})"))
    if flower:
        host, port = _split_address(settings.flower_address, "WHISTLE_FLOWER_ADDRESS")
        specs.append(ProcessSpec(
            "flower", (*celery, "flower", f"--address={host}", f"--port={port}"),
            address=f"http://{settings.flower_address}", summary="celery flower"))
    if api:
        _split_address(settings.api_listen, "WHISTLE_API_LISTEN")
        specs.append(ProcessSpec(
            "api", tuple(api_argv(settings, python)), address=f"http://{settings.api_listen}",
            summary=f"whistle api (gunicorn, {settings.api_workers} gevent workers)"))
    return specs


def api_argv(settings: Settings, python: str = sys.executable, listen: str | None = None,
             workers: int | None = None) -> list[str]:
    """The command that serves the REST API and its console: gunicorn with gevent workers
    (a live event stream holds a connection; a gevent worker keeps thousands). The access
    log shows the path without its query and never a header, so no key reaches it."""
    return [python, "-m", "gunicorn", "--worker-class", "gevent",
            "--workers", str(workers or settings.api_workers),
            "--bind", listen or settings.api_listen, "--graceful-timeout", "5",
            "--timeout", "60", "--limit-request-line", "4094", "--no-control-socket",
            "--access-logfile", "-",
            "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',
            "whistle_tasks.web.api.app:create_app()"]


def secrets_of(settings: Settings) -> list[str]:
    """The secret strings in the settings, to mask in every line a child prints.

    A URL password equal to its user name (``guest:guest``) is a well-known default,
    not a secret; masking it would mask the user name in every line.
    """
    found: list[str] = []
    for url in (settings.amqp_url, settings.redis_url, settings.couch_url, settings.smtp_url):
        parts = urlsplit(url)
        if parts.password and parts.password != parts.username:
            found += [parts.password, unquote(parts.password)]
    for node in settings.fs_nodes.split(","):
        password = node.strip().split(":", 2)[2:]
        if password and password[0]:
            found.append(password[0])
    if settings.http_auth:
        found.append(settings.http_auth.partition(":")[2])
    if settings.media_secret:
        found.append(settings.media_secret)
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


# --- output ----------------------------------------------------------------------------

_COLORS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")


class Output:
    """One stream shared by every child and the supervisor: ``HH:MM:SS name | text``.

    Lines are written whole under a lock, so the output of concurrent children never
    interleaves within a line. Names are coloured when the stream is a terminal (and
    ``NO_COLOR`` is not set).
    """

    def __init__(self, stream: IO[str] | None = None, names: Iterable[str] = (),
                 secrets: Sequence[str] = (), color: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.width = max([len(SUPERVISOR_NAME), *(len(n) for n in names)])
        self.secrets = tuple(secrets)
        if color is None:
            isatty = getattr(self.stream, "isatty", lambda: False)
            color = bool(isatty()) and "NO_COLOR" not in os.environ
        self.color = color
        self._colors: dict[str, str] = {SUPERVISOR_NAME: "1"}
        self._lock = threading.Lock()

    def add_name(self, name: str) -> None:
        self.width = max(self.width, len(name))
        if name not in self._colors:
            self._colors[name] = _COLORS[(len(self._colors) - 1) % len(_COLORS)]

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return log.redact(text)

    def line(self, name: str, text: str) -> None:
        self.lines(name, [text])

    def lines(self, name: str, texts: Iterable[str]) -> None:
        stamp = time.strftime("%H:%M:%S")
        label = name.ljust(self.width)
        if self.color:
            label = f"\033[{self._colors.get(name, '0')}m{label}\033[0m"
        out = "".join(f"{stamp} {label} | {self.mask(t)}\n" for t in texts)
        with self._lock:
            try:
                self.stream.write(out)
                self.stream.flush()
            except (OSError, ValueError):  # closed or broken stdout: keep supervising
                pass


# --- running processes -----------------------------------------------------------------


def describe_exit(returncode: int | None) -> str:
    """``exit code 1``, ``killed by SIGKILL``, or ``could not start`` (None)."""
    if returncode is None:
        return "could not start"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _pdeathsig() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:  # runs in the child between fork and exec: keep it trivial
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return preexec


_PREEXEC = _pdeathsig()


@dataclass(frozen=True)
class ProcessStatus:
    """What :meth:`Supervisor.status` reports for one process."""

    name: str
    state: str                 # "running", "backoff" (waiting to restart) or "stopped"
    pid: int | None
    restarts: int
    uptime: float | None       # seconds since the current run started
    last_exit: str | None      # describe_exit() of the previous run
    command: str
    address: str


class _Run:
    """One run of one child: the Popen, when it started, and its two threads."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.started = time.monotonic()
        self.exited = threading.Event()
        self.threads: list[threading.Thread] = []


@dataclass
class _Child:
    spec: ProcessSpec
    run: _Run | None = None
    restarts: int = 0
    failures: int = 0          # consecutive short runs: the back-off exponent
    next_start: float | None = None
    last_exit: str | None = None


_STOP = "stop"
_EXIT = "exit"
_STATUS = "status"


class Supervisor:
    """Run a set of processes, restart them when they exit, stop them all cleanly.

    ``backoff_initial``/``backoff_max``: the first restart waits ``backoff_initial``
    seconds, each further quick exit doubles it up to ``backoff_max``; a run that lasted
    ``stable_after`` seconds resets it. ``stop_timeout``: seconds between SIGTERM and
    SIGKILL. ``output``: where the prefixed lines go (stdout by default).
    """

    def __init__(self, specs: Sequence[ProcessSpec], *, output: Output | None = None,
                 backoff_initial: float = 1.0, backoff_max: float = 30.0,
                 stable_after: float = 60.0, stop_timeout: float = 20.0,
                 secrets: Sequence[str] = ()) -> None:
        names = [s.name for s in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"duplicate process names: {', '.join(duplicates)}")
        self.specs = list(specs)
        self.output = output or Output(names=names, secrets=secrets)
        for name in names:
            self.output.add_name(name)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.stop_timeout = stop_timeout
        self._children = {s.name: _Child(s) for s in specs}
        self._events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._lock = threading.RLock()
        self._started = False
        self._stopping = False
        self._stopped = threading.Event()
        self._loop_thread: threading.Thread | None = None

    # -- public API -------------------------------------------------------------------

    def say(self, text: str) -> None:
        """Write one supervisor line."""
        self.output.line(SUPERVISOR_NAME, text)

    def start(self) -> None:
        """Start every process (a process that cannot start is retried with back-off)."""
        with self._lock:
            if self._started or self._stopping:
                return
            self._started = True
            for child in self._children.values():
                self._spawn(child)

    def run_forever(self, on_started: Callable[[], None] | None = None) -> int:
        """Start (if needed) and supervise until stopped; returns the exit status, 0.

        In the main thread, SIGINT, SIGTERM and SIGHUP stop everything and SIGUSR1 prints
        the status table; the handlers are in place before the first process starts.
        ``on_started`` runs once everything was started (``whistle up`` prints the table).
        """
        self._loop_thread = threading.current_thread()
        restore = self._install_signals()
        try:
            self.start()
            if on_started is not None:
                on_started()
            while not self._stopping:  # (stop() may have run before this loop began)
                try:
                    event = self._events.get(timeout=self._next_due_in())
                except queue.Empty:
                    event = None
                if event is not None and event[0] == _STOP:
                    self.say(f"{event[1]}: stopping")
                    break
                if event is not None and event[0] == _EXIT:
                    self._on_exit(event[1], event[2])
                elif event is not None and event[0] == _STATUS:
                    self.print_status()
                self._start_due()
        finally:
            self._shutdown()
            restore()
            self._loop_thread = None
        return 0

    def stop(self, timeout: float | None = None) -> None:
        """Stop every process: SIGTERM to its group, wait, then SIGKILL. Idempotent.

        From another thread while :meth:`run_forever` runs, this asks that loop to stop
        and waits for it to finish.
        """
        loop = self._loop_thread
        if loop is not None and loop is not threading.current_thread():
            self._events.put((_STOP, "stop requested"))
            self._stopped.wait()
            return
        self._shutdown(timeout)

    def status(self) -> list[ProcessStatus]:
        """One entry per process, in spec order."""
        now = time.monotonic()
        out = []
        with self._lock:
            for child in self._children.values():
                run = child.run
                alive = run is not None and not run.exited.is_set()
                if alive:
                    state = "running"
                elif child.next_start is not None or (run is not None and not self._stopping):
                    # an exit the loop has not handled yet still gets its restart: it is in
                    # back-off from the moment it ended, not "stopped" for an instant
                    state = "backoff"
                else:
                    state = "stopped"
                out.append(ProcessStatus(
                    name=child.spec.name, state=state,
                    pid=run.proc.pid if alive and run else None,
                    restarts=child.restarts,
                    uptime=now - run.started if alive and run else None,
                    last_exit=child.last_exit, command=child.spec.command,
                    address=child.spec.address))
        return out

    def print_status(self) -> None:
        """The status as a table, through the output (one supervisor line per row)."""
        rows = []
        for st in self.status():
            state = st.state if st.state != "running" else f"up {_duration(st.uptime)}"
            rows.append((st.name, st.pid or "-", state, st.restarts, st.address or "",
                         st.command))
        table = render(["name", "pid", "state", "restarts", "address", "command"], rows)
        self.output.lines(SUPERVISOR_NAME, table.splitlines())

    # -- internals --------------------------------------------------------------------

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_stop(signum: int, _frame: object) -> None:
            self._events.put((_STOP, signal.Signals(signum).name))

        def on_status(_signum: int, _frame: object) -> None:
            self._events.put((_STATUS,))

        wanted = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop, signal.SIGHUP: on_stop,
                  signal.SIGUSR1: on_status}
        previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _spawn(self, child: _Child) -> None:
        spec = child.spec
        child.next_start = None
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv from our own specs, no shell
                spec.argv, env=env, cwd=spec.cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_PREEXEC)  # prctl only: takes no lock between fork and exec
        except (OSError, subprocess.SubprocessError) as exc:
            child.run = None
            self._schedule_restart(child, None, 0.0, detail=f"{type(exc).__name__}: {exc}")
            return
        run = _Run(proc)
        child.run = run
        reader = threading.Thread(target=self._read, args=(spec.name, proc),
                                  name=f"out-{spec.name}", daemon=True)
        waiter = threading.Thread(target=self._wait, args=(child, run),
                                  name=f"wait-{spec.name}", daemon=True)
        run.threads = [reader, waiter]
        reader.start()
        waiter.start()

    def _read(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        stream = proc.stdout
        if stream is None:
            return
        with contextlib.suppress(OSError, ValueError):
            for raw in iter(lambda: stream.readline(65536), b""):
                self.output.line(name, raw.decode("utf-8", "replace").rstrip("\r\n"))
        with contextlib.suppress(OSError):
            stream.close()

    def _wait(self, child: _Child, run: _Run) -> None:
        run.proc.wait()
        run.exited.set()
        self._events.put((_EXIT, child, run))

    def _on_exit(self, child: _Child, run: _Run) -> None:
        with self._lock:
            if child.run is not run or self._stopping:
                return
            uptime = time.monotonic() - run.started
            self._schedule_restart(child, run.proc.returncode, uptime, pid=run.proc.pid)

    def _schedule_restart(self, child: _Child, returncode: int | None, uptime: float,
                          pid: int | None = None, detail: str = "") -> None:
        """Log the exit and schedule the next start with the back-off delay."""
        if uptime >= self.stable_after:
            child.failures = 0
        delay = min(self.backoff_initial * (2 ** child.failures), self.backoff_max)
        child.failures += 1
        child.last_exit = describe_exit(returncode)
        child.next_start = time.monotonic() + delay
        name, n, wait = child.spec.name, child.restarts + 1, _duration(delay)
        if pid is None:
            self.say(f"{name} could not start ({detail}); retry #{n} in {wait}")
        else:
            self.say(f"{name} (pid {pid}) ended ({child.last_exit}) after "
                     f"{_duration(uptime)}; restart #{n} in {wait}")

    def _next_due_in(self) -> float | None:
        with self._lock:
            due = [c.next_start for c in self._children.values() if c.next_start is not None]
        if not due:
            return None
        return max(0.0, min(due) - time.monotonic())

    def _start_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._stopping:
                return
            for child in self._children.values():
                if child.next_start is not None and child.next_start <= now:
                    child.restarts += 1
                    self._spawn(child)
                    if child.run is not None:
                        self.say(f"{child.spec.name} restarted: pid {child.run.proc.pid}")

    def _shutdown(self, timeout: float | None = None) -> None:
        timeout = self.stop_timeout if timeout is None else timeout
        with self._lock:
            if self._stopping:
                already = True
            else:
                already = False
                self._stopping = True
                for child in self._children.values():
                    child.next_start = None
                runs = [c.run for c in self._children.values()
                        if c.run is not None and not c.run.exited.is_set()]
        if already:
            self._stopped.wait()
            return
        try:
            self._terminate(runs, timeout)
        finally:
            self._stopped.set()

    def _terminate(self, runs: list[_Run], timeout: float) -> None:
        if runs:
            self.say(f"stopping {len(runs)} process(es): SIGTERM, SIGKILL after "
                     f"{_duration(timeout)}")
        for run in runs:
            _signal_group(run.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        pending = [r for r in runs if not r.exited.is_set()]
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                event = self._events.get(timeout=remaining)
            except queue.Empty:
                break
            if event[0] == _STOP:
                self.say(f"{event[1]} again: SIGKILL now")
                break
            pending = [r for r in pending if not r.exited.is_set()]
        pending = [r for r in pending if not r.exited.is_set()]
        for run in pending:
            name = next((c.spec.name for c in self._children.values() if c.run is run), "?")
            self.say(f"{name} (pid {run.proc.pid}) still running: SIGKILL")
            _signal_group(run.proc.pid, signal.SIGKILL)
        for run in runs:
            run.exited.wait(5)
            # members of its group that outlived the leader (a prefork pool's children)
            _signal_group(run.proc.pid, signal.SIGKILL)
        for run in runs:
            for thread in run.threads:
                thread.join(2)
        if runs:
            self.say("all stopped")


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s" if seconds >= 60 \
            else f"{int(seconds)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
