"""Request and reply: a whapp request out as a Celery task, its answer back by ``Msg-ID``.

The bridge has ONE reply queue (its ``Server-ID``, bound on ``targeted``) consumed by the
inbox greenlet (:class:`whistle_tasks.replies.Replies`). A request registers its waiter,
goes out through the outbox and sleeps on the waiter until the answer comes or the budget
is spent. No result backend, no polling of results one by one (docs/design.md: 64 greenlets
each polling ``AsyncResult.get()`` fell to ~500/s with p99 over 500 ms).
"""

from __future__ import annotations

import uuid
from typing import Any

from switch_bridge.outbox import Outbox
from whistle_tasks.inbox import Inbox
from whistle_tasks.replies import Replies


class Rpc:
    def __init__(self, outbox: Outbox, inbox: Inbox, server_id: str) -> None:
        self.outbox = outbox
        self.server_id = server_id
        self.replies = Replies(inbox, server_id)
        self.stats = {"sent": 0, "answered": 0, "timeouts": 0, "refused": 0}

    def request(self, task_name: str, msg: dict[str, Any], key: str,
                timeout: float) -> dict[str, Any] | None:
        """Send ``msg`` to the whapp task ``task_name``; its answer, or None after ``timeout``
        seconds (or at once when RabbitMQ is away or the outbox is full)."""
        if not self.outbox.connected:
            self.stats["refused"] += 1
            return None
        msg_id = msg.get("Msg-ID") or uuid.uuid4().hex
        msg["Msg-ID"], msg["Server-ID"] = msg_id, self.server_id
        waiter = self.replies.expect(msg_id)
        if not self.outbox.put_request(task_name, msg, key):
            self.replies.forget(msg_id)
            self.stats["refused"] += 1
            return None
        self.stats["sent"] += 1
        answer = self.replies.wait(msg_id, waiter, timeout)
        self.stats["answered" if answer is not None else "timeouts"] += 1
        return answer

    @property
    def waiting(self) -> int:
        return self.replies.waiting
