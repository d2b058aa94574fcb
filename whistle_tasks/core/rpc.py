"""Request and reply, the one way: a request out by its contract, its answer back by ``Msg-ID``.

A process has ONE reply queue, named by its ``Server-ID`` and bound on ``targeted``. A
request registers a waiter under its ``Msg-ID``, goes out where its contract says (a Celery
task on ``callmgr``, or the bridges' originate queue) and waits until the answer comes or
the budget is spent. The answer is validated against the contract on arrival: a message
that is not one of the contract's answers, or is malformed, is counted, logged and handed
back as a generic ``error`` (the caller treats it as a failed request, never as data).
No result backend, no polling of results one by one (docs/design.md: 64 greenlets each
polling ``AsyncResult.get()`` fell to ~500/s with p99 over 500 ms).

Who uses it: the switch bridge (sending through its outbox), call-control whapps (the
originate of :mod:`whistle_tasks.whapps.callflow.call`) and the CLI (``whistle ask``).
The replies are received by an :class:`~whistle_tasks.core.inbox.Inbox` (gevent
processes) or a :class:`~whistle_tasks.core.inbox.PollingInbox` (a plain blocking process:
the CLI); either gives the waiters.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol

import schemas
from schemas.contract import Contract
from whistle_tasks.core import amqp
from whistle_tasks.core.inbox import Subscription
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

#: ``send(contract, msg)``: True when the request is on its way (False: refused now)
Send = Callable[[Contract, dict[str, Any]], bool]


class Waiter(Protocol):
    def set(self, value: Any) -> None: ...  # noqa: ANN401, D102
    def get(self, timeout: float) -> Any: ...  # noqa: ANN401, D102


class ReplyInbox(Protocol):
    """What the client needs of an inbox: a subscription, and waiters it can wake."""

    def subscribe(self, sub: Subscription) -> Subscription: ...  # noqa: D102
    def waiter(self) -> Waiter: ...  # noqa: D102


class Rpc:
    def __init__(self, inbox: ReplyInbox, server_id: str, *, send: Send,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self.inbox = inbox
        self.server_id = server_id
        self._send = send
        self._ready = ready
        self._waiting: dict[str, Waiter] = {}
        self.stats = {"sent": 0, "answered": 0, "timeouts": 0, "refused": 0, "late": 0,
                      "invalid": 0}
        inbox.subscribe(Subscription(queue=server_id,
                                     bindings=[(amqp.TARGETED.name, server_id)],
                                     handler=self._on_reply))

    def request(self, contract: Contract, msg: dict[str, Any],
                timeout: float) -> dict[str, Any] | None:
        """Send ``msg`` by ``contract``; its validated answer, or None after ``timeout``
        seconds (or at once when the request cannot be sent now)."""
        if not self._ready():
            self.stats["refused"] += 1
            return None
        msg_id = msg.get("Msg-ID") or uuid.uuid4().hex
        msg["Msg-ID"], msg["Server-ID"] = msg_id, self.server_id
        waiter = self.expect(msg_id)
        if not self._send(contract, msg):
            self.forget(msg_id)
            self.stats["refused"] += 1
            return None
        self.stats["sent"] += 1
        answer = self.wait(msg_id, waiter, timeout)
        if answer is None:
            self.stats["timeouts"] += 1
            return None
        self.stats["answered"] += 1
        try:
            return contract.check_answer(answer)
        except schemas.MessageError as exc:
            self.stats["invalid"] += 1
            log.error("%s: invalid answer from %s: %s", contract.request,
                      answer.get("App-Name", "?") if isinstance(answer, dict) else "?", exc)
            return schemas.build("error", {"Error-Message": f"invalid answer: {exc}",
                                           "Msg-ID": msg_id, "Request": contract.request})

    # -- the waiting table ------------------------------------------------------------------
    def expect(self, msg_id: str) -> Waiter:
        waiter = self.inbox.waiter()
        self._waiting[msg_id] = waiter
        return waiter

    def forget(self, msg_id: str) -> None:
        self._waiting.pop(msg_id, None)

    def wait(self, msg_id: str, waiter: Waiter, timeout: float) -> dict[str, Any] | None:
        """The answer, or None after ``timeout`` seconds."""
        try:
            return waiter.get(timeout=max(timeout, 0.001))
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(msg_id, None)

    def _on_reply(self, msg: dict[str, Any]) -> None:
        waiter = self._waiting.pop(str(msg.get("Msg-ID", "")), None)
        if waiter is None:
            self.stats["late"] += 1
            log.debug("answer %s %s came after its request gave up", msg.get("Event-Name"),
                      msg.get("Msg-ID"))
            return
        waiter.set(msg)

    @property
    def waiting(self) -> int:
        return len(self._waiting)
