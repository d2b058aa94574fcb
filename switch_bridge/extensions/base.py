"""The shape of a bridge extension, and the services the host gives every one of them.

The host (:mod:`switch_bridge.host`) owns the connections and calls each extension's
hooks; an extension overrides only those it needs:

* :meth:`Extension.routes`: the HTTP paths it answers (mod_xml_curl sections);
* :meth:`Extension.on_event`: every event of every FreeSWITCH node, in arrival order
  (``event_names``: the events it needs besides the call events);
* :meth:`Extension.on_node_state`: a node connected (``connected``) or lost (``down``...);
* :meth:`Extension.start` / :meth:`Extension.stop`.

An exception in a hook is the extension's bug, not the stream's end: the host logs and
counts it and carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from switch_bridge.freeswitch.esl.node import EslNode
from switch_bridge.freeswitch.esl.protocol import Event
from switch_bridge.metrics import Metrics
from switch_bridge.outbox import Outbox
from whistle_tasks.core.config import Settings
from whistle_tasks.core.inbox import Inbox
from whistle_tasks.core.rpc import Rpc
from whistle_tasks.core.timer import Timer

#: an HTTP endpoint: ``(body, request environ) -> (status, content type, payload)``
Endpoint = Callable[[bytes, dict[str, Any]], tuple[int, str, bytes]]
XML = "text/xml"


@dataclass
class Services:
    """What every extension may use (one of each per bridge)."""

    settings: Settings
    node_name: str          # our ``Node`` in messages
    server_id: str          # our reply queue
    metrics: Metrics
    outbox: Outbox          # everything we send
    inbox: Inbox            # everything we receive
    rpc: Rpc                # requests to whapps by contract
    nodes: list[EslNode]
    #: True while this bridge is the node's active bridge (redundancy.py; always without
    #: leases): only then does it publish, execute, originate for it
    acting: Callable[[EslNode], bool] = lambda node: True

    @property
    def budget(self) -> float:
        """Seconds a lookup may wait for a whapp (``WHISTLE_ANSWER_BUDGET_MS``)."""
        return self.settings.answer_budget_ms / 1000.0

    def node_for(self, hostname: str | None) -> EslNode | None:
        """The connected node that serves FreeSWITCH ``hostname`` (any, if only one)."""
        live = [n for n in self.nodes if n.connected and self.acting(n)]
        for node in live:
            if hostname and node.fs_hostname == hostname:
                return node
        return live[0] if len(live) == 1 or not hostname else None

    def standby_for(self, hostname: str | None) -> bool:
        """True when FreeSWITCH ``hostname`` is one of our nodes and another bridge is
        its active one (we only stand by)."""
        return any(n.fs_hostname == hostname and not self.acting(n) for n in self.nodes
                   if hostname)

    def no_answer(self, section: str) -> str:
        """The outcome of a lookup nobody answered: ``refused`` (RabbitMQ is away, we did
        not even ask) or ``timeout`` (counted)."""
        if not self.outbox.connected:
            return "refused"
        self.metrics.tmo[section].inc()
        return "timeout"

    def lookup(self, section: str, answer: Callable[[bytes], tuple[str, bytes]],
               body: bytes) -> tuple[int, str, bytes]:
        """Answer one mod_xml_curl lookup; its outcome and time are counted whatever happens."""
        timer = Timer()
        outcome = "error"
        try:
            outcome, xml = answer(body)
            return 200, XML, xml
        finally:
            self.metrics.req[section, outcome].inc()
            self.metrics.lat[section].observe(timer.elapsed)


class Extension:
    """A capability of the bridge (see the module docstring for the hooks)."""

    name = "extension"
    #: FreeSWITCH events it needs besides the call events (the host subscribes to them)
    event_names: tuple[str, ...] = ()

    def routes(self) -> dict[str, Endpoint]:
        return {}

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def on_event(self, node: EslNode, event: Event) -> None:
        return None

    def on_node_state(self, node: EslNode, state: str) -> None:
        return None
