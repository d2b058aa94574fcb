"""What the fault tests share: private services they may stop, a RabbitMQ restart that always
ends with RabbitMQ up, a call-event counter that survives the restart, an auth storm, and
the figures each test prints (and writes to ``test-output/faults/``) for RELIABILITY.md.

Every fault test runs in a RabbitMQ vhost of its own (:func:`private_vhost`), so the
session's shared workers never take its requests, and the services it stops are its own
(:class:`PrivatePouch`, :class:`PrivateRedis`): stopping them disturbs nobody. The one
exception is :func:`rabbit_restart`: ``rabbitmqctl stop_app`` stops the whole broker, every
vhost of this machine, so it is kept to a few seconds.

``python -m tests.faultkit provision REALM COUNT`` provisions an account and COUNT devices
(``u0000``... with password ``pw-u0000``...) into whatever CouchDB ``WHISTLE_COUCH_URL``
names: the way a test fills a private pouchdb-server it cannot reach through the test
process's own settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from kombu import Connection, Consumer, Queue

from tests import support, xmlcurl
from tests.bridgekit import directory_user, free_port, sip_auth_body
from tests.esl_standin import EslStandIn
from whistle_tasks.core import amqp

ROOT = Path(__file__).resolve().parent.parent
FIGURES_DIR = support.OUTPUT / "faults"
RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"


def password_of(user: str) -> str:
    return f"pw-{user}"


def user_name(index: int) -> str:
    return f"u{index:04d}"


# --- figures -------------------------------------------------------------------------------

def figures(test: str, **values: Any) -> dict[str, Any]:  # noqa: ANN401
    """Print a test's measured figures on one line and keep them in test-output/faults/."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    (FIGURES_DIR / f"{test}.json").write_text(json.dumps(values, indent=1, sort_keys=True))
    print(f"\nFAULT FIGURES {test}: {json.dumps(values, sort_keys=True)}")
    return values


# --- waiting for ports ---------------------------------------------------------------------

def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


# --- a RabbitMQ vhost of the test's own ----------------------------------------------------

@contextlib.contextmanager
def private_vhost() -> Iterator[str]:
    """A new vhost (full rights for guest) for one test; yields its AMQP URL, then deletes it."""
    name = f"whistle_fault_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    if not Path(RABBITMQCTL).exists():
        import pytest

        pytest.skip("rabbitmqctl not found: fault tests need to manage RabbitMQ vhosts")
    subprocess.run([RABBITMQCTL, "add_vhost", name], capture_output=True, check=True)
    subprocess.run([RABBITMQCTL, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                   capture_output=True, check=True)
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        subprocess.run([RABBITMQCTL, "delete_vhost", name], capture_output=True, check=False)


# --- the broker restart --------------------------------------------------------------------

def rabbit_restart(outage: float, during: Callable[[], None] | None = None) -> dict[str, float]:
    """``rabbitmqctl stop_app``, ``outage`` seconds (``during()`` runs meanwhile), then
    ``start_app``; returns the timings. Whatever happens, RabbitMQ is started again and its
    port answers before this returns (or the error says it could not be)."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    try:
        subprocess.run([RABBITMQCTL, "stop_app"], capture_output=True, check=True, timeout=60)
        timings["stop_app_s"] = round(time.monotonic() - started, 2)
        down_at = time.monotonic()
        if during is not None:
            during()
        time.sleep(max(0.0, outage - (time.monotonic() - down_at)))
    finally:
        restart_at = time.monotonic()
        ensure_rabbit_running()
        timings["start_app_s"] = round(time.monotonic() - restart_at, 2)
        timings["outage_s"] = round(time.monotonic() - started, 2)
    return timings


def ensure_rabbit_running(timeout: float = 90.0) -> None:
    """``start_app`` (a no-op when it runs) and wait until the AMQP port answers."""
    deadline = time.monotonic() + timeout
    for attempt in range(3):
        result = subprocess.run([RABBITMQCTL, "start_app"], capture_output=True, text=True,
                                timeout=timeout, check=False)
        if result.returncode == 0:
            break
        time.sleep(1 + attempt)
    subprocess.run([RABBITMQCTL, "await_startup"], capture_output=True,
                   timeout=max(1.0, deadline - time.monotonic()), check=False)
    support.wait_until(lambda: port_open(5672), timeout=max(1.0, deadline - time.monotonic()),
                       interval=0.2, what="RabbitMQ port 5672 after start_app")



def close_connections(url: str) -> int:
    """RabbitMQ closes every client connection of the vhost of ``url`` (only that vhost: no
    one else is disturbed); returns how many it closed."""
    vhost = url.rsplit("/", 1)[1]
    listed = subprocess.run([RABBITMQCTL, "list_connections", "-q", "--no-table-headers",
                             "-p", vhost, "pid"], capture_output=True, text=True, check=True)
    count = sum(1 for line in listed.stdout.splitlines() if line.strip())
    subprocess.run([RABBITMQCTL, "close_all_connections", "-p", vhost, "fault test"],
                   capture_output=True, check=True, timeout=60)
    return count

# --- private services a test may stop ------------------------------------------------------

class _Service:
    """A server process of the test's own on a free port, stopped and started at will."""

    name = "service"

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log_path = support.OUTPUT / f"{self.name}-{os.getpid()}-{self.port}.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def cwd(self) -> Path | None:
        return None

    def ready(self) -> bool:
        return port_open(self.port)

    def start(self, timeout: float = 30.0) -> float:
        """Start (again, same port and data); returns the seconds it took to answer."""
        support.OUTPUT.mkdir(exist_ok=True)
        began = time.monotonic()
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.argv(), cwd=self.cwd(), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        support.wait_until(lambda: self.ready() or self.proc.poll() is not None, timeout,
                           interval=0.1, what=f"{self.name} on port {self.port}")
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited at start: "
                                 f"{self.log_path.read_text(errors='replace')[-2000:]}")
        return time.monotonic() - began

    def stop(self) -> None:
        """Stop it (SIGTERM, SIGKILL after 10 s) and wait until the port is closed."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        support.wait_until(lambda: not port_open(self.port), timeout=10,
                           what=f"{self.name} port {self.port} closed")

    def close(self) -> None:
        self.stop()


class PrivatePouch(_Service):
    """A pouchdb-server of the test's own (``-n``), its data in a temporary folder that
    survives a stop/start (LevelDB on disk), removed by :meth:`close`."""

    name = "pouchdb"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="whistle-fault-pouch-"))
        self.url = f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [str(ROOT / "node_modules" / ".bin" / "pouchdb-server"), "-p", str(self.port),
                "-d", f"{self.dir}/", "-c", str(self.dir / "config.json"), "-n"]

    def cwd(self) -> Path:
        return self.dir

    def ready(self) -> bool:
        try:
            return requests.get(self.url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis(_Service):
    """A redis-server of the test's own: no persistence, so a restart starts it empty."""

    name = "redis"

    def __init__(self) -> None:
        super().__init__()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no"]

    def keys(self, pattern: str) -> list[bytes]:
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=2).keys(pattern)


# --- counting what reaches RabbitMQ --------------------------------------------------------

class EventCounter:
    """Counts the call events of ``callevt`` in a durable named queue of its own, with a
    consumer thread that reconnects: nothing routed to it is lost while the consumer is
    away (the queue keeps it), so after a broker restart the count is what reached RabbitMQ.
    Messages are acknowledged after they are counted. :meth:`close` deletes the queue."""

    def __init__(self, url: str, key: str = "call.#") -> None:
        self.url = url
        self.queue = Queue(f"fault-count-{uuid.uuid4().hex}", exchange=amqp.CALLEVT,
                           routing_key=key, durable=True, auto_delete=False)
        self.seen: Counter[str] = Counter()
        self.arrivals: dict[str, float] = {}
        self.reconnects = 0
        self.paused = threading.Event()  # set: nothing is read (a backlog builds up)
        self._stop = threading.Event()
        with Connection(url) as conn:
            self.queue(conn.default_channel).declare()
        self.thread = threading.Thread(target=self._run, name="fault-event-counter", daemon=True)
        self.thread.start()

    def _on_message(self, body: Any, message: Any) -> None:  # noqa: ANN401
        call = str(body.get("Call-ID", ""))
        self.seen[call] += 1
        self.arrivals.setdefault(call, time.monotonic())
        message.ack()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with Connection(self.url, connect_timeout=2, heartbeat=0) as conn:
                    conn.connect()
                    with Consumer(conn.channel(), queues=[self.queue], callbacks=[self._on_message],
                                  accept=["json"], no_ack=False, prefetch_count=200):
                        while not self._stop.is_set():
                            if self.paused.is_set():
                                time.sleep(0.05)
                                continue
                            with contextlib.suppress(TimeoutError, socket.timeout):
                                conn.drain_events(timeout=0.2)
            except Exception:  # noqa: BLE001 - the broker went away: connect again
                if self._stop.is_set():
                    return
                self.reconnects += 1
                time.sleep(0.3)

    def wait_for(self, calls: set[str], timeout: float) -> set[str]:
        """Wait until every call in ``calls`` was counted; returns those still missing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            missing = {c for c in calls if not self.seen.get(c)}
            if not missing:
                return missing
            time.sleep(0.1)
        return {c for c in calls if not self.seen.get(c)}

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        with contextlib.suppress(Exception), Connection(self.url, connect_timeout=5) as conn:
            self.queue(conn.default_channel).delete()


# --- what the stand-in sends ----------------------------------------------------------------

def send_register(standin: EslStandIn, realm: str, user: str, contact_host: str) -> str:
    """A ``CUSTOM sofia::register`` as FreeSWITCH sends it (capture a's headers) for
    ``user@realm`` at a contact of its own; returns the contact."""
    contact = f"sip:{user}@{contact_host}:5060;transport=UDP"
    standin.send_event("CUSTOM", [
        ("profile-name", "internal"), ("from-user", user), ("from-host", realm),
        ("presence-hosts", "n/a"), ("contact", f'"" <{contact}>'),
        ("call-id", f"{uuid.uuid4().hex}@{contact_host}"), ("rpid", "unknown"),
        ("status", "Registered(UDP)"), ("expires", "3600"), ("to-user", user),
        ("to-host", realm), ("network-ip", contact_host), ("network-port", "5060"),
        ("username", user), ("realm", realm), ("user-agent", "fault-test"),
    ], subclass="sofia::register")
    return contact


def send_call_event(standin: EslStandIn, call: str) -> None:
    standin.send_event("CHANNEL_ANSWER", [("Unique-ID", call), ("Channel-Call-UUID", call),
                                          ("Channel-Call-State", "ACTIVE"),
                                          ("Answer-State", "answered")])


# --- CouchDB, read directly ------------------------------------------------------------------

def registration_docs(couch_url: str, prefix: str, realm: str) -> list[dict[str, Any]]:
    """Every stored registration of ``realm`` (straight from CouchDB, no cache)."""
    url = f"{couch_url.rstrip('/')}/{prefix}registrations/_all_docs"
    resp = requests.get(url, params={"include_docs": "true"}, timeout=10)
    if resp.status_code == 404:
        return []
    resp.raise_for_status()
    return [row["doc"] for row in resp.json()["rows"]
            if row["doc"].get("pvt_type") == "registration" and row["doc"].get("Realm") == realm]


# --- an auth storm ---------------------------------------------------------------------------

class AuthResult:
    __slots__ = ("user", "ok", "seconds", "status", "got")

    def __init__(self, user: str, ok: bool, seconds: float, status: int, got: Any) -> None:  # noqa: ANN401
        self.user, self.ok, self.seconds, self.status, self.got = user, ok, seconds, status, got


def authenticate(port: int, fixtures: Path, realm: str, user: str,
                 expect_known: bool = True) -> AuthResult:
    """POST one real sip_auth body; ``ok`` when the bridge answered the right entry (the
    user with its password), or not found for ``expect_known=False``."""
    body = sip_auth_body(fixtures, realm, user)
    started = time.monotonic()
    try:
        status, xml = xmlcurl.post(port, "/fs/directory", body, timeout=15)
        got = directory_user(xml)
    except (OSError, ValueError) as exc:
        return AuthResult(user, False, time.monotonic() - started, 0, repr(exc))
    seconds = time.monotonic() - started
    if expect_known:
        ok = (status == 200 and got is not None and got["id"] == user
              and got["params"] == {"password": password_of(user)})
    else:
        ok = status == 200 and got is None
    return AuthResult(user, ok, seconds, status, got)


def storm(port: int, fixtures: Path, realm: str, users: list[str], *, parallel: int = 16,
          on_progress: Callable[[int], None] | None = None,
          expect_known: bool = True) -> list[AuthResult]:
    """Authenticate every user of ``users`` (repeats allowed), ``parallel`` at a time;
    ``on_progress(done)`` is called after each answer."""
    done = 0
    lock = threading.Lock()

    def one(user: str) -> AuthResult:
        nonlocal done
        result = authenticate(port, fixtures, realm, user, expect_known)
        with lock:
            done += 1
            count = done
        if on_progress is not None:
            on_progress(count)
        return result

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, users))


def latency_figures(results: list[AuthResult]) -> dict[str, float]:
    times = sorted(r.seconds for r in results)
    if not times:
        return {}

    def pct(p: float) -> float:
        return round(times[min(len(times) - 1, int(p * len(times)))] * 1000, 1)

    return {"p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": round(times[-1] * 1000, 1)}


# --- provisioning into any CouchDB -----------------------------------------------------------

def provision_elsewhere(env: dict[str, str], realm: str, count: int) -> None:
    """Provision an account and ``count`` devices with ``env`` (e.g. a private CouchDB)."""
    result = subprocess.run([sys.executable, "-m", "tests.faultkit", "provision", realm,
                             str(count)], cwd=ROOT, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"provisioning failed: {result.stdout}\n{result.stderr}")


def provision_here(realm: str, count: int, start: int = 0) -> list[str]:
    """An account for ``realm`` (made if missing) and ``count`` devices; returns the users."""
    from whistle_tasks.core.couch import NotFound
    from whistle_tasks.ops import provisioning

    try:
        provisioning.get_account(realm)
    except (provisioning.ProvisioningError, NotFound):  # no such account, or no database yet
        provisioning.create_account("Fault test", realm)
    users = [user_name(i) for i in range(start, start + count)]
    outcome = provisioning.create_devices(
        realm, [{"username": u, "password": password_of(u)} for u in users])
    failed = [row for row in outcome if row[1] == "failed"]
    assert not failed, failed
    return users


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "provision":
        provision_here(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    print(__doc__, file=sys.stderr)
    sys.exit(2)


# --- a connection that can be cut (a TCP proxy in front of RabbitMQ) ----------------------

class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target`` (threads). :meth:`cut` closes every
    connection through it and refuses new ones (a network cut for one process only: the
    broker and everyone else carry on); :meth:`mend` accepts again."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.target = target
        self.port = free_port()
        self.open = True
        self.connections = 0
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True, name="tcp-proxy").start()

    def url(self, amqp_url: str) -> str:
        """``amqp_url`` with its host and port replaced by the proxy's."""
        scheme, rest = amqp_url.split("://", 1)
        auth, _, tail = rest.rpartition("@")
        path = tail.split("/", 1)[1] if "/" in tail else ""
        return f"{scheme}://{auth}@127.0.0.1:{self.port}/{path}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._socks += [client, upstream]
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def mend(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        with contextlib.suppress(OSError):
            self._server.close()
