"""The AMQP side of a call-control worker process (a Celery worker on the gevent pool).

One per process, started on first use: an :class:`~whistle_tasks.core.inbox.Inbox` (each call's
event queue, the process's reply queue), the request/reply client
(:class:`~whistle_tasks.core.rpc.Rpc`) and the lean publisher of
:mod:`whistle_tasks.whapps.handler`. Thousands of calls share them; each
call only adds a subscription and a greenlet queue.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid

from whistle_tasks.core.config import settings
from whistle_tasks.core.inbox import Inbox
from whistle_tasks.core.rpc import Rpc
from whistle_tasks.whapps.handler import send


class Runtime:
    def __init__(self) -> None:
        self.server_id = f"callflow.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.inbox = Inbox(settings.amqp_url, name="callflow inbox")
        self.rpc = Rpc(self.inbox, self.server_id, send=send)
        self.inbox.start()
        if not self.inbox.ready.wait(10):
            raise RuntimeError("call-control runtime: RabbitMQ did not answer in 10 s")


_runtime: Runtime | None = None
_pid = 0
_lock = threading.Lock()


def runtime() -> Runtime:
    """The process's runtime (made again after a fork)."""
    global _runtime, _pid
    with _lock:
        if _runtime is None or _pid != os.getpid():
            _runtime, _pid = Runtime(), os.getpid()
        return _runtime
