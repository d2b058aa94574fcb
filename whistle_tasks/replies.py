"""Answers to our requests, matched by ``Msg-ID`` (for gevent processes: bridge, call whapps).

A process has ONE reply queue, named by its ``Server-ID`` and bound on ``targeted``; every
answer that comes back wakes the waiter registered under its ``Msg-ID``. No polling.
"""

from __future__ import annotations

from typing import Any

import gevent.event

from whistle_tasks import amqp
from whistle_tasks.inbox import Inbox, Subscription
from whistle_tasks.util.log import get_logger

log = get_logger(__name__)


class Replies:
    def __init__(self, inbox: Inbox, server_id: str) -> None:
        self.server_id = server_id
        self._waiting: dict[str, gevent.event.AsyncResult] = {}
        self.late = 0
        inbox.subscribe(Subscription(queue=server_id,
                                     bindings=[(amqp.TARGETED.name, server_id)],
                                     handler=self._on_reply))

    def expect(self, msg_id: str) -> gevent.event.AsyncResult:
        waiter = gevent.event.AsyncResult()
        self._waiting[msg_id] = waiter
        return waiter

    def forget(self, msg_id: str) -> None:
        self._waiting.pop(msg_id, None)

    def wait(self, msg_id: str, waiter: gevent.event.AsyncResult,
             timeout: float) -> dict[str, Any] | None:
        """The answer, or None after ``timeout`` seconds."""
        try:
            return waiter.get(timeout=max(timeout, 0.001))
        except gevent.Timeout:
            return None
        finally:
            self._waiting.pop(msg_id, None)

    def _on_reply(self, msg: dict[str, Any]) -> None:
        waiter = self._waiting.pop(str(msg.get("Msg-ID", "")), None)
        if waiter is None:
            self.late += 1
            log.debug("answer %s %s came after its request gave up", msg.get("Event-Name"),
                      msg.get("Msg-ID"))
            return
        waiter.set(msg)

    @property
    def waiting(self) -> int:
        return len(self._waiting)
