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
socket goes away, its controlled calls are checked once it is back (the node sync reads
its channels and calls :meth:`CallControl.resume`), or ended after :data:`NODE_LOST_GRACE`
seconds without it. A call FreeSWITCH no longer has gets a ``CHANNEL_HANGUP_COMPLETE``
(``Hangup-Cause`` ``CRASH``) from the bridge, so its whapp ends instead of waiting for
events that will never come.

The name of a call's control queue is kept on its channel (``whistle_control_queue``):
a bridge that connects to the node later (a restart, a takeover) finds it there and
controls the call again with the same queue, so the whapp driving it carries on.
runs but ``store``; the control queue lingers a few seconds after the call ends (a
``store`` sent then still runs, anything else gets its error) and is removed once nothing
runs any more.

``store`` is not an application of the channel but an API command of the node
(``bgapi http_put <url> <file>``): it runs after a ``record`` queued before it has closed
its file, also once the caller has hung up, and it answers with a
``CHANNEL_EXECUTE_COMPLETE`` (``Application-Name`` store, ``Application-Response``
``success``) or with an error naming what the server answered.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import deque
from typing import Any

import gevent
import gevent.queue

import schemas
from schemas import contracts
from schemas.keys import call_event_key
from switch_bridge import APP_NAME
from switch_bridge.extensions.base import Extension, Services
from switch_bridge.freeswitch import commands, inventory
from switch_bridge.freeswitch.esl.node import EslError, EslNode
from switch_bridge.freeswitch.esl.protocol import Event
from switch_bridge.outbox import Item
from whistle_tasks.core import amqp as wamqp
from whistle_tasks.core.inbox import Subscription
from whistle_tasks.core.log import call_id, get_logger

log = get_logger(__name__)

RUNS_AFTER_HANGUP = frozenset({"store"})
LINGER_SECONDS = 5.0
#: Seconds a lost FreeSWITCH node has to come back before its controlled calls are ended.
NODE_LOST_GRACE = 10.0
LOST_CAUSE = "CRASH"
#: a control queue nobody consumes is removed after this long (a call whose bridges all
#: died); while a bridge takes over, the commands sent meanwhile wait in it
CONTROL_QUEUE_EXPIRES_MS = 600_000


#: a part of an event-uuid that names a command (its Application-Name, its Msg-ID)
_TAG_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def tagged_uuid(event_uuid: str, cmd: dict[str, Any]) -> str:
    """The ``event-uuid`` of a command's last step, naming the command: FreeSWITCH hands it
    back as the ``Application-UUID`` of the step's events, so a bridge that took the call
    over (and never saw the command) still tags its completion (``Msg-Reply-ID``)."""
    app, msg_id = str(cmd.get("Application-Name") or ""), str(cmd.get("Msg-ID") or "")
    if _TAG_PART.match(app) and _TAG_PART.match(msg_id):
        return f"{event_uuid}.{app}.{msg_id}"
    return event_uuid


def untag(app_uuid: str) -> dict[str, Any] | None:
    """The command a tagged ``Application-UUID`` names (:func:`tagged_uuid`), or None."""
    parts = app_uuid.split(".")
    if len(parts) == 3 and len(parts[0]) == 36 and all(_TAG_PART.match(p) for p in parts[1:]):
        return {"Application-Name": parts[1], "Msg-ID": parts[2]}
    return None


class NotActing(Exception):
    """A command for a node this bridge no longer acts for: requeued for the active one."""
#: how long an API step (``store``: an upload) may take before it counts as failed
JOB_TIMEOUT = 120.0


class ControlledCall:
    """One controlled call: its queue of commands and the greenlet that runs them."""

    def __init__(self, manager: CallControl, call_id_: str, node: EslNode,
                 profile: str, control_queue: str | None = None) -> None:
        self.manager = manager
        self.call_id = call_id_
        self.node = node
        self.profile = profile
        self.control_queue = control_queue or f"callctl.{call_id_}.{uuid.uuid4().hex[:8]}"
        self.pending: deque[dict[str, Any]] = deque()
        self.current: dict[str, Any] | None = None     # the command that runs
        self.current_steps: deque[tuple[str, str | None]] = deque()
        self.current_uuid: str | None = None            # event-uuid of its running step
        self.side_uuids: dict[str, dict[str, Any]] = {}  # `now` commands running beside
        self.hungup = False
        self.released = False        # handed over to another bridge: keep the queue
        self.ended_at: float | None = None                # CHANNEL_DESTROY seen (monotonic)
        self.jobs: dict[str, dict[str, Any]] = {}         # API steps running: job -> command
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
                try:
                    kind, item = self.inbox.get(timeout=self._wait())
                except gevent.queue.Empty:
                    if self.current is None and not self.pending:
                        break           # ended, lingered, and nothing runs any more
                    continue
                if kind == "command":
                    self._on_command(item)
                elif kind == "event":
                    if self._on_event(item) and self.ended_at is None:
                        self.ended_at = time.monotonic()
                elif kind == "job_timeout":
                    self._job_done(item, None)
                elif kind == "stop":
                    break
                elif kind == "lost":
                    self._on_lost(item)
                    break
                self._advance()
            self.manager.finished(self)

    def _wait(self) -> float | None:
        """How long the greenlet may sleep: for ever while the call is up; after its end,
        until the linger is over (and then only while a command still runs)."""
        if self.ended_at is None:
            return None
        return max(0.0, self.ended_at + LINGER_SECONDS - time.monotonic()) or 1.0

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
        """Returns True when the call is over (its control lingers a little)."""
        name = event.name
        if name == "BACKGROUND_JOB":
            self._job_done(event.get("Job-UUID") or "", event.body or "")
        elif name == "CHANNEL_EXECUTE_COMPLETE":
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
        if self.current is not None:       # its completion will never come
            self._error(self.current, f"{self.current['Application-Name']}: {why}")
            self.current, self.current_steps, self.current_uuid = None, deque(), None
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
                self.current_steps = deque(commands.steps(
                    cmd, profile=self.profile, record_dir=self.manager.record_dir))
            except (commands.CommandError, schemas.MessageError, ValueError, KeyError) as exc:
                self._error(cmd, str(exc))
                continue
            self.current = cmd

    def _run_beside(self, cmd: dict[str, Any]) -> None:
        if self.hungup and cmd["Application-Name"] not in RUNS_AFTER_HANGUP:
            self._error(cmd, "the call is down: only store runs after the hangup")
            return
        try:
            plan = commands.steps(cmd, profile=self.profile, record_dir=self.manager.record_dir)
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
        if last and app != commands.API:
            event_uuid = tagged_uuid(event_uuid, cmd)
        if main:
            self.current_uuid = event_uuid
        else:
            self.side_uuids[event_uuid] = cmd
        if app == commands.API:
            return self._execute_api(str(arg), cmd, event_uuid)
        if last:
            self.manager.annotate(event_uuid, cmd)
        try:
            reply = self.node.sendmsg(self.call_id, app, arg, event_uuid=event_uuid,
                                      event_lock=True)
        except (EslError, ValueError) as exc:
            reply = f"-ERR {exc}"
        if not reply.startswith("+OK"):
            self._not_running(event_uuid)
            self.manager.forget_annotation(event_uuid)
            self._error(cmd, f"{cmd['Application-Name']} could not run: {reply}")
            return False
        return True

    def _not_running(self, step_uuid: str) -> None:
        if self.current_uuid == step_uuid:
            self.current_uuid = None
        self.side_uuids.pop(step_uuid, None)

    def _execute_api(self, api_cmd: str, cmd: dict[str, Any], job: str) -> bool:
        """An API step (``store``): ``bgapi`` with our Job-UUID; its BACKGROUND_JOB (or the
        timeout) ends it (:meth:`_job_done`)."""
        self.jobs[job] = cmd
        self.manager.expect_job(job, self)
        try:
            self.node.bgapi(api_cmd, job_uuid=job)
        except (EslError, ValueError) as exc:
            self.jobs.pop(job, None)
            self.manager.forget_job(job)
            self._not_running(job)
            self._error(cmd, f"{cmd['Application-Name']} could not run: {exc}")
            return False
        gevent.spawn_later(JOB_TIMEOUT, self.inbox.put, ("job_timeout", job))
        log.info("%s: %s (job %s)", cmd["Application-Name"], api_cmd.split(" ", 1)[0], job)
        return True

    def _job_done(self, job: str, body: str | None) -> None:
        """An API step ended: ``body`` is FreeSWITCH's output, None when it timed out."""
        cmd = self.jobs.pop(job, None)
        self.manager.forget_job(job)
        if cmd is None:
            return
        self._not_running(job)
        if self.current_uuid is None and not self.current_steps:
            self.current = None
        if body is None:
            self._error(cmd, f"{cmd['Application-Name']}: no answer from FreeSWITCH in "
                             f"{JOB_TIMEOUT:.0f} s")
            return
        stored, why = commands.store_result(body)
        if not stored:
            self._error(cmd, f"{cmd['Application-Name']} failed: {why}")
            return
        msg = {"Call-ID": self.call_id, "Application-Name": cmd["Application-Name"],
               "Application-Response": "success", "Msg-Reply-ID": cmd.get("Msg-ID") or ""}
        self.manager.publish_event(schemas.build(
            "call_event", msg, **{"App-Name": APP_NAME, "Event-Name": "CHANNEL_EXECUTE_COMPLETE"}))

    def _noop(self, cmd: dict[str, Any]) -> None:
        """A noop is answered by an event once every command before it has run."""
        msg = {"Call-ID": self.call_id, "Application-Name": "noop",
               "Application-Response": cmd.get("Msg-ID") or "",
               "Msg-Reply-ID": cmd.get("Msg-ID") or ""}
        built = schemas.build("call_event", msg, **{"App-Name": APP_NAME,
                                                    "Event-Name": "CHANNEL_EXECUTE_COMPLETE"})
        self.manager.publish_event(built)

    def _drop_pending(self, why: str) -> None:
        """Refuse the queued commands that cannot run any more; a ``store`` stays queued."""
        kept: deque[dict[str, Any]] = deque()
        while self.pending:
            cmd = self.pending.popleft()
            if cmd["Application-Name"] in RUNS_AFTER_HANGUP:
                kept.append(cmd)
            else:
                self._error(cmd, f"{cmd['Application-Name']}: {why}")
        self.pending = kept

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


class CallControl(Extension):
    """All controlled calls of a bridge (the extension)."""

    name = "call_control"

    def __init__(self, services: Services) -> None:
        self.outbox = services.outbox
        self.inbox = services.inbox
        self.node_for = services.node_for
        self.acting = services.acting
        self.node_name = services.node_name
        self.record_dir = services.settings.record_dir
        self.calls: dict[str, ControlledCall] = {}
        self.annotations: dict[str, dict[str, Any]] = {}   # event-uuid -> command
        self.stats = {"controlled": 0, "commands": 0, "command_errors": 0, "route_wins": 0,
                      "resumed": 0, "lost": 0}
        self._checking: set[str] = set()                    # nodes whose calls are checked
        self.jobs: dict[str, ControlledCall] = {}           # Job-UUID -> call (API steps)
        services.metrics.gauge("whistle_bridge_controlled_calls", "Calls under call control",
                               lambda: len(self.calls))

    def stop(self) -> None:
        for call in list(self.calls.values()):
            call.released = True    # its queue stays: a bridge that comes controls it again
            call.inbox.put(("stop", None))

    # -- hooks of the bridge ----------------------------------------------------------------
    def on_park(self, answer: dict[str, Any], call: dict[str, Any],
                request: dict[str, Any]) -> None:
        """A park answer goes to FreeSWITCH: take control and tell the winner."""
        if not answer.get("Server-ID"):
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
        if event.name == "BACKGROUND_JOB":
            call = self.jobs.get(event.get("Job-UUID") or "")
        else:
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
            if node.wait_connected(NODE_LOST_GRACE):
                return      # back: the node sync compares our calls with its channels
            for control in [c for c in self.calls.values() if c.node is node and not c.hungup]:
                self.stats["lost"] += 1
                control.lost(f"FreeSWITCH {node.name} away for {NODE_LOST_GRACE:.0f} s")
        finally:
            self._checking.discard(node.name)
    def expect_job(self, job: str, call: ControlledCall) -> None:
        self.jobs[job] = call

    def forget_job(self, job: str) -> None:
        self.jobs.pop(job, None)

    # -- control ----------------------------------------------------------------------------
    def take(self, call_id_: str, node: EslNode, profile: str,
             control_queue: str | None = None) -> ControlledCall:
        """Control a call: a new control queue, or ``control_queue`` (a call taken again
        after a restart, whose whapp still sends there). The queue's name is kept on the
        channel (variable ``whistle_control_queue``) so that a bridge that connects later
        takes the call again with it (:meth:`resume`)."""
        existing = self.calls.get(call_id_)
        if existing is not None:
            return existing
        control = ControlledCall(self, call_id_, node, profile, control_queue)
        # not exclusive, not auto-deleted, acknowledged: when this bridge dies, the queue
        # and the commands in it (and those it had not acknowledged) wait for the bridge
        # that takes the node over and controls the call again with the same queue
        control.subscription = self.inbox.subscribe(Subscription(
            queue=control.control_queue,
            bindings=[(wamqp.CALLCTL.name, control.control_queue)],
            handler=lambda msg, c=control: self._command(c, msg), exclusive=False,
            auto_delete=False, ack=True,
            arguments={"x-expires": CONTROL_QUEUE_EXPIRES_MS}))
        self.calls[call_id_] = control
        control.greenlet = gevent.spawn(control.run)
        self.stats["controlled"] += 1
        if control_queue is None:
            gevent.spawn(self._record, control)
        return control

    def _command(self, control: ControlledCall, msg: dict[str, Any]) -> None:
        if control.released or not self.acting(control.node):
            raise NotActing(f"{control.call_id}: this bridge stands by for "
                            f"{control.node.name}")
        control.command(msg)

    def release(self, node: EslNode) -> int:
        """Another bridge is active for ``node`` now: stop controlling its calls here
        without ending them (their queues stay; the active bridge controls them again)."""
        released = 0
        for control in [c for c in self.calls.values() if c.node is node]:
            control.released = True
            if control.subscription is not None:
                self.inbox.cancel(control.subscription.tag)
                control.subscription = None
            control.inbox.put(("stop", None))
            released += 1
        if released:
            log.warning("%d calls on %s left to the node's active bridge", released,
                        node.name)
        return released

    def _record(self, control: ControlledCall) -> None:
        try:
            reply = control.node.api(inventory.control_queue_setvar(control.call_id,
                                                                    control.control_queue))
        except (EslError, ValueError) as exc:
            reply = f"-ERR {exc}"
        if not reply.startswith("+OK"):
            log.warning("call %s: control queue not recorded on the channel (%s): a bridge "
                        "restart would lose its control", control.call_id, reply.strip())

    def resume(self, node: EslNode, held: dict[str, tuple[str, str]]) -> tuple[int, int]:
        """``node`` connected and holds the channels ``held`` (call id → (profile, control
        queue recorded on it)): control what we do not control yet, with the same queue;
        calls we controlled there that it no longer has ended while we were away.
        Returns ``(taken again, ended)``."""
        taken = 0
        for call_id_, (profile, queue) in held.items():
            if call_id_ not in self.calls:
                self.take(call_id_, node, profile or "internal", control_queue=queue)
                self.stats["resumed"] += 1
                taken += 1
        ended = 0
        for control in list(self.calls.values()):
            if (control.node is node and control.call_id not in held and not control.hungup
                    and not control.released):
                self.stats["lost"] += 1
                control.lost(f"FreeSWITCH {node.name} no longer has the call (it ended while "
                             "the bridge could not hear)")
                ended += 1
        return taken, ended

    def route_win(self, server_id: str, control: ControlledCall, ccvs: dict[str, Any]) -> None:
        msg = schemas.build("route_win", {
            "Call-ID": control.call_id, "Control-Queue": control.control_queue,
            "Custom-Channel-Vars": {str(k): v for k, v in ccvs.items()},
            "Switch-Hostname": control.node.fs_hostname or control.node.name,
        }, **{"App-Name": APP_NAME, "Node": self.node_name})
        exchange, key, task = contracts.ROUTE_WIN.address(msg, server_id)
        body, headers, properties = wamqp.encode_request(str(task), msg)
        self.announce(body, exchange, key, headers, properties)
        self.stats["route_wins"] += 1

    def announce(self, body: bytes, exchange: str, key: str,
                 headers: dict[str, Any] | None = None,
                 properties: dict[str, Any] | None = None) -> None:
        """Send what tells a whapp about a control queue (route_win, originate_resp) on the
        channel that declared the queue, so its commands cannot outrun the binding; through
        the outbox (buffered, confirmed) only when that channel is down."""
        if not self.inbox.publish(body, exchange, key, headers=headers, **(properties or {})):
            self.outbox.put(Item(body, exchange, key, headers, properties or {},
                                 kind="request"))

    def finished(self, control: ControlledCall) -> None:
        """The call's greenlet is done (it lingered already): remove its queue."""
        if control.subscription is not None:
            self.inbox.cancel(control.subscription.tag, delete_queue=not control.released)
        if self.calls.get(control.call_id) is control:
            self.calls.pop(control.call_id, None)
        for key in [k for k, v in self.annotations.items()
                    if v.get("Call-ID") == control.call_id]:
            self.annotations.pop(key, None)
        for job in list(control.jobs):
            self.jobs.pop(job, None)

    # -- events and errors out --------------------------------------------------------------
    def annotate(self, event_uuid: str, cmd: dict[str, Any]) -> None:
        self.annotations[event_uuid] = cmd
        self.stats["commands"] += 1

    def forget_annotation(self, event_uuid: str) -> None:
        self.annotations.pop(event_uuid, None)

    def command_of(self, event_uuid: str | None) -> dict[str, Any] | None:
        """The Whistle command a FreeSWITCH application ran for (by its Application-UUID)."""
        return self.annotations.get(event_uuid or "") or untag(event_uuid or "")

    def publish_event(self, msg: dict[str, Any]) -> None:
        self.outbox.put_api(msg, wamqp.CALLEVT.name,
                            call_event_key(msg["Event-Name"], msg["Call-ID"]))

    def publish_error(self, msg: dict[str, Any]) -> None:
        self.publish_event(msg)
