"""Dialplan: FreeSWITCH asks where a call goes; the router answers; FreeSWITCH gets XML.

    POST /fs/dialplan (mod_xml_curl)
      → lookups.route_req (the channel as a ``route_req``) and lookups.call_context
      → contracts.ROUTE over RabbitMQ to the router, within the answer budget
      → render.dialplan (bridge to the routes, park, or respond with an error)
      → a park answer is handed to call control (``on_park``) before FreeSWITCH has the XML,
        so the call's control queue exists when the winner starts sending commands

No answer in time (or RabbitMQ away): ``respond 604 no available handlers``, counted. A
malformed body: "not found" (FreeSWITCH falls back to its own dialplan), counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas import contracts
from switch_bridge.extensions.base import Endpoint, Extension, Services
from switch_bridge.freeswitch import lookups, render
from whistle_tasks.core.log import call_id, get_logger

log = get_logger(__name__)

SECTION = "dialplan"

#: ``on_park(route_resp, call context, route_req)``
ParkHook = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], None]


class Dialplan(Extension):
    name = "dialplan"

    def __init__(self, services: Services, *, on_park: ParkHook) -> None:
        self.services = services
        self.on_park = on_park

    def routes(self) -> dict[str, Endpoint]:
        return {"/fs/dialplan": self.lookup}

    def lookup(self, body: bytes, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        if self.services.settings.bridge_lease_ms > 0:
            try:
                node = lookups.call_context(lookups.parse_form(body))["node"]
            except ValueError:
                node = None             # answer() says what is wrong with it
            if self.services.standby_for(node):
                # a park would be controlled here, but the node's events are published by
                # its active bridge: mod_xml_curl asks its next binding (the active one)
                self.services.metrics.req[SECTION, "refused"].inc()
                return 503, "text/plain", b"standby bridge for this node\n"
        return self.services.lookup(SECTION, self.answer, body)

    def answer(self, body: bytes) -> tuple[str, bytes]:
        """``(outcome, XML)`` for one dialplan POST."""
        s = self.services
        try:
            form = lookups.parse_form(body)
            request = lookups.route_req(form, server_id=s.server_id, node=s.node_name)
            call = lookups.call_context(form)
        except ValueError as exc:          # lookups.FetchError is one
            s.metrics.errors.labels("malformed_dialplan").inc()
            log.error("dialplan lookup rejected: %s", exc)
            return "malformed", render.not_found()
        with call_id(request.get("Call-ID")):
            answer = s.rpc.request(contracts.ROUTE, request, s.budget)
            if answer is None:
                outcome = s.no_answer(SECTION)
                log.warning("route_req for %s: no answer within %.0f ms (%s)",
                            request.get("Request"), s.budget * 1000, outcome)
                return outcome, render.dialplan_no_handler(call)
            if answer["Event-Name"] != "route_resp":
                log.error("route_req for %s: %s", request.get("Request"),
                          answer.get("Error-Message"))
                return "error", render.dialplan_no_handler(call)
            try:
                xml = render.dialplan(answer, call)
            except ValueError as exc:
                s.metrics.errors.labels("unrenderable_route").inc()
                log.error("route_resp cannot be rendered: %s", exc)
                return "error", render.dialplan_no_handler(call)
            if answer["Method"] == "park":
                self.on_park(answer, call, request)
            return "answered", xml
