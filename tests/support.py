"""What integration tests share: processes of the platform, a request/reply client, cleanup.

Everything runs against the real services, in the test vhost / Redis db / CouchDB prefix
that ``conftest.py`` put in the environment; processes started here inherit it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
import requests
from kombu import Connection, Consumer, Producer, Queue

from schemas.contract import Contract

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
VENV_BIN = Path(sys.executable).parent


def unique(prefix: str = "t") -> str:
    """A short unique name for realms, users... so tests never see each other's data."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0,
               interval: float = 0.05, what: str = "condition") -> Any:  # noqa: ANN401
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Process:
    """A platform process (worker, beat, bridge) with its output in test-output/."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None,
                 ready: str | None = None, ready_timeout: float = 30.0) -> None:
        OUTPUT.mkdir(exist_ok=True)
        self.name = name
        self.log_path = OUTPUT / f"{name}-{os.getpid()}.log"  # pid: parallel runs never clash
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})},
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if ready:
            wait_until(lambda: ready in self.output() or self.proc.poll() is not None,
                       ready_timeout, what=f"{name} to print {ready!r}")
            if self.proc.poll() is not None:
                raise AssertionError(f"{name} exited early:\n{self.output()[-3000:]}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def start_worker(queues: str = "registrar", name: str | None = None,
                 env: dict[str, str] | None = None, pool: str = "gevent",
                 concurrency: int = 100) -> Process:
    name = name or f"worker-{queues.replace(',', '-')}-{uuid.uuid4().hex[:6]}"
    # the node name is unique per test run: a worker name is an exclusive queue in the vhost
    argv = [str(VENV_BIN / "celery"), "-A", "whistle_tasks", "worker", "-Q", queues,
            "-P", pool, "-c", str(concurrency), "-n", f"{name}-{os.getpid()}@%h", "-l", "INFO",
            "--without-mingle", "--without-gossip"]
    return Process(name, argv, env=env, ready="ready.")


class Client:
    """A separate AMQP client: sends Whistle requests by their contracts and collects the
    answers that come back on its own ``Server-ID`` queue (every answer, by ``Msg-ID``, so
    a test may wait for one again after a wait that timed out)."""

    def __init__(self, url: str | None = None) -> None:
        from whistle_tasks.core import amqp
        from whistle_tasks.core.config import settings

        self.amqp = amqp
        self.conn = Connection(url or settings.amqp_url)
        self.server_id = f"test-client-{uuid.uuid4().hex}"
        self.channel = self.conn.channel()
        queue = Queue(self.server_id, exchange=amqp.TARGETED, routing_key=self.server_id,
                      exclusive=True, auto_delete=True, durable=False)
        self.replies: dict[str, dict[str, Any]] = {}
        self.consumer = Consumer(self.channel, queues=[queue], callbacks=[self._on_reply],
                                 accept=["json"], no_ack=True)
        self.consumer.consume()
        self.publisher = amqp.Publisher(url or settings.amqp_url)

    def _on_reply(self, body: Any, message: Any) -> None:  # noqa: ANN401
        self.replies[body.get("Msg-ID", "")] = body

    def send(self, contract: Contract, msg: dict[str, Any]) -> str:
        """Send ``msg`` (its Server-ID set to ours) by ``contract``; returns its Msg-ID."""
        msg = dict(msg)
        msg.setdefault("Msg-ID", uuid.uuid4().hex)
        msg["Server-ID"] = self.server_id
        self.publisher.send(contract, msg)
        return msg["Msg-ID"]

    def send_raw(self, body: bytes, key: str, *, task: str | None = None,
                 content_type: str = "application/json") -> None:
        """Publish arbitrary bytes on callmgr (for malformed-message tests)."""
        headers = {"task": task, "id": uuid.uuid4().hex, "lang": "py"} if task else {}
        Producer(self.channel).publish(body, exchange=self.amqp.CALLMGR, routing_key=key,
                                       headers=headers, content_type=content_type,
                                       content_encoding="utf-8", declare=[self.amqp.CALLMGR])

    def wait(self, msg_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while msg_id not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no reply to {msg_id} within {timeout}s")
            with contextlib.suppress(TimeoutError, OSError):
                self.conn.drain_events(timeout=min(left, 0.5))
        return self.replies.pop(msg_id)

    def request(self, contract: Contract, msg: dict[str, Any],
                timeout: float = 10.0) -> dict[str, Any]:
        return self.wait(self.send(contract, msg), timeout)

    def close(self) -> None:
        self.publisher.close()
        with contextlib.suppress(Exception):
            self.conn.release()


def reset_services() -> None:
    """Empty the test resources: CouchDB databases with the test prefix, Redis test db,
    the whapp queues of the test vhost."""
    from whistle_tasks.core.config import settings

    assert settings.couch_prefix, "refusing to wipe CouchDB without a test prefix"
    base = settings.couch_url.rstrip("/")
    for name in requests.get(f"{base}/_all_dbs", timeout=10).json():
        if name.startswith(settings.couch_prefix):
            requests.delete(f"{base}/{requests.utils.quote(name, safe='')}", timeout=30)
    assert not settings.redis_url.endswith("/0"), "refusing to flush Redis db 0"
    redis.Redis.from_url(settings.redis_url).flushdb()
    assert not settings.amqp_url.endswith("//"), "refusing to purge the default vhost"
    with Connection(settings.amqp_url) as conn:
        channel = conn.channel()
        from whistle_tasks.core.amqp import WHAPP_BINDINGS, whapp_queue

        for whapp in WHAPP_BINDINGS:
            queue = whapp_queue(whapp)(channel)
            queue.declare()
            queue.purge()


@contextlib.contextmanager
def running(*processes: Process) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.stop()
