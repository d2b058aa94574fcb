"""The bridge's Prometheus metrics (served at ``/metrics``), in one registry per bridge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

SECTIONS = ("directory", "dialplan")
OUTCOMES = ("answered", "cached", "refused", "not_found", "timeout", "malformed", "forbidden",
            "error")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("whistle_bridge_requests", "mod_xml_curl requests by section "
                                "and outcome", ["section", "outcome"], registry=r)
        self.latency = Histogram("whistle_bridge_answer_seconds", "Time to answer FreeSWITCH",
                                 ["section"], buckets=LATENCY_BUCKETS, registry=r)
        self.timeouts = Counter("whistle_bridge_timeouts", "Requests no whapp answered within "
                                "the budget", ["section"], registry=r)
        self.errors = Counter("whistle_bridge_errors", "Errors by kind (malformed bodies, "
                              "broken frames, bad messages...)", ["kind"], registry=r)
        self.events = Counter("whistle_bridge_events", "FreeSWITCH events by outcome "
                              "(published, ignored, invalid)", ["outcome"], registry=r)
        # children bound once: the hot path does no label look-up
        self.req = {(s, o): self.requests.labels(s, o) for s in SECTIONS for o in OUTCOMES}
        self.lat = {s: self.latency.labels(s) for s in SECTIONS}
        self.tmo = {s: self.timeouts.labels(s) for s in SECTIONS}
        self.ev_published = self.events.labels("published")
        self.ev_ignored = self.events.labels("ignored")
        self.ev_invalid = self.events.labels("invalid")

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        Gauge(name, doc, registry=self.registry).set_function(read)

    def node_collector(self, nodes: Callable[[], list],
                       role: Callable[[Any], str] = lambda node: "active",
                       window: Callable[[Any], int] = lambda node: 0) -> None:
        """ESL node status (1 connected, 0 not), events received, this bridge's role for
        it (1 active, 0 standby) and the events its window holds, per node."""

        class _Nodes:
            def collect(self_inner):  # noqa: ANN001, ANN202, N805
                up = GaugeMetricFamily("whistle_bridge_esl_node_up",
                                       "1 when the FreeSWITCH event socket is connected",
                                       labels=["node"])
                seen = GaugeMetricFamily("whistle_bridge_esl_node_events",
                                         "Events received from the node", labels=["node"])
                recon = GaugeMetricFamily("whistle_bridge_esl_node_reconnects",
                                          "Reconnects of the node's event socket",
                                          labels=["node"])
                calls = GaugeMetricFamily("whistle_bridge_esl_node_sessions",
                                          "Sessions on the node (last HEARTBEAT, or read "
                                          "when the bridge connected)", labels=["node"])
                active = GaugeMetricFamily("whistle_bridge_node_active",
                                           "1 when this bridge is the node's active bridge, "
                                           "0 when it stands by", labels=["node"])
                held = GaugeMetricFamily("whistle_bridge_node_window",
                                         "Events kept for a takeover", labels=["node"])
                for node in nodes():
                    active.add_metric([node.name], 1.0 if role(node) == "active" else 0.0)
                    held.add_metric([node.name], float(window(node)))
                    stats = node.stats()
                    up.add_metric([node.name], 1.0 if node.connected else 0.0)
                    seen.add_metric([node.name], float(stats.get("events", 0)))
                    recon.add_metric([node.name], float(stats.get("reconnects", 0)))
                    calls.add_metric([node.name], float(node.sessions or 0))
                yield from (up, seen, recon, calls, active, held)

        self.registry.register(_Nodes())

    def render(self) -> bytes:
        return generate_latest(self.registry)
