"""One consuming connection per process: :class:`Inbox` (gevent processes: the bridge, a
call-control worker) and :class:`PollingInbox` (a plain blocking process: the CLI).

Subscriptions (a reply queue, the configuration broadcasts, the shared originate queue,
each call's control or event queue) are registered with :meth:`Inbox.subscribe` and
survive reconnects: after a lost connection the greenlet reconnects with back-off and
jitter and declares and consumes every live subscription again.

One greenlet reads the socket and runs the callbacks, so callbacks must be quick (hand the
message to a waiter or a queue). Subscribing and cancelling from other greenlets only
*writes* (``nowait`` methods) under a lock, so no two greenlets ever read the same socket.

A subscription with ``ack=True`` (a call's control queue) is consumed with acknowledgements:
a message is acknowledged once its handler returned, and given back to the queue
(``basic.reject`` with requeue) when the handler raised, so a command is never lost with
the process that received it. AMQP heartbeats every :data:`HEARTBEAT_S` seconds: RabbitMQ
notices a hung process (and requeues what it held) within about two of them.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import gevent.lock
from kombu import Connection

from whistle_tasks.core import amqp as wamqp
from whistle_tasks.core.config import redact_url
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

Handler = Callable[[dict[str, Any]], None]

#: AMQP heartbeat (seconds) of the gevent inbox
HEARTBEAT_S = 4


class GeventWaiter:
    """A one-shot result a greenlet waits on (``get`` raises ``TimeoutError``)."""

    __slots__ = ("_result",)

    def __init__(self) -> None:
        self._result = gevent.event.AsyncResult()

    def set(self, value: Any) -> None:  # noqa: ANN401
        self._result.set(value)

    def get(self, timeout: float) -> Any:  # noqa: ANN401
        try:
            return self._result.get(timeout=timeout)
        except gevent.Timeout:
            raise TimeoutError from None


@dataclass
class Subscription:
    queue: str
    bindings: list[tuple[str, str]]          # (exchange, routing key)
    handler: Handler
    exclusive: bool = True
    durable: bool = False
    auto_delete: bool = True
    arguments: dict[str, Any] = field(default_factory=dict)
    ack: bool = False                        # acknowledge after the handler (see above)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex)


class Inbox:
    def __init__(self, url: str, *, name: str = "inbox") -> None:
        self.url = url
        self.name = name
        self.subscriptions: dict[str, Subscription] = {}
        self._conn: Connection | None = None
        self._channel: Any = None
        self._lock = gevent.lock.RLock()
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False
        self.connected = False
        self.ready = gevent.event.Event()
        self.stats = {"received": 0, "undecodable": 0, "handler_errors": 0, "reconnects": 0,
                      "requeued": 0}

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(self, sub: Subscription) -> Subscription:
        """Declare, bind and consume ``sub`` now (if connected) and after every reconnect."""
        self.subscriptions[sub.tag] = sub
        if self.connected:
            try:
                with self._lock:
                    self._declare(sub)
            except Exception as exc:  # noqa: BLE001 - the reader notices and reconnects
                log.warning("%s: subscribe %s failed (%s); done again after reconnect",
                            self.name, sub.queue, exc)
        return sub

    def publish(self, body: bytes, exchange: str, key: str, *,
                headers: dict[str, Any] | None = None, **properties: Any) -> bool:  # noqa: ANN401
        """Publish on the consuming channel itself; False when not connected.

        AMQP keeps the order of one channel, so a message published here after
        :meth:`subscribe` is routed only once the new queue is declared and bound: the
        bridge announces a call's control queue this way (``route_win``, an originate's
        answer), and the commands that answer the announcement cannot arrive before the
        queue that takes them.
        """
        if not self.connected:
            return False
        from amqp import Message

        try:
            with self._lock:
                self._channel.basic_publish(
                    Message(body, content_type=wamqp.CONTENT_TYPE, content_encoding="utf-8",
                            application_headers=headers, **properties),
                    exchange=exchange, routing_key=key)
        except Exception as exc:  # noqa: BLE001 - the reader notices and reconnects
            log.warning("%s: publish to %s/%s failed: %s", self.name, exchange, key, exc)
            return False
        return True

    def cancel(self, tag: str, *, delete_queue: bool = False) -> None:
        sub = self.subscriptions.pop(tag, None)
        if sub is None or not self.connected:
            return
        try:
            with self._lock:
                self._channel.basic_cancel(sub.tag, nowait=True)
                if delete_queue:
                    self._channel.queue_delete(sub.queue, nowait=True)
        except Exception as exc:  # noqa: BLE001 - the connection is going anyway
            log.debug("%s: cancel %s: %s", self.name, sub.queue, exc)

    def _declare(self, sub: Subscription) -> None:
        ch = self._channel
        ch.queue_declare(sub.queue, durable=sub.durable, exclusive=sub.exclusive,
                         auto_delete=sub.auto_delete, arguments=sub.arguments or None,
                         nowait=True)
        for exchange, key in sub.bindings:
            ch.queue_bind(sub.queue, exchange, key, nowait=True)
        ch.basic_consume(sub.queue, consumer_tag=sub.tag, no_ack=not sub.ack, nowait=True,
                         callback=lambda message, s=sub: self._deliver(s, message))

    def _deliver(self, sub: Subscription, message: Any) -> None:  # noqa: ANN401
        self.stats["received"] += 1
        try:
            body = json.loads(message.body)
            if not isinstance(body, dict):
                raise ValueError(f"a JSON {type(body).__name__}, not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            self.stats["undecodable"] += 1
            log.error("%s: undecodable message on %s dropped: %s", self.name, sub.queue, exc)
            self._settle(sub, message, requeue=False)
            return
        try:
            sub.handler(body)
        except Exception as exc:  # noqa: BLE001 - logged; an acked subscription requeues
            self.stats["handler_errors"] += 1
            if sub.ack:
                self.stats["requeued"] += 1
                log.warning("%s: message on %s given back to the queue: %s", self.name,
                            sub.queue, exc)
                self._settle(sub, message, requeue=True)
                return
            log.exception("%s: handler for %s failed", self.name, sub.queue)
            return
        self._settle(sub, message, requeue=False)

    def _settle(self, sub: Subscription, message: Any, *, requeue: bool) -> None:  # noqa: ANN401
        if not sub.ack:
            return
        try:
            with self._lock:    # a py-amqp message: settled on its channel by its tag
                if requeue:
                    message.channel.basic_reject(message.delivery_tag, requeue=True)
                else:
                    message.channel.basic_ack(message.delivery_tag)
        except Exception as exc:  # noqa: BLE001 - the connection is going: RabbitMQ requeues
            log.warning("%s: could not settle a message of %s: %s", self.name, sub.queue, exc)

    def waiter(self) -> GeventWaiter:
        """Something a greenlet can wait on until a handler sets it."""
        return GeventWaiter()

    # -- the greenlet ----------------------------------------------------------------------
    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        self._stopping = True
        if self._greenlet is not None:
            self._greenlet.kill()
        self._close()

    def _run(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                self._connect()
                delay = 0.2
                checked = time.monotonic()
                while not self._stopping:
                    try:
                        self._conn.drain_events(timeout=1.0)  # type: ignore[union-attr]
                    except TimeoutError:
                        pass
                    if time.monotonic() - checked >= 1.0:
                        checked = time.monotonic()
                        with self._lock:   # a heartbeat out; raises when RabbitMQ is mute
                            self._conn.heartbeat_check()  # type: ignore[union-attr]
            except gevent.GreenletExit:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect whatever happened
                if self._stopping:
                    break
                if self.connected:
                    log.error("%s lost RabbitMQ (%s: %s); reconnecting", self.name,
                              type(exc).__name__, exc)
                self.connected = False
                self.ready.clear()
                self.stats["reconnects"] += 1
                self._close()
                gevent.sleep(random.uniform(0, delay))  # noqa: S311 - jitter
                delay = min(delay * 2, 10.0)

    def _connect(self) -> None:
        conn = Connection(self.url, heartbeat=HEARTBEAT_S, connect_timeout=5)
        conn.connect()
        wamqp.declare_exchanges(conn)
        with self._lock:
            self._conn = conn
            self._channel = conn.channel()
            for sub in list(self.subscriptions.values()):
                self._declare(sub)
            self.connected = True
        self.ready.set()
        log.info("%s connected to %s (%d subscriptions)", self.name, redact_url(self.url),
                 len(self.subscriptions))

    def _close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        wamqp.release_quietly(conn)


class PollingInbox:
    """The blocking counterpart of :class:`Inbox` for a process without gevent (the CLI):
    nothing runs in the background; waiting on a waiter reads the connection until the
    waiter is set or the time is up."""

    def __init__(self, url: str, *, name: str = "inbox") -> None:
        self.name = name
        self._conn = Connection(url, heartbeat=0, connect_timeout=5)
        self._conn.connect()
        wamqp.declare_exchanges(self._conn)
        self._channel = self._conn.channel()
        self.subscriptions: dict[str, Subscription] = {}

    def subscribe(self, sub: Subscription) -> Subscription:
        self.subscriptions[sub.tag] = sub
        ch = self._channel
        ch.queue_declare(sub.queue, durable=sub.durable, exclusive=sub.exclusive,
                         auto_delete=sub.auto_delete, arguments=sub.arguments or None)
        for exchange, key in sub.bindings:
            ch.queue_bind(sub.queue, exchange, key)
        ch.basic_consume(sub.queue, consumer_tag=sub.tag, no_ack=True,
                         callback=lambda message, s=sub: self._deliver(s, message))
        return sub

    def _deliver(self, sub: Subscription, message: Any) -> None:  # noqa: ANN401
        try:
            body = wamqp.decode_api(message.body)
        except (ValueError, UnicodeDecodeError) as exc:
            log.error("%s: undecodable message on %s dropped: %s", self.name, sub.queue, exc)
            return
        sub.handler(body)

    def waiter(self) -> PollingWaiter:
        return PollingWaiter(self)

    def pump(self, timeout: float) -> None:
        """Read what arrives within ``timeout`` seconds (handlers run here)."""
        try:
            self._conn.drain_events(timeout=max(timeout, 0.001))
        except TimeoutError:
            pass

    def close(self) -> None:
        wamqp.release_quietly(self._conn)


class PollingWaiter:
    """A waiter of a :class:`PollingInbox`: ``get`` reads the connection meanwhile."""

    _UNSET = object()

    def __init__(self, inbox: PollingInbox) -> None:
        self._inbox = inbox
        self._value: Any = self._UNSET

    def set(self, value: Any) -> None:  # noqa: ANN401
        self._value = value

    def get(self, timeout: float) -> Any:  # noqa: ANN401
        deadline = time.monotonic() + timeout
        while self._value is self._UNSET:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self._inbox.pump(min(left, 0.5))
        return self._value
