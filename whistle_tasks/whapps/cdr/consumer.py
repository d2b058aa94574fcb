"""The cdr worker's consumer of call events: hangups → records in bulk; the live index.

Call events are bare API messages on ``callevt``, not Celery tasks, so a Celery worker
cannot run them as tasks. A worker that consumes the ``cdr`` queue also runs this
consumer (:class:`HangupConsumerStep`, a worker bootstep) in a thread of its own with its
own connection:

* ``cdr.hangups`` (durable): bound to ``call.CHANNEL_HANGUP_COMPLETE.*``. Messages are
  taken ``batch`` at a time (or what arrived within ``linger`` seconds), made into records
  and written with one ``_bulk_docs`` per monthly database; only then are they
  acknowledged (one ``basic.ack`` with ``multiple``). A CouchDB that fails keeps them
  unacknowledged: the batch is retried with back-off, and a lost connection gives them
  back to RabbitMQ (redelivered, written once: records are idempotent by leg).
* ``cdr.calls`` (durable, messages expire after a minute): the events of a call's life
  (``live.BINDINGS``), applied to the Redis index of calls in progress as they come,
  acknowledged after.

Several cdr workers share both queues (RabbitMQ spreads the messages).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from kombu import Connection, Queue, binding

from whistle_tasks.core import amqp
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import CouchError
from whistle_tasks.core.log import get_logger
from whistle_tasks.whapps.cdr import live, record, writer

log = get_logger(__name__)

HANGUP_QUEUE = "cdr.hangups"
CALLS_QUEUE = "cdr.calls"
HANGUP_BINDING = "call.CHANNEL_HANGUP_COMPLETE.*"
LIVE_LINGER = 0.05  # seconds the live index waits to apply events together


def hangup_queue() -> Queue:
    args = {"x-queue-type": "quorum"} if settings.quorum_queues else None
    return Queue(HANGUP_QUEUE, bindings=[binding(amqp.CALLEVT, routing_key=HANGUP_BINDING)],
                 durable=True, queue_arguments=args)


def calls_queue() -> Queue:
    return Queue(CALLS_QUEUE, bindings=[binding(amqp.CALLEVT, routing_key=key)
                                        for key in live.BINDINGS],
                 durable=True, queue_arguments={"x-message-ttl": 60_000})


class HangupConsumer:
    """The consumer loop (a thread): see the module docstring."""

    def __init__(self, url: str | None = None, *, batch: int | None = None,
                 linger: float | None = None, live_index: bool = True) -> None:
        self.url = url or settings.amqp_url
        self.batch = batch or settings.cdr_batch
        self.linger = (settings.cdr_linger_ms / 1000.0) if linger is None else linger
        self.live_index = live_index
        self.stats = {"events": 0, "written": 0, "duplicates": 0, "partial": 0, "retries": 0,
                      "live": 0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: list[tuple[Any, Any]] = []   # (message, decoded body or raw)
        self._live: list[tuple[Any, Any]] = []
        self._oldest = 0.0
        self._live_oldest = 0.0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> HangupConsumer:
        self._thread = threading.Thread(target=self.run, name="cdr-consumer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._consume()
                delay = 0.5
            except Exception as exc:  # noqa: BLE001 - the loop outlives a broken connection
                self._pending.clear()   # unacked: RabbitMQ redelivers them
                self._live.clear()
                log.warning("cdr consumer: %s: %s; reconnecting in %.1f s",
                            type(exc).__name__, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    # -- the loop ---------------------------------------------------------------------------
    def _consume(self) -> None:
        with Connection(self.url, heartbeat=30) as conn:
            conn.ensure_connection(max_retries=3)
            amqp.declare_exchanges(conn)
            channel = conn.channel()
            channel.basic_qos(0, self.batch * 2, False)
            hangup_queue()(channel).declare()
            tags = [(channel, channel.basic_consume(HANGUP_QUEUE, callback=self._on_hangup))]
            # the live index on a channel of its own: an ack of several hangups at once
            # ("multiple") must never cover a live event, nor the other way round
            live_channel = None
            if self.live_index:
                live_channel = conn.channel()
                live_channel.basic_qos(0, 1000, False)
                calls_queue()(live_channel).declare()
                tags.append((live_channel, live_channel.basic_consume(
                    CALLS_QUEUE, callback=self._on_call)))
            log.info("cdr consumer: consuming %s (batch %d, linger %.0f ms)",
                     ", ".join([HANGUP_QUEUE] + ([CALLS_QUEUE] if self.live_index else [])),
                     self.batch, self.linger * 1000)
            last_heartbeat = time.monotonic()
            while not self._stop.is_set():
                try:
                    conn.drain_events(timeout=self._wait_for())
                except TimeoutError:
                    pass
                if time.monotonic() - last_heartbeat > 10:
                    conn.heartbeat_check()
                    last_heartbeat = time.monotonic()
                if self._live and (len(self._live) >= 500
                                   or time.monotonic() - self._live_oldest >= LIVE_LINGER):
                    self._flush_live(live_channel)
                if self._pending and (len(self._pending) >= self.batch
                                      or time.monotonic() - self._oldest >= self.linger):
                    self._flush(channel)
            if self._pending:
                self._flush(channel)
            for ch, tag in tags:
                with contextlib.suppress(Exception):
                    ch.basic_cancel(tag)

    def _wait_for(self) -> float:
        waits = [1.0]
        if self._pending:
            waits.append(self.linger - (time.monotonic() - self._oldest))
        if self._live:
            waits.append(LIVE_LINGER - (time.monotonic() - self._live_oldest))
        return max(0.001, min(waits))

    def _on_hangup(self, message: Any) -> None:  # noqa: ANN401
        if not self._pending:
            self._oldest = time.monotonic()
        self._pending.append((message, _decode(message.body)))
        self.stats["events"] += 1

    def _on_call(self, message: Any) -> None:  # noqa: ANN401
        if not self._live:
            self._live_oldest = time.monotonic()
        self._live.append((message, _decode(message.body)))

    def _flush(self, channel: Any) -> None:  # noqa: ANN401
        """Write the pending records; ack them only once written (retry until then)."""
        pending, self._pending = self._pending, []
        records = [record.from_event(body) for _, body in pending]
        delay = 0.2
        while True:
            try:
                outcome = writer.write(records)
            except CouchError as exc:
                outcome = None
                problem = str(exc)
            else:
                problem = "; ".join(reason for _, reason in outcome.failed[:3])
                if not outcome.failed:
                    break
                records = [r for r, _ in outcome.failed]
                self._count(outcome)
            self.stats["retries"] += 1
            log.error("cdr: %d records not written (%s); retrying in %.1f s", len(records),
                      problem, delay)
            if self._stop.wait(delay):
                return  # stopping: unacked, redelivered to the next worker
            delay = min(delay * 2, 10.0)
            if outcome is None:
                continue
        self._count(outcome)
        channel.basic_ack(pending[-1][0].delivery_tag, multiple=True)

    def _count(self, outcome: writer.Outcome) -> None:
        self.stats["written"] += outcome.written
        self.stats["duplicates"] += outcome.duplicates
        self.stats["partial"] += outcome.partial

    def _flush_live(self, channel: Any) -> None:  # noqa: ANN401
        if not self._live:
            return
        items, self._live = self._live, []
        try:
            self.stats["live"] += live.apply([b for _, b in items if isinstance(b, dict)])
        except Exception as exc:  # noqa: BLE001 - the index is best effort, never a crash
            log.warning("live calls index not updated (%s): %s", type(exc).__name__, exc)
        channel.basic_ack(items[-1][0].delivery_tag, multiple=True)


def _decode(body: Any) -> Any:  # noqa: ANN401
    """The message as a dict, or the raw body when it is not a JSON object (still a CDR)."""
    try:
        return amqp.decode_api(body)
    except (ValueError, UnicodeDecodeError):
        return body


try:  # the worker bootstep (only a worker process loads celery.bootsteps)
    from celery import bootsteps
except ImportError:  # pragma: no cover
    bootsteps = None


if bootsteps is not None:
    class HangupConsumerStep(bootsteps.StartStopStep):
        """Runs :class:`HangupConsumer` in a worker that consumes the ``cdr`` queue."""

        def __init__(self, worker: Any, **kwargs: Any) -> None:  # noqa: ANN401
            super().__init__(worker, **kwargs)
            self.consumer: HangupConsumer | None = None

        def start(self, worker: Any) -> None:  # noqa: ANN401
            queues = {q.name for q in worker.app.amqp.queues.consume_from.values()}
            if "cdr" in queues:
                self.consumer = HangupConsumer().start()

        def stop(self, worker: Any) -> None:  # noqa: ANN401
            if self.consumer is not None:
                self.consumer.stop()
