"""The switch bridge (the seed's ecallmgr): FreeSWITCH on one side, Whistle on the other.

It holds no business logic. It turns FreeSWITCH's lookups (mod_xml_curl) into whapp
requests and their answers into XML, FreeSWITCH's events into API messages, and (issue 4)
whapp commands into ESL instructions. Read one lookup top to bottom:

    http.HttpFront → Bridge.directory → fetch.authn_req → AuthCache / Rpc.request
        → (registrar) → render.directory_user

The pieces: :class:`~switch_bridge.outbox.Outbox` (everything sent, confirmed, buffered),
:class:`~switch_bridge.inbox.Inbox` (everything received), :class:`~switch_bridge.rpc.Rpc`
(request/reply by Msg-ID), :class:`~switch_bridge.authcache.AuthCache`, one
:class:`~switch_bridge.esl.node.EslNode` per FreeSWITCH, :class:`~switch_bridge.metrics.Metrics`.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

from switch_bridge import events, fetch, render
from switch_bridge.authcache import AuthCache
from switch_bridge.control import ControlManager
from switch_bridge.esl.node import EslNode
from switch_bridge.esl.protocol import Event
from switch_bridge.http import XML, AccessPolicy, HttpFront, make_server
from switch_bridge.metrics import Metrics
from switch_bridge.originate import Originator
from switch_bridge.outbox import Outbox
from switch_bridge.rpc import Rpc
from whistle_tasks import amqp as wamqp
from whistle_tasks.config import Settings
from whistle_tasks.inbox import Inbox, Subscription
from whistle_tasks.util.log import call_id, get_logger
from whistle_tasks.util.timer import Timer

log = get_logger(__name__)

APP_NAME = "whistle-bridge"


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
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.node_name = settings.node
        self.server_id = f"bridge.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.budget = settings.answer_budget_ms / 1000.0
        self.fixed_answers = settings.bridge_fixed_answers
        self.metrics = Metrics()
        self.outbox = Outbox(settings.amqp_url, settings.event_buffer, name="bridge outbox")
        self.inbox = Inbox(settings.amqp_url, name="bridge inbox")
        self.rpc = Rpc(self.outbox, self.inbox, self.server_id)
        self.auth_cache = AuthCache(settings.auth_cache_ttl)
        self.inbox.subscribe(Subscription(
            queue=f"{self.server_id}.configuration",
            bindings=[(wamqp.CONFIGURATION.name, "doc.#")],
            handler=self._on_change))
        self.nodes = [
            EslNode(host, port, password, name=f"{host}:{port}", on_event=self._on_event,
                    on_state=self._on_node_state, event_names=events.subscription(),
                    fmt=settings.esl_format, heartbeat_timeout=settings.esl_heartbeat_timeout)
            for host, port, password in parse_nodes(settings.fs_nodes)]
        self.policy = AccessPolicy(settings.http_allow, settings.http_auth)
        self.http = make_server(settings.http_listen, HttpFront(
            self.policy,
            {"/fs/directory": self.directory, "/fs/dialplan": self.dialplan,
             "/metrics": self._metrics, "/health": self._health},
            on_forbidden=self._forbidden,
            on_bad_request=lambda remote, why: self.metrics.errors.labels("bad_http").inc()))
        self.control = ControlManager(outbox=self.outbox, inbox=self.inbox,
                                      node_for=self.node_for, node_name=self.node_name)
        self.originator = Originator(outbox=self.outbox, inbox=self.inbox,
                                     nodes=lambda: self.nodes, control=self.control,
                                     node_name=self.node_name)
        # hooks: on_route_answer(answer, call, request), on_event(node, event),
        # on_node_state(node, state), start, stop
        self.extensions: list[Any] = [self.control, self.originator]
        self._register_gauges()

    def node_for(self, hostname: str | None) -> EslNode | None:
        """The connected node that serves FreeSWITCH ``hostname`` (any, if there is one)."""
        live = [n for n in self.nodes if n.connected]
        for node in live:
            if hostname and node.fs_hostname == hostname:
                return node
        return live[0] if len(live) == 1 or not hostname else None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.outbox.start()
        self.inbox.start()
        for node in self.nodes:
            node.start()
        for ext in self.extensions:
            ext.start()
        self.http.start()
        log.info("bridge %s listening on %s for %d FreeSWITCH node(s)", self.server_id,
                 self.settings.http_listen, len(self.nodes))

    def stop(self) -> None:
        self.http.stop(timeout=2)
        for ext in self.extensions:
            ext.stop()
        for node in self.nodes:
            node.stop()
        self.outbox.stop()
        self.inbox.stop()

    # -- mod_xml_curl ---------------------------------------------------------------------
    def directory(self, body: bytes, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        return self._lookup("directory", self._directory, body)

    def dialplan(self, body: bytes, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        return self._lookup("dialplan", self._dialplan, body)

    def _lookup(self, section: str, answer: Callable[[bytes], tuple[str, bytes]],
                body: bytes) -> tuple[int, str, bytes]:
        """Answer one lookup; its outcome and time are counted whatever happens."""
        timer = Timer()
        outcome = "error"
        try:
            outcome, xml = answer(body)
            return 200, XML, xml
        finally:
            self.metrics.req[section, outcome].inc()
            self.metrics.lat[section].observe(timer.elapsed)

    # -- directory ------------------------------------------------------------------------

    def _directory(self, body: bytes) -> tuple[str, bytes]:
        try:
            form = fetch.parse_form(body)
            kind = fetch.directory_kind(form)
            if kind != "sip_auth":
                return "not_found", render.not_found()
            request = fetch.authn_req(form, server_id=self.server_id, node=self.node_name)
        except (fetch.FetchError, ValueError) as exc:
            self.metrics.errors.labels("malformed_directory").inc()
            log.error("directory lookup rejected: %s", exc)
            return "malformed", render.not_found()
        realm, user = str(request["Auth-Realm"]), str(request["Auth-User"])
        with call_id(request.get("Call-ID")):
            found, answer = (False, None) if self.fixed_answers else \
                self.auth_cache.get(realm, user)
            outcome = "cached"
            if found and answer is not None:
                xml = self.auth_cache.xml(realm, user)
                if xml is not None:
                    return outcome, xml
            if not found:
                answer = self._ask("registrar.authn_req", request,
                                   wamqp.authn_req_key(realm))
                if answer is None:
                    outcome = "refused" if not self.outbox.connected else "timeout"
                    if outcome == "timeout":
                        self.metrics.tmo["directory"].inc()
                    log.warning("directory %s@%s: no answer within %.0f ms (%s)", user, realm,
                                self.budget * 1000, outcome)
                    return outcome, render.not_found()
                if answer.get("Event-Name") == "authn_resp":
                    self.auth_cache.put(realm, user, answer)
                elif answer.get("Event-Name") == "authn_err":
                    self.auth_cache.put(realm, user, None)
                    answer = None
                else:
                    log.error("directory %s@%s: unexpected answer %s: %s", user, realm,
                              answer.get("Event-Name"), answer.get("Error-Message", ""))
                    return "error", render.not_found()
                outcome = "answered"
            if answer is None:
                return "not_found", render.not_found()
            ccvs = answer.get("Custom-Channel-Vars") or {}
            try:
                xml = render.directory_user(
                    realm, user, method=answer["Auth-Method"], secret=answer["Auth-Password"],
                    variables={str(k): str(v) for k, v in ccvs.items()})
                self.auth_cache.keep_xml(realm, user, xml)
                return outcome, xml
            except (KeyError, ValueError) as exc:
                self.metrics.errors.labels("unrenderable_directory").inc()
                log.error("directory %s@%s: answer cannot be rendered: %s", user, realm, exc)
                return "error", render.not_found()

    # -- dialplan -------------------------------------------------------------------------

    def _dialplan(self, body: bytes) -> tuple[str, bytes]:
        try:
            form = fetch.parse_form(body)
            request = fetch.route_req(form, server_id=self.server_id, node=self.node_name)
            call = fetch.call_context(form)
        except (fetch.FetchError, ValueError) as exc:
            self.metrics.errors.labels("malformed_dialplan").inc()
            log.error("dialplan lookup rejected: %s", exc)
            return "malformed", render.not_found()
        with call_id(request.get("Call-ID")):
            realm = route_realm(request)
            answer = self._ask("router.route_req", request, wamqp.route_req_key(realm))
            if answer is None or answer.get("Event-Name") != "route_resp":
                outcome = "refused" if not self.outbox.connected else "timeout"
                if answer is not None:
                    outcome = "error"
                    log.error("route_req: unexpected answer %s: %s", answer.get("Event-Name"),
                              answer.get("Error-Message", ""))
                elif outcome == "timeout":
                    self.metrics.tmo["dialplan"].inc()
                    log.warning("route_req for %s: no answer within %.0f ms",
                                request.get("Request"), self.budget * 1000)
                return outcome, render.dialplan_no_handler(call)
            try:
                xml = render.dialplan(answer, call)
            except ValueError as exc:
                self.metrics.errors.labels("unrenderable_route").inc()
                log.error("route_resp cannot be rendered: %s", exc)
                return "error", render.dialplan_no_handler(call)
            for ext in self.extensions:
                hook = getattr(ext, "on_route_answer", None)
                if hook is not None:
                    hook(answer, call, request)
            return "answered", xml

    def _ask(self, task: str, request: dict[str, Any], key: str) -> dict[str, Any] | None:
        """A whapp's answer (None: nothing in time) — or, in fixed-answer mode, a constant
        one built without AMQP: the floor benchmarks measure the bridge against."""
        if not self.fixed_answers:
            return self.rpc.request(task, request, key, self.budget)
        if task == "registrar.authn_req":
            return {"Event-Name": "authn_resp", "Auth-Method": "password",
                    "Auth-Password": "fixed-answer", "Custom-Channel-Vars": {
                        "Username": request["Auth-User"], "Realm": request["Auth-Realm"],
                        "Account-ID": "0" * 32, "Authorizing-ID": "0" * 32,
                        "Inception": "on-net"}}
        return {"Event-Name": "route_resp", "Method": "bridge", "Routes": [{
            "Invite-Format": "username", "To-User": "1000",
            "To-Realm": route_realm(request), "Route": "sip:1000@192.0.2.1:5060"}]}

    # -- events ---------------------------------------------------------------------------
    def _on_event(self, node: EslNode, event: Event) -> None:
        name = event.name
        try:
            if name == "CUSTOM":
                self._on_custom(node, event)
                return
            for ext in self.extensions:
                hook = getattr(ext, "on_event", None)
                if hook is not None:
                    hook(node, event)
            translated = events.call_event(event, node=self.node_name, app_name=APP_NAME)
            if translated is None:
                self.metrics.ev_ignored.inc()
                return
            key, msg = translated
            command = self.control.command_of(event.get("Application-UUID"))
            if command is not None:
                # name the Whistle command the application ran for, not FreeSWITCH's app
                msg["Application-Name"] = command["Application-Name"]
                if command.get("Msg-ID") and name == "CHANNEL_EXECUTE_COMPLETE":
                    msg["Msg-Reply-ID"] = command["Msg-ID"]
            if self.outbox.put_api(msg, wamqp.CALLEVT.name, key):
                self.metrics.ev_published.inc()
        except Exception as exc:  # noqa: BLE001 - one bad event never stops the stream
            self.metrics.ev_invalid.inc()
            log.error("event %s from %s not translated: %s", name, node.name, exc)

    def _on_custom(self, node: EslNode, event: Event) -> None:
        subclass = event.subclass or ""
        if subclass == "sofia::register":
            msg = events.reg_success(event, node=self.node_name)
        elif subclass in ("sofia::unregister", "sofia::expire"):
            msg = events.deregistration(event, node=self.node_name)
        else:
            msg = None
        if msg is None:
            self.metrics.ev_ignored.inc()
            return
        if self.outbox.put_request("registrar.reg_success", msg, events.routing_for_reg(msg),
                                   persistent=True):
            self.metrics.ev_published.inc()

    def _on_node_state(self, node: EslNode, state: str) -> None:
        log.info("FreeSWITCH %s is %s", node.name, state)
        for ext in self.extensions:
            hook = getattr(ext, "on_node_state", None)
            if hook is not None:
                hook(node, state)

    # -- broadcasts, metrics, health ------------------------------------------------------
    def _on_change(self, msg: dict[str, Any]) -> None:
        if msg.get("Event-Category") == "configuration":
            self.auth_cache.on_change(msg)

    def _forbidden(self, path: str, addr: str) -> None:
        section = "dialplan" if path.endswith("dialplan") else "directory"
        self.metrics.req[section, "forbidden"].inc()
        self.metrics.errors.labels("forbidden").inc()
        log.warning("refused %s from %s: client not allowed", path, addr)

    def _register_gauges(self) -> None:
        m = self.metrics
        m.gauge("whistle_bridge_buffered_messages", "Messages waiting for RabbitMQ to confirm",
                lambda: self.outbox.buffered)
        m.gauge("whistle_bridge_dropped_messages", "Messages dropped because the buffer was "
                "full", lambda: self.outbox.stats["dropped"])
        m.gauge("whistle_bridge_amqp_connected", "1 when the bridge can publish to RabbitMQ",
                lambda: 1.0 if self.outbox.connected else 0.0)
        m.gauge("whistle_bridge_auth_cache_entries", "Credentials cached in the bridge",
                lambda: len(self.auth_cache))
        m.gauge("whistle_bridge_requests_waiting", "Requests waiting for a whapp",
                lambda: self.rpc.waiting)
        m.gauge("whistle_bridge_esl_frame_errors", "Broken ESL frames skipped",
                lambda: sum(n.stats().get("frame_errors", 0) for n in self.nodes))
        m.gauge("whistle_bridge_controlled_calls", "Calls under call control",
                lambda: len(self.control.calls))
        m.node_collector(lambda: self.nodes)

    def _metrics(self, body: bytes, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.render()

    def _health(self, body: bytes, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        ok = self.outbox.connected and self.inbox.connected
        lines = [f"amqp {'up' if ok else 'down'}"]
        lines += [f"node {n.name} {n.state}" for n in self.nodes]
        return (200 if ok else 503), "text/plain", ("\n".join(lines) + "\n").encode()


def route_realm(request: dict[str, Any]) -> str:
    """The realm a route request is keyed by: the caller's (authenticated) realm, else the
    host of ``Request``."""
    ccvs = request.get("Custom-Channel-Vars") or {}
    if ccvs.get("Realm"):
        return str(ccvs["Realm"])
    return str(request.get("Request", "")).rpartition("@")[2] or "unknown"


def serve(settings: Settings) -> None:
    """Run a bridge until SIGINT/SIGTERM."""
    import signal

    bridge = Bridge(settings)
    stop = gevent.event.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop.set)
    bridge.start()
    stop.wait()
    log.info("bridge stopping")
    bridge.stop()

