"""Message waiting: the voicemail side's counts reach the phones' lamps, and a phone that
asks (SUBSCRIBE message-summary, or a first REGISTER) is answered.

    mwi_update on callmgr (key mwi.update.<realm>.<user>; every bridge binds a queue of its
    own to contracts.MWI_UPDATE's binding)
      → freeswitch/mwi.message_waiting: the headers of a MESSAGE_WAITING event
      → ``sendevent MESSAGE_WAITING`` on the node that holds the phone's registration or
        subscription (``Switch-Hostname``), or on every node when the update names none;
        mod_sofia sends the NOTIFYs
    ESL MESSAGE_QUERY (a SUBSCRIBE, a REGISTER)
      → freeswitch/mwi.mwi_query → contracts.MWI_QUERY to the voicemail side, which
        answers with an mwi_update naming the subscription (or registration): back above

No business logic: who owns which box and how many messages wait is the voicemail side's.
An update or query that cannot be expressed is logged and counted, never raised.
"""

from __future__ import annotations

from typing import Any

import gevent

import schemas
from schemas import contracts
from switch_bridge.extensions.base import Extension, Services
from switch_bridge.freeswitch import mwi
from switch_bridge.freeswitch.esl.node import EslError, EslNode
from switch_bridge.freeswitch.esl.protocol import Event
from whistle_tasks.core.inbox import Subscription
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)


class MessageWaiting(Extension):
    name = "mwi"
    event_names = (mwi.QUERY_EVENT,)

    def __init__(self, services: Services) -> None:
        self.services = services
        self.stats = {"updates": 0, "notified": 0, "queries": 0, "invalid": 0}
        services.metrics.gauge("whistle_bridge_mwi_updates", "Message-waiting updates "
                               "received", lambda: self.stats["updates"])
        services.metrics.gauge("whistle_bridge_mwi_queries", "Message-waiting queries sent",
                               lambda: self.stats["queries"])

    def start(self) -> None:
        binding = (contracts.MWI_UPDATE.exchange, str(contracts.MWI_UPDATE.binding))
        self.services.inbox.subscribe(Subscription(
            queue=f"{self.services.server_id}.mwi", bindings=[binding], handler=self._on_update))

    # -- Whistle → FreeSWITCH ---------------------------------------------------------------
    def _on_update(self, msg: dict[str, Any]) -> None:
        self.stats["updates"] += 1
        gevent.spawn(self._update, msg)     # sendevent waits for its reply: not in the inbox

    def _update(self, msg: dict[str, Any]) -> None:
        try:
            contracts.MWI_UPDATE.check_request(msg)
            headers = mwi.message_waiting(msg)
        except (schemas.MessageError, mwi.MwiError) as exc:
            self._invalid(f"mwi_update refused: {exc}")
            return
        for node in self.nodes_for(msg.get("Switch-Hostname")):
            try:
                reply = node.sendevent(mwi.EVENT_NAME, headers)
            except (EslError, ValueError) as exc:
                reply = f"-ERR {exc}"
            if reply.startswith("+OK"):
                self.stats["notified"] += 1
            else:
                log.warning("MESSAGE_WAITING for %s on %s: %s", msg.get("To"), node.name, reply)

    def nodes_for(self, hostname: str | None) -> list[EslNode]:
        """The node named ``hostname`` (the phone's), or every connected node. A node whose
        name is not known yet (no event from it so far) gets it too: better a NOTIFY
        nobody needed than a lamp left wrong."""
        live = [n for n in self.services.nodes
                if n.connected and self.services.acting(n)]   # the active bridge only
        if not hostname:
            return live
        return ([n for n in live if n.fs_hostname == hostname]
                or [n for n in live if not n.fs_hostname])

    # -- FreeSWITCH → Whistle ---------------------------------------------------------------
    def on_event(self, node: EslNode, event: Event) -> None:
        if event.name != mwi.QUERY_EVENT:
            return
        try:
            query = mwi.mwi_query(event, node=self.services.node_name)
        except mwi.MwiError as exc:
            self._invalid(f"MESSAGE_QUERY from {node.name} ignored: {exc}")
            return
        if query is not None:
            query.setdefault("Switch-Hostname", node.fs_hostname or "")
            if not query["Switch-Hostname"]:
                del query["Switch-Hostname"]
            self.stats["queries"] += 1
            self.services.outbox.send(contracts.MWI_QUERY, query)

    def _invalid(self, why: str) -> None:
        self.stats["invalid"] += 1
        self.services.metrics.errors.labels("mwi").inc()
        log.error(why)
