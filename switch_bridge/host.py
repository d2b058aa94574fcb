"""The switch bridge process: shared services, the extensions, and nothing else.

It holds no business logic and no flow of its own. It owns the connections (one
:class:`~switch_bridge.freeswitch.esl.node.EslNode` per FreeSWITCH, the outbox that sends
everything, the inbox that receives everything, the HTTP server mod_xml_curl posts to),
gives them to the extensions as :class:`~switch_bridge.extensions.base.Services`, and
passes every event and node state change to every extension. Each flow reads top to bottom
in its own file:

    mod_xml_curl directory  → extensions/directory.py
    mod_xml_curl dialplan   → extensions/dialplan.py   (a park → extensions/call_control.py)
    ESL events              → extensions/events.py, extensions/call_control.py,
                              extensions/originate.py, extensions/mwi.py (MESSAGE_QUERY)
    originate_req           → extensions/originate.py
    a node (re)connected    → extensions/node_sync.py (registrations, calls, load it
                              holds) and extensions/directory.py (its directory cache)
    mwi_update              → extensions/mwi.py (MESSAGE_WAITING)

The request/reply client is given to the host (``rpc=``) only by the benchmarks' floor,
which answers from memory to measure the bridge without AMQP (``bench/floor_bridge.py``).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

from switch_bridge.extensions.base import Endpoint, Extension, Services
from switch_bridge.extensions.call_control import CallControl
from switch_bridge.extensions.call_manage import CallManage
from switch_bridge.extensions.dialplan import Dialplan
from switch_bridge.extensions.directory import Directory
from switch_bridge.extensions.events import Events
from switch_bridge.extensions.mwi import MessageWaiting
from switch_bridge.extensions.node_sync import NodeSync
from switch_bridge.extensions.originate import Originate
from switch_bridge.freeswitch import translate
from switch_bridge.freeswitch.esl.node import EslNode
from switch_bridge.freeswitch.esl.protocol import Event
from switch_bridge.http import AccessPolicy, HttpFront, make_server
from switch_bridge.metrics import Metrics
from switch_bridge.outbox import Outbox
from switch_bridge.redundancy import ACTIVE, Redundancy
from switch_bridge.spool import Spool, size_bytes
from whistle_tasks.core.config import Settings
from whistle_tasks.core.inbox import Inbox
from whistle_tasks.core.log import get_logger
from whistle_tasks.core.rpc import Rpc

log = get_logger(__name__)


def parse_nodes(spec: str) -> list[tuple[str, int, str]]:
    """``host:port:password,...`` → [(host, port, password)]; the password may hold colons."""
    nodes = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        host, port, password = (item.split(":", 2) + ["", ""])[:3]
        if not host or not port.isdigit():
            raise ValueError(f"WHISTLE_FS_NODES: {host}:{port}:**** is not host:port:password")
        nodes.append((host, int(port), password))
    return nodes


class Bridge:
    def __init__(self, settings: Settings,
                 rpc: Callable[[Inbox, str, Outbox], Rpc] | None = None) -> None:
        server_id = f"bridge.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        spool = (Spool(settings.spool_dir, size_bytes(settings.spool_max_mb))
                 if settings.spool_dir else None)
        outbox = Outbox(settings.amqp_url, settings.event_buffer, name="bridge outbox",
                        spool=spool)
        inbox = Inbox(settings.amqp_url, name="bridge inbox")
        make_rpc = rpc or (lambda i, sid, o: Rpc(i, sid, send=o.send,
                                                 ready=lambda: o.connected))
        self.services = s = Services(
            settings=settings, node_name=settings.node, server_id=server_id,
            metrics=Metrics(), outbox=outbox, inbox=inbox,
            rpc=make_rpc(inbox, server_id, outbox), nodes=[])
        self.control = CallControl(s)
        self.extensions: list[Extension] = [
            Directory(s),
            Dialplan(s, on_park=self.control.on_park),
            self.control,
            Originate(s, self.control),
            CallManage(s, self.control),
            MessageWaiting(s),
            Events(s, command_of=self.control.command_of),
            NodeSync(s, self.control),
        ]
        wanted = translate.subscription([n for ext in self.extensions for n in ext.event_names])
        s.nodes.extend(
            EslNode(host, port, password, name=f"{host}:{port}", on_event=self._on_event,
                    on_state=self._on_node_state, event_names=wanted,
                    fmt=settings.esl_format, heartbeat_timeout=settings.esl_heartbeat_timeout)
            for host, port, password in parse_nodes(settings.fs_nodes))
        # several bridges per node, one active (WHISTLE_BRIDGE_LEASE_MS; redundancy.py)
        self.redundancy = Redundancy(
            redis_url=settings.redis_url, lease_ms=settings.bridge_lease_ms,
            window=settings.bridge_window, server_id=server_id, metrics=s.metrics,
            marks=outbox.marks.get, replay=self._dispatch, on_role=self._on_role,
            amqp_up=lambda: outbox.connected)
        for node in s.nodes:
            self.redundancy.add(node)
        s.acting = self.redundancy.acting
        self.originate = next(e for e in self.extensions if isinstance(e, Originate))
        self.node_sync = next(e for e in self.extensions if isinstance(e, NodeSync))
        endpoints: dict[str, Endpoint] = {"/metrics": self._metrics, "/health": self._health}
        for ext in self.extensions:
            endpoints.update(ext.routes())
        self.http = make_server(settings.http_listen, HttpFront(
            AccessPolicy(settings.http_allow, settings.http_auth), endpoints,
            on_forbidden=self._forbidden,
            on_bad_request=lambda remote, why: s.metrics.errors.labels("bad_http").inc()))
        self._register_gauges()

    @property
    def server_id(self) -> str:
        return self.services.server_id

    @property
    def nodes(self) -> list[EslNode]:
        return self.services.nodes

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        s = self.services
        s.outbox.start()
        s.inbox.start()
        for node in s.nodes:
            node.start()
        for ext in self.extensions:
            ext.start()
        self.redundancy.start()
        self.http.start()
        log.info("bridge %s listening on %s for %d FreeSWITCH node(s)", s.server_id,
                 s.settings.http_listen, len(s.nodes))

    def stop(self) -> None:
        s = self.services
        self.http.stop(timeout=2)
        self.redundancy.stop()      # a standby takes over at once
        for ext in self.extensions:
            ext.stop()
        for node in s.nodes:
            node.stop()
        s.outbox.stop()
        s.inbox.stop()

    # -- the hooks ------------------------------------------------------------------------
    def _on_event(self, node: EslNode, event: Event) -> None:
        # a standby keeps the event in its window and does nothing else
        if self.redundancy.admit(node, event):
            self._dispatch(node, event)

    def _dispatch(self, node: EslNode, event: Event) -> None:
        for ext in self.extensions:
            try:
                ext.on_event(node, event)
            except Exception:  # noqa: BLE001 - an extension's bug never stops the stream
                self.services.metrics.errors.labels(f"extension_{ext.name}").inc()
                log.exception("%s failed on %s from %s", ext.name, event.name, node.name)

    def _on_node_state(self, node: EslNode, state: str) -> None:
        # the node itself logs the change (one line, with its reason); a standby learns
        # what the node holds when it takes over (_on_role), not on connect
        for ext in self.extensions:
            if ext is self.node_sync and not self.redundancy.acting(node):
                continue
            try:
                ext.on_node_state(node, state)
            except Exception:  # noqa: BLE001 - as above
                self.services.metrics.errors.labels(f"extension_{ext.name}").inc()
                log.exception("%s failed on %s becoming %s", ext.name, node.name, state)

    def _on_role(self, node: EslNode, role: str) -> None:
        """This bridge became active (it took over: learn what the node holds, control its
        calls again, serve originates) or standby (drop the node's calls, which the new
        active controls with the same queues)."""
        if role == ACTIVE:
            self.node_sync.on_node_state(node, "connected")
        else:
            self.control.release(node)
        self.originate.serve(any(self.redundancy.acting(n) for n in self.nodes))

    # -- metrics, health ------------------------------------------------------------------
    def _forbidden(self, path: str, addr: str) -> None:
        m = self.services.metrics
        section = "dialplan" if path.endswith("dialplan") else "directory"
        m.req[section, "forbidden"].inc()
        m.errors.labels("forbidden").inc()
        log.warning("refused %s from %s: client not allowed", path, addr)

    def _register_gauges(self) -> None:
        s = self.services
        m = s.metrics
        m.gauge("whistle_bridge_buffered_messages", "Messages waiting for RabbitMQ to confirm",
                lambda: s.outbox.buffered)
        m.gauge("whistle_bridge_confirmed_messages", "Messages RabbitMQ confirmed (published "
                "for good)", lambda: s.outbox.stats["confirmed"])
        m.gauge("whistle_bridge_dropped_messages", "Messages dropped because the buffer was "
                "full", lambda: s.outbox.stats["dropped"])
        if s.outbox.spool is not None:
            sp = s.outbox.spool
            m.gauge("whistle_bridge_spooled_messages", "Messages written to the disk spool "
                    "while RabbitMQ was unreachable", lambda: sp.stats["spooled"])
            m.gauge("whistle_bridge_spool_pending", "Messages on disk waiting for RabbitMQ",
                    lambda: sp.pending)
            m.gauge("whistle_bridge_spool_bytes", "Bytes of the disk spool",
                    lambda: sp.bytes)
        m.gauge("whistle_bridge_amqp_connected", "1 when the bridge can publish to RabbitMQ",
                lambda: 1.0 if s.outbox.connected else 0.0)
        m.gauge("whistle_bridge_requests_waiting", "Requests waiting for a whapp",
                lambda: s.rpc.waiting)
        m.gauge("whistle_bridge_esl_frame_errors", "Broken ESL frames skipped",
                lambda: sum(n.stats().get("frame_errors", 0) for n in s.nodes))
        m.node_collector(lambda: s.nodes, role=self.redundancy.role,
                         window=self.redundancy.window_len)
        r = self.redundancy.stats
        m.gauge("whistle_bridge_takeovers", "Times this bridge took over a node from "
                "another (or from none)", lambda: r["takeovers"])
        m.gauge("whistle_bridge_events_replayed", "Events republished from the window "
                "after taking over", lambda: r["replayed"])
        m.gauge("whistle_bridge_stepped_down", "Times this bridge stood down for a node",
                lambda: r["stepped_down"])

    def _metrics(self, body: bytes, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        return 200, "text/plain; version=0.0.4; charset=utf-8", self.services.metrics.render()

    def _health(self, body: bytes, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        s = self.services
        ok = s.outbox.connected and s.inbox.connected
        lines = [f"amqp {'up' if ok else 'down'}"]
        lines += [f"node {n.name} {n.state} {self.redundancy.role(n)}" for n in s.nodes]
        return (200 if ok else 503), "text/plain", ("\n".join(lines) + "\n").encode()


def serve(settings: Settings, **options: Any) -> None:  # noqa: ANN401
    """Run a bridge until SIGINT/SIGTERM (``options`` go to :class:`Bridge`)."""
    import signal

    bridge = Bridge(settings, **options)
    stop = gevent.event.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop.set)
    bridge.start()
    stop.wait()
    log.info("bridge stopping")
    bridge.stop()
