"""Call control: a parked call driven by a whapp's commands, one at a time.

When a park answer has gone to FreeSWITCH (or an originate succeeded), the bridge opens a
control queue for the call on ``callctl`` and sends ``route_win`` (``Call-ID``,
``Control-Queue``) to the whapp that answered: a Celery task ``<Server-ID>.route_win`` on
``targeted`` with key ``Server-ID`` (a whapp's queue is bound there under its own name).

Each controlled call has a greenlet and a command queue. Commands arrive on the control
queue; ``Insert-At`` says where they go: ``tail`` (default), ``head``, ``flush`` (empty the
queue first) or ``now`` (run at once, beside whatever runs). The next command starts on the
``CHANNEL_EXECUTE_COMPLETE`` whose ``Application-UUID`` is the ``event-uuid`` we gave its
``sendmsg``. A command that cannot run produces an ``error`` message (Event-Name
``dialplan``) on the call's event stream and the queue moves on. After the hangup nothing
runs but ``store``; the control queue is removed a few seconds after the call ends.

A FreeSWITCH that dies takes its calls with it and sends no hangup: when a node's event
socket goes away, its controlled calls are checked once it is back (``uuid_exists``), or
after :data:`NODE_LOST_GRACE` seconds without it. A call FreeSWITCH no longer has gets a
``CHANNEL_HANGUP_COMPLETE`` (``Hangup-Cause`` ``CRASH``) from the bridge, so its whapp ends
instead of waiting for events that will never come.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import gevent.queue

import schemas
from switch_bridge import commands
from switch_bridge.esl.node import EslError, EslNode
from switch_bridge.esl.protocol import Event
from switch_bridge.outbox import Outbox
from whistle_tasks import amqp as wamqp
from whistle_tasks.inbox import Inbox, Subscription
from whistle_tasks.util.log import call_id, get_logger

log = get_logger(__name__)

RUNS_AFTER_HANGUP = frozenset({"store"})
LINGER_SECONDS = 5.0
APP_NAME = "whistle-bridge"
#: Seconds a lost FreeSWITCH node has to come back before its controlled calls are ended.
NODE_LOST_GRACE = 10.0
LOST_CAUSE = "CRASH"
_UUID = re.compile(r"[0-9A-Za-z-]{1,64}")


class CallControl:
    """One controlled call: its queue of commands and the greenlet that runs them."""

    def __init__(self, manager: ControlManager, call_id_: str, node: EslNode,
                 profile: str) -> None:
        self.manager = manager
        self.call_id = call_id_
        self.node = node
        self.profile = profile
        self.control_queue = f"callctl.{call_id_}.{uuid.uuid4().hex[:8]}"
        self.pending: deque[dict[str, Any]] = deque()
        self.current: dict[str, Any] | None = None     # the command that runs
        self.current_steps: deque[tuple[str, str | None]] = deque()
        self.current_uuid: str | None = None            # event-uuid of its running step
        self.side_uuids: dict[str, dict[str, Any]] = {}  # `now` commands running beside
        self.hungup = False
        self.inbox: gevent.queue.Queue = gevent.queue.Queue()
        self.subscription: Subscription | None = None
        self.greenlet: gevent.Greenlet | None = None

    # -- inputs (from the inbox greenlet and the event greenlets) ------------------------
    def command(self, msg: dict[str, Any]) -> None:
        self.inbox.put(("command", msg))

    def event(self, event: Event) -> None:
        self.inbox.put(("event", event))

    def lost(self, why: str) -> None:
        """FreeSWITCH no longer has this call (its node died): end the control."""
        self.inbox.put(("lost", why))

    # -- the call's greenlet ----------------------------------------------------------------
    def run(self) -> None:
        with call_id(self.call_id):
            while True:
                kind, item = self.inbox.get()
                if kind == "command":
                    self._on_command(item)
                elif kind == "event":
                    if self._on_event(item):
                        break
                elif kind == "stop":
                    break
                elif kind == "lost":
                    self._on_lost(item)
                    break
                self._advance()
            self.manager.finished(self)

    def _on_command(self, msg: dict[str, Any]) -> None:
        try:
            schemas.validate(msg)
        except schemas.MessageError as exc:
            self._error(msg, f"invalid command: {exc}")
            return
        if msg.get("Event-Category") != "call" or msg.get("Event-Name") != "command":
            self._error(msg, f"not a call command: {msg.get('Event-Category')}/"
                             f"{msg.get('Event-Name')}")
            return
        if msg["Application-Name"] == "queue":
            for queued in msg.get("Commands") or []:
                self.pending.append({**queued, "Call-ID": self.call_id,
                                     "Msg-ID": msg.get("Msg-ID")})
            return
        where = msg.get("Insert-At") or "tail"
        if where == "now":
            self._run_beside(msg)
        elif where == "head":
            self.pending.appendleft(msg)
        elif where == "flush":
            dropped = len(self.pending)
            self.pending.clear()
            if dropped:
                log.info("flush: %d queued commands dropped", dropped)
            self.pending.append(msg)
        else:
            self.pending.append(msg)

    def _on_event(self, event: Event) -> bool:
        """Returns True when the control of this call is over."""
        name = event.name
        if name == "CHANNEL_EXECUTE_COMPLETE":
            app_uuid = event.get("Application-UUID")
            if app_uuid and app_uuid == self.current_uuid:
                self.current_uuid = None
                if not self.current_steps:
                    self.current = None
            elif app_uuid in self.side_uuids:
                del self.side_uuids[app_uuid]
        elif name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            if not self.hungup:
                self.hungup = True
                self._drop_pending("the call hung up before it ran")
        elif name == "CHANNEL_DESTROY":
            self.hungup = True
            self._drop_pending("the call ended before it ran")
            return True
        return False

    def _on_lost(self, why: str) -> None:
        log.warning("call control ends: %s", why)
        self.hungup = True
        self._drop_pending(why)
        msg = schemas.build("call_event", {
            "Call-ID": self.call_id, "Hangup-Cause": LOST_CAUSE,
            "Switch-Hostname": self.node.fs_hostname or self.node.name},
            **{"App-Name": APP_NAME, "Event-Name": "CHANNEL_HANGUP_COMPLETE"})
        self.manager.publish_event(msg)

    def _advance(self) -> None:
        """Start the next step or command when nothing runs."""
        while self.current_uuid is None:
            if self.current is not None and self.current_steps:
                app, arg = self.current_steps.popleft()
                if not self._execute(app, arg, self.current, main=True,
                                     last=not self.current_steps):
                    self.current, self.current_steps = None, deque()
                continue
            self.current = None
            if not self.pending:
                return
            cmd = self.pending.popleft()
            if self.hungup and cmd["Application-Name"] not in RUNS_AFTER_HANGUP:
                self._error(cmd, "the call is down: only store runs after the hangup")
                continue
            if cmd["Application-Name"] == "noop":
                self._noop(cmd)
                continue
            try:
                self.current_steps = deque(commands.steps(cmd, profile=self.profile))
            except (commands.CommandError, schemas.MessageError, ValueError, KeyError) as exc:
                self._error(cmd, str(exc))
                continue
            self.current = cmd

    def _run_beside(self, cmd: dict[str, Any]) -> None:
        if self.hungup and cmd["Application-Name"] not in RUNS_AFTER_HANGUP:
            self._error(cmd, "the call is down: only store runs after the hangup")
            return
        try:
            plan = commands.steps(cmd, profile=self.profile)
        except (commands.CommandError, ValueError, KeyError) as exc:
            self._error(cmd, str(exc))
            return
        for index, (app, arg) in enumerate(plan):
            if not self._execute(app, arg, cmd, main=False, last=index == len(plan) - 1):
                return

    def _execute(self, app: str, arg: str | None, cmd: dict[str, Any], *, main: bool,
                 last: bool) -> bool:
        """Send one step. Its events name the command (``Application-Name``, and
        ``Msg-Reply-ID`` = the command's ``Msg-ID`` on its last step) so a whapp can wait
        for exactly its own command."""
        event_uuid = str(uuid.uuid4())
        if main:
            self.current_uuid = event_uuid
        else:
            self.side_uuids[event_uuid] = cmd
        if last:
            self.manager.annotate(event_uuid, cmd)
        try:
            reply = self.node.sendmsg(self.call_id, app, arg, event_uuid=event_uuid,
                                      event_lock=True)
        except (EslError, ValueError) as exc:
            reply = f"-ERR {exc}"
        if not reply.startswith("+OK"):
            if main:
                self.current_uuid = None
            else:
                self.side_uuids.pop(event_uuid, None)
            self.manager.forget_annotation(event_uuid)
            self._error(cmd, f"{cmd['Application-Name']} could not run: {reply}")
            return False
        return True

    def _noop(self, cmd: dict[str, Any]) -> None:
        """A noop is answered by an event once every command before it has run."""
        msg = {"Call-ID": self.call_id, "Application-Name": "noop",
               "Application-Response": cmd.get("Msg-ID") or "",
               "Msg-Reply-ID": cmd.get("Msg-ID") or ""}
        built = schemas.build("call_event", msg, **{"App-Name": APP_NAME,
                                                    "Event-Name": "CHANNEL_EXECUTE_COMPLETE"})
        self.manager.publish_event(built)

    def _drop_pending(self, why: str) -> None:
        while self.pending:
            cmd = self.pending.popleft()
            if cmd["Application-Name"] in RUNS_AFTER_HANGUP:
                continue
            self._error(cmd, f"{cmd['Application-Name']}: {why}")

    def _error(self, cmd: dict[str, Any], message: str) -> None:
        log.warning("command %s not run: %s", cmd.get("Application-Name"), message)
        self.manager.stats["command_errors"] += 1
        error = schemas.build("dialplan_error", {
            "Error-Message": message, "Call-ID": self.call_id,
            "Msg-Reply-ID": cmd.get("Msg-ID") or "",
            "Request": {k: v for k, v in cmd.items() if k in (
                "Application-Name", "Msg-ID", "Insert-At")}},
            **{"App-Name": APP_NAME})
        self.manager.publish_error(error)


class ControlManager:
    """All controlled calls of a bridge; plugged into :class:`~switch_bridge.bridge.Bridge`."""

    def __init__(self, *, outbox: Outbox, inbox: Inbox,
                 node_for: Callable[[str | None], EslNode | None], node_name: str) -> None:
        self.outbox = outbox
        self.inbox = inbox
        self.node_for = node_for
        self.node_name = node_name
        self.calls: dict[str, CallControl] = {}
        self.annotations: dict[str, dict[str, Any]] = {}   # event-uuid -> command
        self.stats = {"controlled": 0, "commands": 0, "command_errors": 0, "route_wins": 0,
                      "lost": 0}
        self._checking: set[str] = set()                    # nodes whose calls are checked

    def start(self) -> None:
        return None

    def stop(self) -> None:
        for call in list(self.calls.values()):
            call.inbox.put(("stop", None))

    # -- hooks of the bridge ----------------------------------------------------------------
    def on_route_answer(self, answer: dict[str, Any], call: dict[str, Any],
                        request: dict[str, Any]) -> None:
        """A park answer went to FreeSWITCH: take control and tell the winner."""
        if answer.get("Method") != "park" or not answer.get("Server-ID"):
            return
        node = self.node_for(call.get("node"))
        if node is None:
            log.error("park for %s: no connected FreeSWITCH node %s to control it",
                      call.get("call_id"), call.get("node"))
            return
        control = self.take(call["call_id"], node, call.get("profile") or "internal")
        ccvs = {**(request.get("Custom-Channel-Vars") or {}),
                **(answer.get("Custom-Channel-Vars") or {})}
        self.route_win(answer["Server-ID"], control, ccvs)

    def on_event(self, node: EslNode, event: Event) -> None:
        call = self.calls.get(event.uuid or "")
        if call is not None:
            call.event(event)

    def on_node_state(self, node: EslNode, state: str) -> None:
        """A node's event socket went away: check its controlled calls (module doc)."""
        if state == "connected" or node.name in self._checking:
            return
        if any(c.node is node and not c.hungup for c in self.calls.values()):
            self._checking.add(node.name)
            gevent.spawn(self._check_lost, node)

    def _check_lost(self, node: EslNode) -> None:
        try:
            back = node.wait_connected(NODE_LOST_GRACE)
            for control in [c for c in self.calls.values() if c.node is node and not c.hungup]:
                if back and self._still_there(node, control.call_id):
                    continue
                self.stats["lost"] += 1
                control.lost(f"FreeSWITCH {node.name} " + (
                    "restarted without the call" if back else
                    f"away for {NODE_LOST_GRACE:.0f} s"))
        finally:
            self._checking.discard(node.name)

    @staticmethod
    def _still_there(node: EslNode, call_id_: str) -> bool:
        if not _UUID.fullmatch(call_id_):
            return False
        try:
            return node.api(f"uuid_exists {call_id_}").strip() == "true"
        except (EslError, OSError, ValueError):
            return False

    # -- control ----------------------------------------------------------------------------
    def take(self, call_id_: str, node: EslNode, profile: str) -> CallControl:
        existing = self.calls.get(call_id_)
        if existing is not None:
            return existing
        control = CallControl(self, call_id_, node, profile)
        control.subscription = self.inbox.subscribe(Subscription(
            queue=control.control_queue,
            bindings=[(wamqp.CALLCTL.name, control.control_queue)],
            handler=control.command))
        self.calls[call_id_] = control
        control.greenlet = gevent.spawn(control.run)
        self.stats["controlled"] += 1
        return control

    def route_win(self, server_id: str, control: CallControl, ccvs: dict[str, Any]) -> None:
        msg = schemas.build("route_win", {
            "Call-ID": control.call_id, "Control-Queue": control.control_queue,
            "Custom-Channel-Vars": {str(k): v for k, v in ccvs.items()},
            "Switch-Hostname": control.node.fs_hostname or control.node.name,
        }, **{"App-Name": APP_NAME, "Node": self.node_name})
        body, headers, properties = wamqp.encode_request(f"{server_id}.route_win", msg)
        self.announce(body, wamqp.TARGETED.name, server_id, headers, properties)
        self.stats["route_wins"] += 1

    def announce(self, body: bytes, exchange: str, key: str,
                 headers: dict[str, Any] | None = None,
                 properties: dict[str, Any] | None = None) -> None:
        """Send what tells a whapp about a control queue (route_win, originate_resp) on the
        channel that declared the queue, so its commands cannot outrun the binding; through
        the outbox (buffered, confirmed) only when that channel is down."""
        if not self.inbox.publish(body, exchange, key, headers=headers, **(properties or {})):
            from switch_bridge.outbox import Item

            self.outbox.put(Item(body, exchange, key, headers, properties or {},
                                 kind="request"))

    def finished(self, control: CallControl) -> None:
        """The call ended: its queue lingers a few seconds (late commands get errors)."""
        def remove() -> None:
            gevent.sleep(LINGER_SECONDS)
            if control.subscription is not None:
                self.inbox.cancel(control.subscription.tag, delete_queue=True)
            self.calls.pop(control.call_id, None)
            for key in [k for k, v in self.annotations.items()
                        if v.get("Call-ID") == control.call_id]:
                self.annotations.pop(key, None)

        gevent.spawn(remove)

    # -- events and errors out --------------------------------------------------------------
    def annotate(self, event_uuid: str, cmd: dict[str, Any]) -> None:
        self.annotations[event_uuid] = cmd
        self.stats["commands"] += 1

    def forget_annotation(self, event_uuid: str) -> None:
        self.annotations.pop(event_uuid, None)

    def command_of(self, event_uuid: str | None) -> dict[str, Any] | None:
        """The Whistle command a FreeSWITCH application ran for (by its Application-UUID)."""
        return self.annotations.get(event_uuid or "")

    def publish_event(self, msg: dict[str, Any]) -> None:
        self.outbox.put_api(msg, wamqp.CALLEVT.name,
                            wamqp.call_event_key(msg["Event-Name"], msg["Call-ID"]))

    def publish_error(self, msg: dict[str, Any]) -> None:
        self.publish_event(msg)
