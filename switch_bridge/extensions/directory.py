"""Directory: FreeSWITCH asks who a SIP user is; the registrar answers; FreeSWITCH gets XML.

    POST /fs/directory (mod_xml_curl, ``action=sip_auth``)
      → lookups.authn_req (the form as an ``authn_req``)
      → the bridge's own copy (AuthCache: the XML of the last answer per realm/user)
      → else contracts.AUTHN over RabbitMQ to the registrar, within the answer budget
      → render.directory_user (the user's password or a1-hash as directory XML)

Anything else FreeSWITCH asks the directory (gateways, network lists, message counts...)
gets "not found", so it falls back to its own XML. A body that is not a proper lookup, an
answer that cannot be rendered, no answer in time: "not found" too (FreeSWITCH then refuses
the phone), each counted by outcome and logged. A ``configuration`` broadcast about a
device or an account drops what the cache holds for it, so a change takes effect on the
very next REGISTER.
"""

from __future__ import annotations

from typing import Any

from schemas import contracts
from switch_bridge.authcache import AuthCache
from switch_bridge.extensions.base import Endpoint, Extension, Services
from switch_bridge.freeswitch import lookups, render
from whistle_tasks.core import amqp
from whistle_tasks.core.inbox import Subscription
from whistle_tasks.core.log import call_id, get_logger

log = get_logger(__name__)

SECTION = "directory"


class Directory(Extension):
    name = "directory"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.cache = AuthCache(services.settings.auth_cache_ttl)
        services.inbox.subscribe(Subscription(
            queue=f"{services.server_id}.configuration",
            bindings=[(amqp.CONFIGURATION.name, "doc.#")], handler=self._on_change))
        services.metrics.gauge("whistle_bridge_auth_cache_entries",
                               "Credentials cached in the bridge", lambda: len(self.cache))

    def routes(self) -> dict[str, Endpoint]:
        return {"/fs/directory": self.lookup}

    def lookup(self, body: bytes, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        return self.services.lookup(SECTION, self.answer, body)

    def answer(self, body: bytes) -> tuple[str, bytes]:
        """``(outcome, XML)`` for one directory POST."""
        s = self.services
        try:
            form = lookups.parse_form(body)
            if lookups.directory_kind(form) != "sip_auth":
                return "not_found", render.not_found()
            request = lookups.authn_req(form, server_id=s.server_id, node=s.node_name)
        except ValueError as exc:          # lookups.FetchError is one
            s.metrics.errors.labels("malformed_directory").inc()
            log.error("directory lookup rejected: %s", exc)
            return "malformed", render.not_found()
        realm, user = str(request["Auth-Realm"]), str(request["Auth-User"])
        with call_id(request.get("Call-ID")):
            found, xml = self.cache.get(realm, user)
            if found:
                return ("cached", xml) if xml is not None else ("not_found", render.not_found())
            answer = s.rpc.request(contracts.AUTHN, request, s.budget)
            if answer is None:
                outcome = s.no_answer(SECTION)
                log.warning("directory %s@%s: no answer within %.0f ms (%s)", user, realm,
                            s.budget * 1000, outcome)
                return outcome, render.not_found()
            if answer["Event-Name"] == "authn_err":
                self.cache.put(realm, user, None)
                return "not_found", render.not_found()
            if answer["Event-Name"] != "authn_resp":
                log.error("directory %s@%s: %s", user, realm, answer.get("Error-Message"))
                return "error", render.not_found()
            try:
                ccvs = answer.get("Custom-Channel-Vars") or {}
                xml = render.directory_user(
                    realm, user, method=answer["Auth-Method"], secret=answer["Auth-Password"],
                    variables={str(k): str(v) for k, v in ccvs.items()})
            except ValueError as exc:
                s.metrics.errors.labels("unrenderable_directory").inc()
                log.error("directory %s@%s: answer cannot be rendered: %s", user, realm, exc)
                return "error", render.not_found()
            self.cache.put(realm, user, answer, xml)
            return "answered", xml

    def _on_change(self, msg: dict[str, Any]) -> None:
        if msg.get("Event-Category") == "configuration":
            self.cache.on_change(msg)
