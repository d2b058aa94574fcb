"""AMQP topology and the one way to put a Whistle message on the wire (the seed's whistle_amqp).

Exchanges (docs/api.md, "Exchanges, queues and routing keys"):

* ``targeted`` (direct): replies; routing key = the request's ``Server-ID``.
* ``callmgr`` (topic): requests to whapps (``authn.req.<realm>``, ``route.req.<realm>``,
  ``registration.*``) and ``originate.resource.req`` to the bridges.
* ``callevt`` (topic): call events, ``call.<EVENT_NAME>.<call-id>``.
* ``callctl`` (direct): call-control commands, key = the call's control queue.
* ``configuration`` (topic): document changes, ``doc.<action>.<type>.<realm>.<id>``; every
  bridge and worker drops what it cached from the changed document.

Two kinds of message travel:

* **API messages** (JSON objects of :mod:`schemas`): replies, events, commands, broadcasts.
  :func:`encode_api` is their one encoding and :func:`publish` their one publish helper.
* **Requests to whapps** are Celery task messages (protocol 2) named
  ``<whapp>.<event name>`` with the API message as the only positional argument, sent on
  ``callmgr`` with the docs/api.md routing key (:func:`encode_request`, :func:`send_request`).
  Whapp queues are bound to those keys, so sharding by realm is a binding change.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from kombu import Connection, Exchange, Producer

TARGETED = Exchange("targeted", type="direct", durable=True)
CALLMGR = Exchange("callmgr", type="topic", durable=True)
CALLEVT = Exchange("callevt", type="topic", durable=True)
CALLCTL = Exchange("callctl", type="direct", durable=True)
CONFIGURATION = Exchange("configuration", type="topic", durable=True)
EXCHANGES = (TARGETED, CALLMGR, CALLEVT, CALLCTL, CONFIGURATION)

CONTENT_TYPE = "application/json"
ORIGINATE_KEY = "originate.resource.req"

_KEEP = re.compile(r"[A-Za-z0-9\-~_]")
_ALL_KEPT = re.compile(r"[A-Za-z0-9\-~_]*").fullmatch


def encode_key_word(word: str) -> str:
    """One routing-key word, encoded as docs/api.md says.

    Keep ``[A-Za-z0-9-~_]``, space becomes ``+``, ``.`` becomes ``%2E`` and every other
    byte of the UTF-8 encoding ``%XX`` (upper-case hex); a lone ``*`` or ``#`` stays, so it
    still works as a wildcard in a binding.
    """
    if word in ("*", "#") or _ALL_KEPT(word):
        return word
    out = []
    for ch in str(word):
        if _KEEP.match(ch):
            out.append(ch)
        elif ch == " ":
            out.append("+")
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def routing_key(*words: str) -> str:
    """Join already-fixed words (``authn``, ``req``) and encoded variable ones with dots."""
    return ".".join(words)


def authn_req_key(realm: str) -> str:
    return routing_key("authn", "req", encode_key_word(realm))


def route_req_key(realm: str) -> str:
    return routing_key("route", "req", encode_key_word(realm))


def reg_success_key(realm: str, user: str) -> str:
    return routing_key("registration", "success", encode_key_word(realm), encode_key_word(user))


def reg_query_key(realm: str, user: str | None = None) -> str:
    return routing_key("registration", "query", encode_key_word(realm),
                       encode_key_word(user) if user else "*")


def reg_flush_key(realm: str) -> str:
    return routing_key("registration", "flush", encode_key_word(realm))


def call_event_key(event_name: str, call_id: str) -> str:
    return routing_key("call", encode_key_word(event_name), encode_key_word(call_id))


def conf_change_key(action: str, doc_type: str, realm: str, doc_id: str) -> str:
    return routing_key("doc", encode_key_word(action), encode_key_word(doc_type),
                       encode_key_word(realm or "_"), encode_key_word(doc_id))


def whapp_key(whapp: str) -> str:
    """Key of a whapp's internal tasks (beat, admin): ``whapp.<name>``."""
    return routing_key("whapp", encode_key_word(whapp))


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

    Returns ``(body, headers, properties)`` ready for ``basic_publish``. The bridge uses
    this with its own confirming publisher; :func:`send_request` uses it through kombu.
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

def publish(producer: Producer, msg: dict[str, Any], exchange: Exchange | str,
            key: str, *, persistent: bool = False, **kwargs: Any) -> None:
    """Publish one API message (the one publish helper for API messages)."""
    producer.publish(
        encode_api(msg), exchange=exchange, routing_key=key, content_type=CONTENT_TYPE,
        content_encoding="utf-8", delivery_mode=2 if persistent else 1, retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5},
        declare=[exchange] if isinstance(exchange, Exchange) else None, **kwargs,
    )


def send_request(producer: Producer, task_name: str, msg: dict[str, Any], key: str,
                 *, persistent: bool = False) -> None:
    """Send an API request to the whapp that serves ``task_name`` (a Celery task) on callmgr."""
    body, headers, properties = encode_request(task_name, msg)
    producer.publish(
        body, exchange=CALLMGR, routing_key=key, headers=headers,
        content_type=CONTENT_TYPE, content_encoding="utf-8",
        delivery_mode=2 if persistent else 1, declare=[CALLMGR], retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5},
        **properties,
    )


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
        import threading

        self.url = url
        self.retries = retries
        self.confirm = confirm
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._channel: Any = None
        self._pid = 0

    def _channel_now(self) -> Any:  # noqa: ANN401
        import os

        if self._channel is not None and self._pid == os.getpid():
            return self._channel
        options = {"confirm_publish": True} if self.confirm else {}
        self._conn = Connection(self.url, transport_options=options, heartbeat=0)
        self._conn.ensure_connection(max_retries=self.retries)
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
        import time

        from amqp import Message

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
                from whistle_tasks.util.log import get_logger

                get_logger(__name__).warning("publish to %s/%s failed (%s), retrying", exchange,
                                             key, type(exc).__name__)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def publish_api(self, msg: dict[str, Any], exchange: Exchange | str, key: str, *,
                    persistent: bool = False) -> None:
        """Publish one API message."""
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        self.publish(encode_api(msg), name, key, persistent=persistent)

    def send_request(self, task_name: str, msg: dict[str, Any], key: str, *,
                     persistent: bool = False) -> None:
        """Send an API request as the Celery task ``task_name`` on callmgr."""
        body, headers, properties = encode_request(task_name, msg)
        self.publish(body, CALLMGR.name, key, headers=headers, persistent=persistent,
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
