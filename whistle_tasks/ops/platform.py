"""Operating a running platform: who consumes which whapp queue, and switching whapps on/off.

The library behind ``whistle status`` and ``whistle app`` (no click here, so tests and other
tools call it directly). It reads four things, each from the component that knows it:

* the whapp queues' depth and consumer count: an AMQP *passive* ``queue_declare`` (RabbitMQ's
  management plugin is not assumed), which neither creates nor changes a queue;
* which worker consumes which queue: Celery's remote control (``inspect().active_queues()``,
  a broadcast on the ``celery.pidbox`` exchange that every live worker answers);
* the FreeSWITCH nodes as the switch bridge sees them: its ``/health`` and ``/metrics``;
* the number of registrations: the ``registrations/by_realm`` view, reduced (``_count``).

Stopping a whapp (the seed's ``whapps_controller:stop_app``) is ``cancel_consumer`` on the
workers that consume its queue: they stay up, the queue stays (durable, with its bindings)
and collects the requests until a ``start`` makes them consume it again. It lasts until the
worker process restarts (a restarted worker consumes the queues of its ``-Q`` again).

Starting uses ``add_consumer``. A Whistle worker knows every whapp queue (``task_queues``),
so it re-declares the queue exactly as configured, with all its bindings (a declare with the
same arguments changes nothing; bindings are only ever added, never removed by a declare).
The exchange and routing key we pass as well (``callmgr``, ``whapp.<name>``, durable) are
only used by a worker that does not know the queue, and match the existing queue, so even
then no binding is lost and no argument differs.

Replies of ``add_consumer``/``cancel_consumer`` only say the command was queued in the
worker's loop: the result is confirmed by asking ``active_queues`` again.
"""

from __future__ import annotations

import re
import time
import urllib.request
from base64 import b64encode
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

import redis

from schemas.keys import whapp_key
from whistle_tasks.core import amqp, leases
from whistle_tasks.core.amqp import WHAPP_BINDINGS, whapp_queue
from whistle_tasks.core.config import redact_url, settings
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

DEFAULT_TIMEOUT = 1.0
REALMS_SHOWN = 10


class ControlError(Exception):
    """A precise, printable reason (secrets masked) why an operation could not be done."""


class UnknownWhapp(ControlError):
    """A whapp name that is not one of ``WHAPP_BINDINGS``."""


# -- whapps and their queues --------------------------------------------------------------


def whapp_names() -> list[str]:
    return list(WHAPP_BINDINGS)


def check_whapp(name: str) -> str:
    """``name`` if it is a whapp, else :class:`UnknownWhapp` naming the known ones."""
    if name not in WHAPP_BINDINGS:
        raise UnknownWhapp(f"unknown whapp {name!r}: one of {', '.join(WHAPP_BINDINGS)}")
    return name


def queue_bindings(name: str) -> list[tuple[str, str]]:
    """``[(exchange, routing key)]`` of a whapp's queue, as configured (``whapp_queue``)."""
    queue = whapp_queue(check_whapp(name))
    return sorted((b.exchange.name if b.exchange is not None else "", b.routing_key or "")
                  for b in queue.bindings)


def _mask(text: str, url: str) -> str:
    """Mask the URL's password wherever it shows up in a message."""
    password = urlsplit(url).password
    text = text.replace(url, redact_url(url))
    return text.replace(password, "****") if password else text


@dataclass(frozen=True)
class QueueState:
    """A queue as RabbitMQ reports it; ``messages``/``consumers`` None when it is missing."""

    name: str
    messages: int | None
    consumers: int | None
    problem: str = ""


def queue_states(names: Iterable[str], url: str | None = None,
                 timeout: float = 3.0) -> dict[str, QueueState]:
    """Passive ``queue_declare`` of each queue: ready messages and consumers.

    A missing queue is reported (``problem``), not created. Raises :class:`ControlError`
    when RabbitMQ cannot be reached.
    """
    from amqp.exceptions import AMQPError, NotFound
    from kombu import Connection

    url = url or settings.amqp_url
    out: dict[str, QueueState] = {}
    conn = Connection(url, connect_timeout=timeout, heartbeat=0)
    try:
        try:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                   timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - reported as one precise error
            cause = exc.__cause__ or exc
            raise ControlError(f"RabbitMQ does not answer at {redact_url(url)}: "
                               f"{_mask(str(cause) or repr(cause), url)}") from None
        try:
            for name in names:
                out[name] = _queue_state(conn, name, NotFound)
        except (AMQPError, OSError) as exc:    # e.g. the broker restarting meanwhile
            raise ControlError(f"RabbitMQ at {redact_url(url)} failed: "
                               f"{_mask(str(exc) or repr(exc), url)}") from None
    finally:
        conn.release()
    return out


def _queue_state(conn: Any, name: str, not_found: type[Exception]) -> QueueState:  # noqa: ANN401
    channel = conn.channel()   # a failed passive declare closes its channel: one each
    try:
        _, messages, consumers = channel.queue_declare(queue=name, passive=True)
        return QueueState(name, int(messages), int(consumers))
    except not_found:
        return QueueState(name, None, None,
                          "queue does not exist (no worker has declared it yet)")
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001, S110 - already closed by the broker
            pass


# -- workers (Celery remote control) ------------------------------------------------------


def _app() -> Any:  # noqa: ANN401 - the Celery app
    from whistle_tasks.celery import app

    return app


def _remote(what: str, call: Any) -> Any:  # noqa: ANN401
    """Run a remote-control call; a broker failure becomes a masked :class:`ControlError`."""
    from amqp.exceptions import AMQPError
    from kombu.exceptions import OperationalError

    try:
        return call()
    except (OperationalError, OSError, AMQPError) as exc:   # e.g. the broker restarting
        url = settings.amqp_url
        raise ControlError(f"{what}: RabbitMQ at {redact_url(url)} failed: "
                           f"{_mask(str(exc) or repr(exc), url)}") from None


def active_queues(timeout: float = DEFAULT_TIMEOUT,
                  destination: list[str] | None = None) -> dict[str, list[str]]:
    """``{worker node name: [queue names it consumes now]}`` of every worker that answered
    within ``timeout`` (only ``destination``'s when given)."""
    replies = _remote("asking the workers for their queues", lambda: _app().control.inspect(
        timeout=timeout, destination=destination).active_queues())
    return {worker: sorted(q["name"] for q in queues or [])
            for worker, queues in sorted((replies or {}).items())}


def consumers_of(queues_by_worker: dict[str, list[str]]) -> dict[str, list[str]]:
    """Inverts :func:`active_queues`: ``{queue: [workers consuming it]}``."""
    out: dict[str, list[str]] = {}
    for worker, queues in queues_by_worker.items():
        for queue in queues:
            out.setdefault(queue, []).append(worker)
    return out


def own_workers(whapp: str, workers: Iterable[str]) -> list[str]:
    """Workers whose node name says they are ``whapp``'s: ``<whapp>-<i>@host``, as
    ``whistle up`` and ``whistle run`` name them (any ``<whapp>-`` prefix counts)."""
    prefix = f"{whapp}-"
    return sorted(w for w in workers if w.startswith(prefix))


@dataclass
class SwitchResult:
    """What ``start_whapp``/``stop_whapp`` did, per worker."""

    whapp: str
    action: str                                # "start" | "stop"
    targets: list[str]
    replies: dict[str, str] = field(default_factory=dict)      # worker -> its answer
    confirmed: dict[str, bool] = field(default_factory=dict)   # worker -> state matches
    problem: str = ""

    @property
    def silent(self) -> list[str]:
        """Targets that did not answer the command."""
        return [t for t in self.targets if t not in self.replies]

    @property
    def ok(self) -> bool:
        return bool(self.replies) and all(self.confirmed.get(w) for w in self.replies)


def _reply_text(reply: dict[str, Any]) -> str:
    return str(reply.get("ok") or reply.get("error") or reply)


def _confirm(queue: str, workers: list[str], consuming: bool,
             timeout: float) -> dict[str, bool]:
    """Ask ``active_queues`` until each worker consumes (or not) ``queue``, up to a few
    rounds: the commands run at the worker's next loop turn, after its reply."""
    deadline = time.monotonic() + max(3.0, 3 * timeout)
    state: dict[str, bool] = {}
    while True:
        seen = active_queues(timeout=timeout, destination=workers)
        state = {w: (queue in seen[w]) == consuming for w in workers if w in seen}
        if (len(state) == len(workers) and all(state.values())) \
                or time.monotonic() > deadline:
            return {w: state.get(w, False) for w in workers}
        time.sleep(0.2)


def stop_whapp(whapp: str, destination: list[str] | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> SwitchResult:
    """Make workers stop consuming ``whapp``'s queue (they keep running, the queue keeps
    its messages and bindings). Default: every worker that consumes it now."""
    queue = check_whapp(whapp)
    if destination:
        targets = sorted(set(destination))
    else:
        targets = consumers_of(active_queues(timeout)).get(queue, [])
    result = SwitchResult(whapp, "stop", targets)
    if not targets:
        result.problem = f"no running worker consumes queue {queue!r}"
        return result
    replies = _remote(f"stopping {whapp}", lambda: _app().control.cancel_consumer(
        queue, destination=targets, reply=True, timeout=timeout))
    return _settle(result, replies, queue, consuming=False, timeout=timeout)


def start_whapp(whapp: str, destination: list[str] | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> SwitchResult:
    """Make workers consume ``whapp``'s queue again. Default: the whapp's own workers
    (node ``<whapp>-<i>@host``, see :func:`own_workers`); ``destination`` names others
    (e.g. a worker that serves several whapps)."""
    queue = check_whapp(whapp)
    if destination:
        targets = sorted(set(destination))
    else:
        targets = own_workers(whapp, active_queues(timeout))
    result = SwitchResult(whapp, "start", targets)
    if not targets:
        result.problem = (f"no running worker is named {whapp}-<n>@host; name one with "
                          "--destination worker@host")
        return result
    replies = _remote(f"starting {whapp}", lambda: _app().control.add_consumer(
        queue, exchange=amqp.CALLMGR.name, exchange_type="topic",
        routing_key=whapp_key(whapp), options={"durable": True},
        destination=targets, reply=True, timeout=timeout))
    return _settle(result, replies, queue, consuming=True, timeout=timeout)


def _settle(result: SwitchResult, replies: Any, queue: str, *, consuming: bool,  # noqa: ANN401
            timeout: float) -> SwitchResult:
    """Record the workers' replies, then ask them again whether the change happened."""
    for reply in replies or []:
        for worker, answer in reply.items():
            result.replies[worker] = _reply_text(answer)
    if result.replies:
        result.confirmed = _confirm(queue, sorted(result.replies), consuming, timeout)
    else:
        result.problem = "no worker answered"
    log.info("%s %s: replies %s, confirmed %s", result.action, result.whapp, result.replies,
             result.confirmed)
    return result


# -- the switch bridge --------------------------------------------------------------------


@dataclass(frozen=True)
class NodeState:
    """A FreeSWITCH node as the bridge sees it (``events``/``reconnects`` from /metrics)."""

    name: str
    state: str
    events: int | None = None
    reconnects: int | None = None
    role: str = ""                  # "active" | "standby" (redundant bridges), "" if older


@dataclass(frozen=True)
class BridgeState:
    address: str
    answered: bool
    amqp: str = ""                      # "up" | "down" | "" (no answer)
    nodes: tuple[NodeState, ...] = ()
    problem: str = ""


def _local_address(listen: str) -> str:
    """Where to reach a bridge that listens on ``listen`` (a wildcard means this box)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):  # noqa: S104 - reading a bind address, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _get(url: str, auth: str, timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(url)  # noqa: S310 - http URL built from our settings
    if auth:
        request.add_header("Authorization", "Basic " + b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read().decode("utf-8", "replace")
    except HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


_NODE_SAMPLE = re.compile(
    r'^whistle_bridge_esl_node_(events|reconnects)\{node="([^"]*)"\}\s+(\S+)$', re.M)


def bridge_state(listen: str | None = None, auth: str | None = None,
                 timeout: float = 2.0) -> BridgeState:
    """The bridge's ``/health`` (``amqp up|down``, ``node <name> <state>``) and the ESL node
    counters of its ``/metrics``. Never raises: a bridge that does not answer is reported."""
    address = _local_address(listen or settings.http_listen)
    auth = settings.http_auth if auth is None else auth
    base = f"http://{address}"
    try:
        status, body = _get(f"{base}/health", auth, timeout)
    except (URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return BridgeState(address, False, problem=f"does not answer at {address} "
                                                   f"({reason})")
    if status in (401, 403):
        return BridgeState(address, False, problem=f"refused us at {address} (HTTP "
                           f"{status}: check WHISTLE_HTTP_ALLOW / WHISTLE_HTTP_AUTH)")
    amqp_state, nodes = "", []
    for line in body.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "amqp":
            amqp_state = words[1]
        elif len(words) in (3, 4) and words[0] == "node":
            nodes.append((words[1], words[2], words[3] if len(words) == 4 else ""))
    if status not in (200, 503) or not amqp_state:
        return BridgeState(address, False, problem=f"gave an unexpected /health answer at "
                           f"{address} (HTTP {status})")
    counters: dict[tuple[str, str], int] = {}
    try:
        m_status, metrics = _get(f"{base}/metrics", auth, timeout)
        if m_status == 200:
            for kind, node, value in _NODE_SAMPLE.findall(metrics):
                counters[kind, node] = int(float(value))
    except (URLError, OSError, ValueError) as exc:
        log.warning("bridge /metrics unreadable: %s", exc)
    return BridgeState(address, True, amqp_state, tuple(
        NodeState(name, state, counters.get(("events", name)),
                  counters.get(("reconnects", name)), role) for name, state, role in nodes))


# -- registrations ------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationCount:
    """Stored registrations: the total and, up to ``REALMS_SHOWN`` realms, per realm.

    Expired registrations count until the registrar's expiry run (every
    ``reg_expiry_interval`` seconds) deletes them.
    """

    total: int
    by_realm: dict[str, int]
    more_realms: bool = False


def registration_count(limit: int = REALMS_SHOWN) -> RegistrationCount:
    """``registrations/by_realm`` reduced (``_count``): once in total, once grouped by
    realm with ``limit + 1`` rows (to know whether there are more). Raises ``CouchError``."""
    from whistle_tasks.core.couch import NotFound, get_couch
    from whistle_tasks.data.registrations import DB

    couch = get_couch()
    try:
        total_rows = couch.view(DB, "registrations", "by_realm")
        grouped = couch.view(DB, "registrations", "by_realm", group=True, limit=limit + 1)
    except NotFound:
        return RegistrationCount(0, {})   # no database / design document yet: none stored
    total = int(total_rows[0]["value"]) if total_rows else 0
    by_realm = {str(r["key"]): int(r["value"]) for r in grouped[:limit]}
    return RegistrationCount(total, by_realm, len(grouped) > limit)


# -- the whole picture (``whistle status``) -----------------------------------------------


@dataclass
class PlatformStatus:
    """Everything ``whistle status`` shows; ``problems`` is empty when all is well."""

    amqp_url: str                                   # redacted
    bridge: BridgeState
    queues: dict[str, QueueState] = field(default_factory=dict)
    workers: dict[str, list[str]] = field(default_factory=dict)   # worker -> queues
    registrations: RegistrationCount | None = None
    #: redundant bridges per FreeSWITCH hostname: {"active": Server-ID, "bridges": {id: role}}
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``whistle status --json``)."""
        by_queue = consumers_of(self.workers)
        regs = self.registrations
        return {
            "ok": not self.problems,
            "problems": list(self.problems),
            "amqp_url": self.amqp_url,
            "bridge": {"address": self.bridge.address, "answered": self.bridge.answered,
                       "amqp": self.bridge.amqp or None, "problem": self.bridge.problem or None,
                       "nodes": [{"name": n.name, "state": n.state, "events": n.events,
                                  "reconnects": n.reconnects, "role": n.role or None}
                                 for n in self.bridge.nodes]},
            "leases": self.leases,
            "queues": [{"whapp": name, "queue": q.name, "messages": q.messages,
                        "consumers": q.consumers, "workers": by_queue.get(q.name, []),
                        "problem": q.problem or None} for name, q in self.queues.items()],
            "workers": self.workers,
            "registrations": None if regs is None else {
                "total": regs.total, "by_realm": regs.by_realm,
                "more_realms": regs.more_realms},
        }


def platform_status(timeout: float = DEFAULT_TIMEOUT) -> PlatformStatus:
    """Ask the bridge, RabbitMQ, the workers and CouchDB; never raises for a service that
    is down: it becomes one line of ``problems``."""
    from whistle_tasks.core.couch import CouchError

    status = PlatformStatus(redact_url(settings.amqp_url), bridge_state(timeout=2 * timeout))
    problems = status.problems
    bridge = status.bridge
    if not bridge.answered:
        problems.append(f"switch bridge: {bridge.problem}")
    else:
        if bridge.amqp != "up":
            problems.append(f"switch bridge at {bridge.address}: its RabbitMQ connection "
                            f"is {bridge.amqp}")
        if not bridge.nodes:
            problems.append(f"switch bridge at {bridge.address}: no FreeSWITCH node "
                            "configured (WHISTLE_FS_NODES)")
        problems.extend(f"FreeSWITCH node {n.name}: {n.state} (the bridge is not connected "
                        "to it)" for n in bridge.nodes if n.state != "connected")
    try:
        status.leases = leases.bridges_of_nodes(settings.redis_url)
    except (redis.RedisError, OSError) as exc:
        if settings.bridge_lease_ms > 0:
            problems.append(f"Redis ({redact_url(settings.redis_url)}): the bridges' leases "
                            f"are unreadable: {exc}")
    for host, lease in status.leases.items():
        if lease["active"] is None:
            problems.append(f"FreeSWITCH {host}: no bridge is active (standing by: "
                            f"{', '.join(lease['bridges']) or 'none'})")
    names = whapp_names()
    try:
        status.queues = queue_states(names)   # a whapp's queue is named after it
    except ControlError as exc:
        problems.append(str(exc))
    if status.queues:
        try:
            status.workers = active_queues(timeout)
        except ControlError as exc:
            problems.append(str(exc))
        for name, q in status.queues.items():
            if q.problem:
                problems.append(f"whapp {name}: {q.problem}")
            elif not q.consumers:
                problems.append(f"whapp {name}: no worker consumes queue {q.name!r} "
                                f"({q.messages} message(s) waiting)")
    try:
        status.registrations = registration_count()
    except CouchError as exc:
        problems.append(f"CouchDB ({redact_url(settings.couch_url)}): "
                        f"{_mask(str(exc), settings.couch_url)}")
    return status
