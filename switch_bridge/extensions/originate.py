"""Originate: a whapp asks for a call, some bridge places it on some FreeSWITCH.

Every bridge consumes the shared queue ``resource.originate`` (bound on ``callmgr`` to
``originate.resource.req``), so requests spread across bridges. The bridge picks its node
by utilisation, as Whistle did: lowest utilisation (sessions / max sessions, from the
node's last HEARTBEAT), then higher bias, then most free channels. It runs
``bgapi originate {origination_uuid=<ours>,...}<dial string> &park()`` (or ``&bridge(...)``,
``&transfer(...)``) with a ``Job-UUID`` of its own and answers when the matching
``BACKGROUND_JOB`` arrives: ``originate_resp`` (``Call-ID``, ``Control-Queue``; the new call
is under call control) or ``originate_error`` with FreeSWITCH's reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

import schemas
from schemas import contracts
from switch_bridge import APP_NAME
from switch_bridge.extensions.base import Extension, Services
from switch_bridge.extensions.call_control import CallControl
from switch_bridge.freeswitch import dialstring
from switch_bridge.freeswitch.esl.node import EslError, EslNode
from switch_bridge.freeswitch.esl.protocol import Event
from whistle_tasks.core import amqp as wamqp
from whistle_tasks.core.convert import to_float
from whistle_tasks.core.inbox import Subscription
from whistle_tasks.core.log import call_id, get_logger

log = get_logger(__name__)

QUEUE = "resource.originate"
JOB_MARGIN = 5.0


def utilisation(node: EslNode) -> tuple[float, float, int]:
    """Sort key of a node (smaller is better): utilisation, -bias, -free channels. The
    sessions are the node's last HEARTBEAT's, or what the node sync read when the bridge
    connected (the calls a restarted bridge finds are counted before the first HEARTBEAT)."""
    sessions = node.sessions or 0
    max_sessions = node.max_sessions or 0
    used = sessions / max_sessions if max_sessions else 0.0
    bias = to_float(getattr(node, "bias", None), 1.0) or 1.0
    free = (max_sessions - sessions) if max_sessions else 0
    return used, -bias, -free


def choose_node(nodes: list[EslNode],
                acting: Callable[[EslNode], bool] = lambda node: True) -> EslNode | None:
    live = [n for n in nodes if n.connected and acting(n)]
    return min(live, key=utilisation) if live else None


class Originate(Extension):
    name = "originate"

    def __init__(self, services: Services, control: CallControl,
                 profile: str = "internal") -> None:
        self.outbox = services.outbox
        self.inbox = services.inbox
        self.nodes = lambda: services.nodes
        self.acting = services.acting
        self._subscription: Subscription | None = None
        self.control = control
        self.node_name = services.node_name
        self.profile = profile
        self.jobs: dict[str, gevent.event.AsyncResult] = {}
        self.stats = {"requests": 0, "originated": 0, "failed": 0, "rejected": 0}

    def start(self) -> None:
        self.serve(any(self.acting(n) for n in self.nodes()))

    def serve(self, on: bool) -> None:
        """Consume the shared queue only while this bridge is active for some node (a
        standby of every node leaves the requests to the active bridges)."""
        if on and self._subscription is None:
            binding = (contracts.ORIGINATE.exchange, str(contracts.ORIGINATE.binding))
            self._subscription = self.inbox.subscribe(Subscription(
                queue=QUEUE, bindings=[binding], handler=self._on_request, exclusive=False,
                durable=True, auto_delete=False))
        elif not on and self._subscription is not None:
            self.inbox.cancel(self._subscription.tag)
            self._subscription = None

    # -- hooks ------------------------------------------------------------------------------
    def on_event(self, node: EslNode, event: Event) -> None:
        if event.name != "BACKGROUND_JOB":
            return
        waiter = self.jobs.pop(event.get("Job-UUID") or "", None)
        if waiter is not None:
            waiter.set(event.body or "")

    # -- requests ---------------------------------------------------------------------------
    def _on_request(self, msg: dict[str, Any]) -> None:
        self.stats["requests"] += 1
        gevent.spawn(self._originate, msg)

    def _originate(self, msg: dict[str, Any]) -> None:
        with call_id(msg.get("Call-ID")):
            try:
                contracts.ORIGINATE.check_request(msg)
            except schemas.MessageError as exc:
                self.stats["rejected"] += 1
                log.error("originate_req rejected: %s", exc)
                self._fail(msg, f"invalid originate_req: {exc}", "INVALID_REQUEST")
                return
            node = choose_node(self.nodes(), self.acting)
            if node is None:
                self._fail(msg, "no FreeSWITCH node is connected", "NO_NODE")
                return
            new_call = str(uuid.uuid4())
            # the node's own sofia profile (node sync learnt it), else ours
            profile = node.sip_profiles[0] if node.sip_profiles else self.profile
            try:
                command = self._command(msg, new_call, profile)
            except ValueError as exc:
                self._fail(msg, f"cannot build the originate: {exc}", "INVALID_REQUEST")
                return
            job = str(uuid.uuid4())
            waiter = gevent.event.AsyncResult()
            self.jobs[job] = waiter
            timeout = (to_float(msg.get("Timeout"), 30.0) or 30.0) + JOB_MARGIN
            try:
                node.bgapi(command, job_uuid=job)
                body = waiter.get(timeout=timeout)
            except (EslError, gevent.Timeout) as exc:
                self.jobs.pop(job, None)
                self._fail(msg, f"originate on {node.name} failed: {exc or 'timeout'}",
                           "TIMEOUT" if isinstance(exc, gevent.Timeout) else "NODE_ERROR")
                return
            result = body.strip()
            if not result.startswith("+OK"):
                reason = result.removeprefix("-ERR").strip() or "UNKNOWN"
                self._fail(msg, reason, reason)
                return
            call = result.removeprefix("+OK").strip() or new_call
            control = self.control.take(call, node, profile)
            self.stats["originated"] += 1
            self._answer(msg, "originate_resp", {"Call-ID": call,
                                                 "Control-Queue": control.control_queue})

    def _command(self, msg: dict[str, Any], new_call: str, profile: str) -> str:
        global_vars = dialstring.global_vars(msg)
        global_vars["origination_uuid"] = new_call
        for key, value in (msg.get("Custom-Channel-Vars") or {}).items():
            global_vars[f"ecallmgr_{key}"] = str(value)
        target = dialstring.bridge_target(msg["Endpoints"],
                                          msg.get("Dial-Endpoint-Method") or "simultaneous",
                                          profile=profile, global_vars=global_vars)
        app = msg["Application-Name"]
        data = msg.get("Application-Data")
        if app == "park":
            tail = "&park()"
        elif app == "transfer":
            data = str(data or "")
            if not data or any(not (c.isalnum() or c in "+*#_-") for c in data):
                raise ValueError("transfer needs Application-Data: an extension to transfer to")
            tail = f"&transfer({data})"
        else:
            if not isinstance(data, dict):
                raise ValueError("bridge needs Application-Data: the endpoint (a route object) "
                                 "to bridge the answered call to")
            other = dialstring.bridge_target([data], "single", profile=profile,
                                             global_vars={})
            if ")" in other:
                raise ValueError("the endpoint to bridge to may not contain ')'")
            tail = f"&bridge({other})"
        # originate splits its argument on spaces and quotes: each part is encoded for it
        return f"originate {dialstring.api_arg(target)} {dialstring.api_arg(tail)}"

    def _fail(self, msg: dict[str, Any], message: str, code: str) -> None:
        self.stats["failed"] += 1
        log.warning("originate failed: %s", message)
        self._answer(msg, "originate_error", {"Failure-Message": message, "Failure-Code": code})

    def _answer(self, request: dict[str, Any], name: str, data: dict[str, Any]) -> None:
        server_id = request.get("Server-ID") if isinstance(request, dict) else None
        if not server_id:
            return
        answer = schemas.build(name, {**data, "Msg-ID": request.get("Msg-ID")},
                               **{"App-Name": APP_NAME, "Node": self.node_name})
        if name == "originate_resp":   # names a control queue: after its binding
            self.control.announce(wamqp.encode_api(answer), wamqp.TARGETED.name, server_id)
        else:
            self.outbox.put_api(answer, wamqp.TARGETED.name, server_id)
