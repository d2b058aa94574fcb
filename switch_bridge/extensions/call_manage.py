"""Call management: hang up or transfer a call in progress, asked from outside the call.

Every bridge binds a queue of its own on ``callmgr`` to ``call.manage.*``
(contracts.CALL_HANGUP / CALL_TRANSFER), so each hears every request. A bridge acts only
on a call one of its FreeSWITCH nodes carries, and only that bridge answers
(``call_manage_resp`` to the request's ``Server-ID``); no decision is made here:

* hang-up of a call under call control: a ``hangup`` command on the call's own queue
  (``Insert-At`` now), so its whapp sees it as any command; otherwise ``uuid_kill``;
* transfer: ``uuid_transfer <call> <to> XML <context>`` (the dialplan lookup that follows
  asks the router, as for any call).
"""

from __future__ import annotations

import uuid
from typing import Any

import gevent

import schemas
from schemas import contracts
from schemas.call_manage import TRANSFER_TO_CHARS
from switch_bridge import APP_NAME
from switch_bridge.extensions.base import Extension, Services
from switch_bridge.extensions.call_control import CallControl
from switch_bridge.freeswitch.esl.node import EslError
from whistle_tasks.core import amqp as wamqp
from whistle_tasks.core.inbox import Subscription
from whistle_tasks.core.log import call_id, get_logger

log = get_logger(__name__)

HANGUP_CAUSES = frozenset({"NORMAL_CLEARING", "CALL_REJECTED", "USER_BUSY", "NO_ANSWER",
                           "ORIGINATOR_CANCEL", "MANAGER_REQUEST"})


class CallManage(Extension):
    name = "call_manage"

    def __init__(self, services: Services, control: CallControl) -> None:
        self.services = services
        self.control = control
        self.queue = f"call_manage.{services.server_id}"
        self.stats = {"requests": 0, "done": 0, "not_here": 0, "rejected": 0}

    def start(self) -> None:
        self.services.inbox.subscribe(Subscription(
            queue=self.queue, bindings=[(contracts.CALL_HANGUP.exchange,
                                         str(contracts.CALL_HANGUP.binding))],
            handler=lambda msg: gevent.spawn(self._on_request, msg)))

    def _on_request(self, msg: dict[str, Any]) -> None:
        self.stats["requests"] += 1
        with call_id(msg.get("Call-ID") if isinstance(msg, dict) else None):
            try:
                schemas.validate(msg)
                if msg.get("Event-Category") != "call_manage" or msg.get(
                        "Event-Name") not in ("call_hangup_req", "call_transfer_req"):
                    raise schemas.MessageError("call_manage", {"Event-Name": ["not a request"]})
            except schemas.MessageError as exc:
                self.stats["rejected"] += 1
                log.error("call management request rejected: %s", exc)
                return
            target = msg["Call-ID"]
            try:
                if msg["Event-Name"] == "call_hangup_req":
                    done = self._hangup(target, msg.get("Hangup-Cause") or "NORMAL_CLEARING")
                else:
                    done = self._transfer(target, str(msg["Transfer-To"]),
                                          str(msg.get("Transfer-Context") or "default"))
            except ValueError as exc:
                self._answer(msg, "error", str(exc))
                return
            if done is None:
                self.stats["not_here"] += 1
                return  # not one of our calls: another bridge answers
            self.stats["done"] += 1
            self._answer(msg, "ok", "", switch=done)

    def _hangup(self, target: str, cause: str) -> str | None:
        if cause not in HANGUP_CAUSES:
            raise ValueError(f"Hangup-Cause {cause!r} is not one of {sorted(HANGUP_CAUSES)}")
        controlled = self.control.calls.get(target)
        if controlled is not None and not controlled.hungup:
            command = schemas.build("hangup", {"Call-ID": target, "Insert-At": "now"},
                                    **{"App-Name": APP_NAME})
            controlled.command(command)
            return controlled.node.fs_hostname or controlled.node.name
        return self._on_nodes(f"uuid_kill {target} {cause}")

    def _transfer(self, target: str, to: str, context: str) -> str | None:
        if not to or any(c not in TRANSFER_TO_CHARS for c in to):
            raise ValueError(f"Transfer-To {to!r}: only digits, letters and + * # _ - .")
        if not context or any(c not in TRANSFER_TO_CHARS for c in context):
            raise ValueError(f"Transfer-Context {context!r}: only letters, digits, _ - .")
        return self._on_nodes(f"uuid_transfer {target} {to} XML {context}")

    def _on_nodes(self, command: str) -> str | None:
        """Run ``command`` on each connected node until one has the call (its name)."""
        target = command.split()[1]
        if any(c not in "0123456789abcdefABCDEF-" for c in target):
            return None  # FreeSWITCH's call ids are UUIDs: never one of ours
        for node in self.services.nodes:
            if not node.connected or not self.services.acting(node):
                continue        # a standby leaves it to the node's active bridge
            try:
                reply = node.api(command)
            except EslError as exc:
                log.warning("%s on %s failed: %s", command.split()[0], node.name, exc)
                continue
            if reply.startswith("+OK"):
                return node.fs_hostname or node.name
        return None

    def _answer(self, request: dict[str, Any], result: str, error: str, *,
                switch: str = "") -> None:
        server_id = request.get("Server-ID")
        if not server_id:
            return
        data = {"Call-ID": request["Call-ID"], "Result": result,
                "Msg-ID": request.get("Msg-ID") or uuid.uuid4().hex}
        if error:
            data["Error-Message"] = error
        if switch:
            data["Switch-Hostname"] = switch
        answer = schemas.build("call_manage_resp", data,
                               **{"App-Name": APP_NAME, "Node": self.services.node_name})
        self.services.outbox.put_api(answer, wamqp.TARGETED.name, server_id)
