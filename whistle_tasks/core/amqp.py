"""AMQP: the exchanges, the encodings, and the one way a process publishes.

The topology and the routing keys are :mod:`schemas.keys` (pure); how each request kind is
addressed is its contract (:mod:`schemas.contracts`). This module turns them into AMQP:

* :data:`EXCHANGES`: the kombu declarations of ``targeted``, ``callmgr``, ``callevt``,
  ``callctl`` and ``configuration``.
* **API messages** (replies, events, commands, broadcasts) are compact JSON
  (:func:`encode_api`); **requests to whapps** are Celery task messages (protocol 2) named
  by their contract's task, with the API message as the only positional argument
  (:func:`encode_request`), so a whapp is a plain Celery task and its queue a binding.
* :class:`Publisher` is how a worker, the CLI or a tool publishes: one lean connection per
  process (``publish_api`` for an API message, ``send`` for a request by its contract).
  The switch bridge publishes through its confirming, buffering outbox instead
  (``switch_bridge.outbox``), which has the same two methods over the same encodings.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from amqp import Message
from kombu import Connection, Exchange, Queue, binding

from schemas import contracts, keys
from schemas.contract import Contract
from schemas.keys import whapp_key
from whistle_tasks.core.config import settings
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

TARGETED = Exchange(keys.TARGETED, type="direct", durable=True)
CALLMGR = Exchange(keys.CALLMGR, type="topic", durable=True)
CALLEVT = Exchange(keys.CALLEVT, type="topic", durable=True)
CALLCTL = Exchange(keys.CALLCTL, type="direct", durable=True)
CONFIGURATION = Exchange(keys.CONFIGURATION, type="topic", durable=True)
EXCHANGES = (TARGETED, CALLMGR, CALLEVT, CALLCTL, CONFIGURATION)

CONTENT_TYPE = "application/json"

# --- the whapps' queues -------------------------------------------------------------------

#: the whapps, one queue each
WHAPPS = ("registrar", "router", "callflow", "maintenance", "cdr", "notify")
#: whapp -> the callmgr keys its queue is bound to (besides whapp.<name>), from the contracts
WHAPP_BINDINGS: dict[str, tuple[str, ...]] = {w: contracts.bindings_of(w) for w in WHAPPS}
#: whapps that take route_win: their queue is also bound on `targeted` to its own name,
#: which is the Server-ID they put in a park route_resp (contracts.ROUTE_WIN)
ROUTE_WIN_WHAPPS = ("callflow",)


def whapp_queue(name: str) -> Queue:
    """The durable queue of one whapp with all its bindings."""
    bindings = [binding(CALLMGR, routing_key=key) for key in WHAPP_BINDINGS.get(name, ())]
    bindings.append(binding(CALLMGR, routing_key=whapp_key(name)))
    if name in ROUTE_WIN_WHAPPS:
        bindings.append(binding(TARGETED, routing_key=name))
    arguments = {"x-queue-type": "quorum"} if settings.quorum_queues else None
    return Queue(name, bindings=bindings, durable=True, queue_arguments=arguments)


# --- encoding -----------------------------------------------------------------------------

def encode_api(msg: dict[str, Any]) -> bytes:
    """The wire form of an API message (compact UTF-8 JSON; orjson: 6x json.dumps)."""
    try:
        return orjson.dumps(msg)
    except TypeError:  # a value orjson will not take (e.g. an int over 64 bits): stdlib
        return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_api(body: bytes | str | dict) -> dict[str, Any]:
    """Parse an API message body; raises ``ValueError`` for anything but a JSON object."""
    if isinstance(body, dict):
        return body
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError(f"API message is a JSON {type(value).__name__}, not an object")
    return value


def encode_request(task_name: str, msg: dict[str, Any],
                   origin: str = "") -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """A Celery protocol-2 task message carrying one API message.

    Returns ``(body, headers, properties)`` ready for ``basic_publish``: the bridge's outbox
    and :meth:`Publisher.send` both send requests this way.
    """
    task_id = msg.get("Msg-ID") or uuid.uuid4().hex
    headers = {
        "lang": "py", "task": task_name, "id": task_id, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": f"({task_name})", "kwargsrepr": "{}", "origin": origin,
        "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None,
        "stamps": {},
    }
    properties = {"correlation_id": task_id, "reply_to": ""}
    body = json.dumps([[msg], {}, {"callbacks": None, "errbacks": None, "chain": None,
                                   "chord": None}],
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return body, headers, properties


# --- publishing ---------------------------------------------------------------------------

class Publisher:
    """A process's lean publishing connection (py-amqp ``basic_publish``, no kombu wrapping).

    kombu's ``Producer.publish`` costs several times the frame write itself (serializer
    registry, entity copies, ``ensure`` wrappers); on the hot path (a whapp's answer, ~1,000
    a second) that was a third of a worker's time. This keeps one connection per process,
    declares the exchanges once, and writes pre-encoded bodies under a lock (safe for
    threads and greenlets). A lost connection is re-opened and the publish retried
    (``retries`` times, with back-off); after that the error is raised to the caller.
    """

    def __init__(self, url: str, *, retries: int = 5, confirm: bool = False) -> None:
        self.url = url
        self.retries = retries
        self.confirm = confirm
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._channel: Any = None
        self._pid = 0

    def _channel_now(self) -> Any:  # noqa: ANN401
        if self._channel is not None and self._pid == os.getpid():
            return self._channel
        options = {"confirm_publish": True} if self.confirm else {}
        self._conn = Connection(self.url, transport_options=options, heartbeat=0)
        self._conn.ensure_connection(max_retries=self.retries, interval_start=0.1,
                                     interval_step=0.5, interval_max=2.0)
        declare_exchanges(self._conn)
        self._channel = self._conn.default_channel
        self._pid = os.getpid()
        return self._channel

    def _reset(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        release_quietly(conn)

    def publish(self, body: bytes, exchange: str, key: str, *,
                headers: dict[str, Any] | None = None, persistent: bool = False,
                **properties: Any) -> None:  # noqa: ANN401
        message = Message(body, content_type=CONTENT_TYPE, content_encoding="utf-8",
                          application_headers=headers, delivery_mode=2 if persistent else 1,
                          **properties)
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                with self._lock:
                    self._channel_now().basic_publish(message, exchange=exchange,
                                                      routing_key=key)
                return
            except (OSError, *Connection().connection_errors,
                    *Connection().channel_errors) as exc:
                with self._lock:
                    self._reset()
                if attempt == self.retries:
                    raise
                log.warning("publish to %s/%s failed (%s), retrying", exchange, key,
                            type(exc).__name__)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def publish_api(self, msg: dict[str, Any], exchange: Exchange | str, key: str, *,
                    persistent: bool = False) -> None:
        """Publish one API message."""
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        self.publish(encode_api(msg), name, key, persistent=persistent)

    def send(self, contract: Contract, msg: dict[str, Any], *, to: str | None = None) -> None:
        """Send a request where its contract says (``to``: the recipient of a targeted one)."""
        exchange, key, task = contract.address(msg, to)
        if task is None:
            self.publish_api(msg, exchange, key, persistent=contract.persistent)
            return
        body, headers, properties = encode_request(task, msg)
        self.publish(body, exchange, key, headers=headers, persistent=contract.persistent,
                     **properties)

    def close(self) -> None:
        with self._lock:
            self._reset()


def release_quietly(connection: Connection | None) -> None:
    """Close a connection that may already be broken (nothing to report if it was)."""
    if connection is None:
        return
    try:
        connection.release()
    except Exception:  # noqa: BLE001, S110 - it is broken already; we are dropping it
        pass


def declare_exchanges(connection: Connection, exchanges: Iterable[Exchange] = EXCHANGES) -> None:
    """Declare the Whistle exchanges (idempotent)."""
    channel = connection.default_channel
    for exchange in exchanges:
        exchange(channel).declare()
