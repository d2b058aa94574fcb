"""Request and reply: a whapp request out as a Celery task, its answer back by ``Msg-ID``.

The bridge has ONE reply queue (its ``Server-ID``, bound on ``targeted``) consumed by the
inbox greenlet, and a table of waiting requests keyed by ``Msg-ID``. A request registers
its waiter, goes out through the outbox and sleeps on the waiter until the answer comes or
the budget is spent. No result backend, no polling of results one by one (DESIGN.md:
64 greenlets each polling ``AsyncResult.get()`` fell to ~500/s with p99 over 500 ms).
"""

from __future__ import annotations

import uuid
from typing import Any

import gevent
import gevent.event

from switch_bridge.inbox import Inbox, Subscription
from switch_bridge.outbox import Outbox
from whistle_tasks import amqp as wamqp
from whistle_tasks.util.log import get_logger

log = get_logger(__name__)


class Rpc:
    def __init__(self, outbox: Outbox, inbox: Inbox, server_id: str) -> None:
        self.outbox = outbox
        self.server_id = server_id
        self._waiting: dict[str, gevent.event.AsyncResult] = {}
        self.stats = {"sent": 0, "answered": 0, "timeouts": 0, "refused": 0, "late": 0}
        inbox.subscribe(Subscription(queue=server_id,
                                     bindings=[(wamqp.TARGETED.name, server_id)],
                                     handler=self._on_reply))

    def _on_reply(self, msg: dict[str, Any]) -> None:
        waiter = self._waiting.pop(str(msg.get("Msg-ID", "")), None)
        if waiter is None:
            self.stats["late"] += 1
            log.debug("reply %s %s came after its request gave up", msg.get("Event-Name"),
                      msg.get("Msg-ID"))
            return
        waiter.set(msg)

    def request(self, task_name: str, msg: dict[str, Any], key: str,
                timeout: float) -> dict[str, Any] | None:
        """Send ``msg`` to the whapp task ``task_name``; its answer, or None after ``timeout``
        seconds (or at once when RabbitMQ is away or the outbox is full)."""
        if not self.outbox.connected:
            self.stats["refused"] += 1
            return None
        msg_id = msg.get("Msg-ID") or uuid.uuid4().hex
        msg["Msg-ID"], msg["Server-ID"] = msg_id, self.server_id
        waiter = gevent.event.AsyncResult()
        self._waiting[msg_id] = waiter
        if not self.outbox.put_request(task_name, msg, key):
            self._waiting.pop(msg_id, None)
            self.stats["refused"] += 1
            return None
        self.stats["sent"] += 1
        try:
            answer = waiter.get(timeout=max(timeout, 0.001))
        except gevent.Timeout:
            self._waiting.pop(msg_id, None)
            self.stats["timeouts"] += 1
            return None
        self.stats["answered"] += 1
        return answer

    @property
    def waiting(self) -> int:
        return len(self._waiting)
