"""Directory: FreeSWITCH asks who a SIP user is; the registrar answers; FreeSWITCH gets XML.

    POST /fs/directory (mod_xml_curl, ``action=sip_auth``)
      → lookups.authn_req (the form as an ``authn_req``)
      → the bridge's own copy (AuthCache: the XML of the last answer per realm/user)
      → else contracts.AUTHN over RabbitMQ to the registrar, within the answer budget
      → render.directory_user (the user's password or a1-hash as directory XML)

Anything else FreeSWITCH asks the directory (gateways, network lists, message counts...)
gets "not found", so it falls back to its own XML. A body that is not a proper lookup, an
answer that cannot be rendered, no answer in time: "not found" too (FreeSWITCH then refuses
the phone), each counted by outcome and logged.

FreeSWITCH keeps a directory answer marked ``cacheable`` (``WHISTLE_DIRECTORY_CACHEABLE_MS``
> 0) and asks again only when it lapses. A ``configuration`` broadcast about a device or an
account therefore does two things: it drops what the bridge's own cache holds for it, and
it runs ``xml_flush_cache id <user> <realm>`` on every connected node for each spelling of
that user FreeSWITCH asked us about (its cache is keyed by the digest's user and realm as
the phone wrote them), or ``xml_flush_cache`` (everything) for an account. A node that
connects is flushed whole: changes broadcast while it was away could not reach it. So a
change, a disable or a delete takes effect on the very next REGISTER.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import gevent

from schemas import contracts
from switch_bridge.authcache import AuthCache
from switch_bridge.extensions.base import Endpoint, Extension, Services
from switch_bridge.freeswitch import inventory, lookups, render
from switch_bridge.freeswitch.esl.node import STATE_CONNECTED, EslError, EslNode
from whistle_tasks.core import amqp
from whistle_tasks.core.inbox import Subscription
from whistle_tasks.core.log import call_id, get_logger

log = get_logger(__name__)

SECTION = "directory"
#: spellings remembered for flushing FreeSWITCH's cache (beyond: the whole cache is flushed)
MAX_SPELLINGS = 200_000


class Directory(Extension):
    name = "directory"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.cache = AuthCache(services.settings.auth_cache_ttl)
        self.cacheable_ms = services.settings.directory_cacheable_ms or None
        # identity (realm, user lower-cased) -> the (user, realm) spellings FreeSWITCH used
        self._spellings: OrderedDict[tuple[str, str], set[tuple[str, str]]] = OrderedDict()
        self._forgot_spellings = False
        self.stats = {"flushes": 0, "flush_errors": 0}
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
                if xml is None:
                    return "not_found", render.not_found()
                self._remember(self.cache.identity_of(realm, user), user, realm)
                return "cached", xml
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
                    variables={str(k): str(v) for k, v in ccvs.items()},
                    cacheable_ms=self.cacheable_ms)
            except ValueError as exc:
                s.metrics.errors.labels("unrenderable_directory").inc()
                log.error("directory %s@%s: answer cannot be rendered: %s", user, realm, exc)
                return "error", render.not_found()
            self.cache.put(realm, user, answer, xml)
            self._remember(self.cache.identity_of(realm, user), user, realm)
            return "answered", xml

    # -- FreeSWITCH's own cache -----------------------------------------------------------
    def _remember(self, identity: tuple[str, str] | None, user: str, realm: str) -> None:
        if identity is None:
            return
        spellings = self._spellings.get(identity)
        if spellings is None:
            if len(self._spellings) >= MAX_SPELLINGS:
                self._spellings.popitem(last=False)
                self._forgot_spellings = True
            spellings = self._spellings[identity] = set()
        spellings.add((user, realm))

    def flush_commands(self, change: dict[str, Any]) -> list[str]:
        """The ``xml_flush_cache`` commands a change broadcast needs on every node."""
        kind, realm, user = change.get("Type"), change.get("Realm"), change.get("Username")
        if kind not in ("device", "account"):
            return []
        if kind == "device" and realm and user and not self._forgot_spellings:
            identity = AuthCache.key(str(realm), str(user))
            spellings = self._spellings.pop(identity, set()) | {(str(user), str(realm))}
            return sorted({inventory.flush_directory_cache(u, r) for u, r in spellings})
        return [inventory.flush_directory_cache()]

    def _flush(self, node: EslNode, commands: list[str]) -> None:
        for command in commands:
            try:
                reply = node.api(command)
            except EslError as exc:
                reply = f"-ERR {exc}"
            if reply.startswith("+OK"):
                self.stats["flushes"] += 1
                log.debug("%s on %s: %s", command, node.name, reply.strip())
            else:
                self.stats["flush_errors"] += 1
                log.warning("%s on %s failed: %s", command, node.name, reply.strip())

    def on_node_state(self, node: EslNode, state: str) -> None:
        if state == STATE_CONNECTED:
            # changes broadcast while it was away never reached it
            gevent.spawn(self._flush, node, [inventory.flush_directory_cache()])

    def _on_change(self, msg: dict[str, Any]) -> None:
        if msg.get("Event-Category") != "configuration":
            return
        self.cache.on_change(msg)
        commands = self.flush_commands(msg)
        if commands:
            for node in self.services.nodes:
                if node.connected:
                    gevent.spawn(self._flush, node, commands)
