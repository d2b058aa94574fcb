"""Node sync: each time the bridge connects to a FreeSWITCH node, it learns what the node holds.

While the event socket is down (a FreeSWITCH start, a bridge restart, the socket reloaded)
the node keeps working: phones register and un-register, registrations expire, calls go
on. Their events went nowhere. So on every connect (:meth:`NodeSync.learn`, one function
of "a node connected", also what a bridge taking over another's nodes will run):

1. **registrations**: ``sofia xmlstatus profile <p> reg`` of every sofia profile, read at
   a time taken from the node's own clock (``strmicroepoch``, the clock of its events'
   timestamps), goes to the registrar as one ``reg_sync`` (``contracts.REG_SYNC``,
   persistent): it stores the ones it did not know and removes that node's ones the node
   no longer has. The bridge decides nothing; the registrar orders by timestamps.
2. **calls**: ``show channels as json``; a channel whose variable
   ``whistle_control_queue`` names a control queue was under call control (set by
   :meth:`CallControl.take`): it is controlled again with that same queue, so the whapp
   driving it carries on. A call this bridge controlled on that node that the node no
   longer has ended meanwhile: its whapp gets the end.
3. **load**: ``status`` (sessions now / at most) for the originate node choice until the
   next HEARTBEAT, and the node's sofia profiles (what an originate dials through).

Everything runs in a greenlet of its own, after the connection is up (a command issued from
the state hook itself would wait for a reply nobody reads yet). If the connection drops
meanwhile, the sync stops; the next connect runs it again.
"""

from __future__ import annotations

import gevent

import schemas
from schemas import contracts
from switch_bridge import APP_NAME
from switch_bridge.extensions.base import Extension, Services
from switch_bridge.extensions.call_control import CallControl
from switch_bridge.freeswitch import inventory
from switch_bridge.freeswitch.esl.node import STATE_CONNECTED, EslError, EslNode
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

#: seconds one inventory command may take (a registration list of a big node is large)
COMMAND_TIMEOUT = 30.0


class NodeSync(Extension):
    name = "node_sync"

    def __init__(self, services: Services, control: CallControl) -> None:
        self.services = services
        self.control = control
        self.stats = {"syncs": 0, "failed": 0, "registrations": 0, "calls_resumed": 0,
                      "calls_ended": 0}
        self._running: dict[str, gevent.Greenlet] = {}

    def on_node_state(self, node: EslNode, state: str) -> None:
        if state != STATE_CONNECTED:
            return
        previous = self._running.get(node.name)
        if previous is not None and not previous.dead:
            previous.kill(block=False)
        self._running[node.name] = gevent.spawn(self._learn_logged, node)

    def stop(self) -> None:
        for greenlet in self._running.values():
            greenlet.kill(block=False)

    def _learn_logged(self, node: EslNode) -> None:
        try:
            self.learn(node)
        except (EslError, inventory.InventoryError, ValueError) as exc:
            self.stats["failed"] += 1
            self.services.metrics.errors.labels("node_sync").inc()
            log.warning("FreeSWITCH %s: could not learn what it holds: %s", node.name, exc)

    def learn(self, node: EslNode) -> dict[str, int]:
        """Learn what ``node`` holds (see the module docstring); returns counts."""
        api = lambda cmd: node.api(cmd, timeout=COMMAND_TIMEOUT)  # noqa: E731
        hostname = inventory.hostname(api("hostname"))
        node.fs_hostname = node.fs_hostname or hostname
        node.sip_profiles = inventory.profiles(api("sofia xmlstatus"))
        node.sessions, node.max_sessions = inventory.sessions(api("status"))
        at = inventory.microepoch(api("strmicroepoch"))
        held = []
        for profile in node.sip_profiles:
            held += inventory.registrations(api(f"sofia xmlstatus profile {profile} reg"),
                                            profile=profile, node=hostname, timestamp=at)
        msg = schemas.build("reg_sync", {"FreeSWITCH-Hostname": hostname,
                                         "Event-Timestamp": at, "Registrations": held},
                            **{"App-Name": APP_NAME, "Node": self.services.node_name})
        if not self.services.outbox.send(contracts.REG_SYNC, msg):
            raise ValueError("reg_sync not sent (outbox refused it)")
        controlled: dict[str, tuple[str, str]] = {}
        channels = inventory.channels(api("show channels as json"))
        for channel in channels:
            queue = inventory.variable(api(inventory.control_queue_getvar(channel["uuid"])))
            if queue:
                controlled[channel["uuid"]] = (channel["profile"], queue)
        resumed, ended = self.control.resume(node, controlled)
        counts = {"registrations": len(held), "channels": len(channels),
                  "calls_resumed": resumed, "calls_ended": ended}
        self.stats["syncs"] += 1
        self.stats["registrations"] += len(held)
        self.stats["calls_resumed"] += resumed
        self.stats["calls_ended"] += ended
        log.info("FreeSWITCH %s (%s) holds %d registrations and %d channels: %d calls "
                 "controlled again, %d ended while away", node.name, hostname, len(held),
                 len(channels), resumed, ended)
        return counts
