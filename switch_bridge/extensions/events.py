"""Events: what happens on FreeSWITCH, told to Whistle.

    every ESL event of every node
      → CUSTOM sofia::register / unregister / expire: a ``reg_success`` (``Expires`` 0 for
        the last two) to the registrar by contracts.REG_SUCCESS (persistent: a broker restart
        loses none)
      → a channel event of the API (translate.CALL_EVENTS): a ``call_event`` on ``callevt``,
        key ``call.<EVENT_NAME>.<call-id>``; when the application ran for a whapp's command,
        the event names that command (``Application-Name``) and, on its completion, answers
        it (``Msg-Reply-ID`` = the command's ``Msg-ID``)
      → anything else: ignored (counted)

Everything goes out through the outbox (confirmed, buffered while RabbitMQ is away). An
event that cannot be translated is logged and counted, and the stream goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas import contracts
from switch_bridge import APP_NAME
from switch_bridge.extensions.base import Extension, Services
from switch_bridge.freeswitch import translate
from switch_bridge.freeswitch.esl.node import EslNode
from switch_bridge.freeswitch.esl.protocol import Event
from whistle_tasks.core import amqp
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

#: the whapp command a FreeSWITCH application ran for, by its ``Application-UUID``
CommandOf = Callable[[str | None], dict[str, Any] | None]


class Events(Extension):
    name = "events"

    def __init__(self, services: Services, *, command_of: CommandOf) -> None:
        self.services = services
        self.command_of = command_of

    def on_event(self, node: EslNode, event: Event) -> None:
        m = self.services.metrics
        try:
            # the node and sequence of the event ride on its message: once RabbitMQ
            # confirms it, it is the checkpoint a standby takes over from (redundancy.py)
            seq, core = event.get("Event-Sequence"), event.get("Core-UUID")
            mark = (node.name, (core, int(seq))) if core and seq and seq.isdigit() else None
            if event.name == "CUSTOM":
                published = self._registration(event, mark)
            else:
                published = self._call_event(event, mark)
        except Exception as exc:  # noqa: BLE001 - one bad event never stops the stream
            m.ev_invalid.inc()
            log.error("event %s from %s not translated: %s", event.name, node.name, exc)
            return
        (m.ev_published if published else m.ev_ignored).inc()

    def _call_event(self, event: Event, mark: tuple[str, Any] | None = None) -> bool:
        translated = translate.call_event(event, node=self.services.node_name,
                                          app_name=APP_NAME)
        if translated is None:
            return False
        key, msg = translated
        command = self.command_of(event.get("Application-UUID"))
        if command is not None:
            msg["Application-Name"] = command["Application-Name"]
            if command.get("Msg-ID") and event.name == "CHANNEL_EXECUTE_COMPLETE":
                msg["Msg-Reply-ID"] = command["Msg-ID"]
        return self.services.outbox.put_api(msg, amqp.CALLEVT.name, key, mark=mark)

    def _registration(self, event: Event, mark: tuple[str, Any] | None = None) -> bool:
        subclass = event.subclass or ""
        node = self.services.node_name
        if subclass == translate.REGISTER:
            msg = translate.reg_success(event, node=node)
        elif subclass in (translate.UNREGISTER, translate.EXPIRE):
            msg = translate.deregistration(event, node=node)
        else:
            return False
        return msg is not None and self.services.outbox.send(contracts.REG_SUCCESS, msg,
                                                             mark=mark)
