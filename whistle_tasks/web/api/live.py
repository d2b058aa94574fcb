"""Live events for the API's streams (Kazoo's blackhole): one AMQP consumer per process.

A greenlet of each API worker process binds one exclusive queue to the call events of a
call's life (``callevt``: create, answer, bridge, hangup), to the registrations
(``callmgr``: ``registration.success.*.*``, the same keys the registrar's queue is bound
to) and to the change broadcasts (``configuration``, so a revoked key is forgotten at
once). Each event is handed to the streams of its account only: the account of a call
event is its ``Custom-Channel-Vars`` ``Account-ID``; of a registration, its
``Account-ID`` or else the account of its realm. An event of no account reaches no one.

A stream is a bounded queue: a client that does not read is cut off (``overflow``)
rather than letting the process's memory grow.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import gevent
import gevent.event
import gevent.queue
from kombu import Connection, Queue, binding

from whistle_tasks.core import amqp, changes
from whistle_tasks.core.config import settings
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts

log = get_logger(__name__)

CALL_EVENTS = ("CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_ANSWER", "CHANNEL_BRIDGE",
               "CHANNEL_HANGUP_COMPLETE")
STREAM_SIZE = 1000
OVERFLOW = object()


def call_view(msg: dict[str, Any]) -> dict[str, Any]:
    """What a stream tells of a call event (no channel variables beyond the account's)."""
    out = {"event": msg.get("Event-Name"), "call_id": msg.get("Call-ID"),
           "timestamp": msg.get("Timestamp")}
    for source, name in (("Call-Direction", "direction"), ("Caller-ID-Number", "caller_id_number"),
                         ("Caller-ID-Name", "caller_id_name"),
                         ("Callee-ID-Number", "callee_id_number"),
                         ("Other-Leg-Call-ID", "other_leg_call_id"),
                         ("Hangup-Cause", "hangup_cause"),
                         ("Billing-Seconds", "billing_seconds")):
        if msg.get(source) not in (None, ""):
            out[name] = msg[source]
    ccvs = msg.get("Custom-Channel-Vars") or {}
    if ccvs.get("Dialled-Number"):
        out["dialled_number"] = ccvs["Dialled-Number"]
    return out


def registration_view(msg: dict[str, Any]) -> dict[str, Any]:
    return {"event": "deregistered" if str(msg.get("Expires")) == "0" else "registered",
            "username": str(msg.get("Username", "")).lower(),
            "realm": str(msg.get("Realm", "")).lower(), "contact": msg.get("Contact", ""),
            "user_agent": msg.get("User-Agent", ""), "expires": msg.get("Expires"),
            "timestamp": msg.get("Event-Timestamp")}


class Hub:
    """The process's consumer and the streams it feeds, by account."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or settings.amqp_url
        self.streams: dict[str, set[gevent.queue.Queue]] = defaultdict(set)
        self.greenlet: gevent.Greenlet | None = None
        self.ready = gevent.event.Event()
        self.stats = {"delivered": 0, "unowned": 0, "overflow": 0}

    def subscribe(self, account_id: str) -> gevent.queue.Queue:
        self._start()
        stream: gevent.queue.Queue = gevent.queue.Queue(maxsize=STREAM_SIZE)
        self.streams[account_id].add(stream)
        return stream

    def unsubscribe(self, account_id: str, stream: gevent.queue.Queue) -> None:
        self.streams[account_id].discard(stream)
        if not self.streams[account_id]:
            self.streams.pop(account_id, None)

    def _start(self) -> None:
        if self.greenlet is None or self.greenlet.dead:
            self.ready = gevent.event.Event()
            self.greenlet = gevent.spawn(self._run)
            self.ready.wait(5)

    def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                self._consume()
            except Exception as exc:  # noqa: BLE001 - the hub outlives a broken connection
                log.warning("live events: %s: %s; reconnecting in %.1f s",
                            type(exc).__name__, exc, delay)
                gevent.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _consume(self) -> None:
        bindings = [binding(amqp.CALLEVT, routing_key=f"call.{name}.*") for name in CALL_EVENTS]
        bindings.append(binding(amqp.CALLMGR, routing_key="registration.success.*.*"))
        bindings.append(binding(amqp.CONFIGURATION, routing_key="doc.#"))
        queue = Queue("", bindings=bindings, exclusive=True, auto_delete=True, durable=False)
        with Connection(self.url, heartbeat=30) as conn:
            conn.ensure_connection(max_retries=3)
            amqp.declare_exchanges(conn)
            channel = conn.channel()
            bound = queue(channel)
            bound.declare()
            channel.basic_consume(bound.name, no_ack=True, callback=self._on_message)
            self.ready.set()
            last = time.monotonic()
            while True:
                try:
                    conn.drain_events(timeout=5)
                except TimeoutError:
                    pass
                if time.monotonic() - last > 10:
                    conn.heartbeat_check()
                    last = time.monotonic()

    def _on_message(self, message: Any) -> None:  # noqa: ANN401
        exchange = message.delivery_info.get("exchange")
        try:
            body = json.loads(message.body)
        except (ValueError, UnicodeDecodeError):
            return
        if exchange == amqp.CONFIGURATION.name:
            changes.apply(body)
            return
        if exchange == amqp.CALLMGR.name:   # a reg_success, as the registrar's Celery task
            msg = body[0][0] if isinstance(body, list) and body and body[0] else body
            if not isinstance(msg, dict):
                return
            account = msg.get("Account-ID")
            if not account and msg.get("Realm"):
                found = accounts.account_by_realm(str(msg["Realm"]))
                account = found["id"] if found else None
            self._deliver(account, "registration", registration_view(msg))
            return
        if isinstance(body, dict):
            ccvs = body.get("Custom-Channel-Vars") or {}
            self._deliver(ccvs.get("Account-ID"), "call", call_view(body))

    def _deliver(self, account: Any, kind: str, data: dict[str, Any]) -> None:  # noqa: ANN401
        if not account:
            self.stats["unowned"] += 1
            return
        for stream in list(self.streams.get(str(account), ())):
            try:
                stream.put_nowait((kind, data))
                self.stats["delivered"] += 1
            except gevent.queue.Full:
                self.stats["overflow"] += 1
                while not stream.empty():   # cut the slow reader off: it is told so
                    stream.get_nowait()
                stream.put_nowait((OVERFLOW, {}))


HUB = Hub()
