"""One Whistle request from a blocking process (the CLI), by its contract: sent with the
process's publisher, answered on a reply queue of its own (``PollingInbox``), through the
one request/reply client (:class:`~whistle_tasks.core.rpc.Rpc`)."""

from __future__ import annotations

import uuid
from typing import Any

from schemas.contract import Contract
from whistle_tasks.core import amqp
from whistle_tasks.core.config import settings
from whistle_tasks.core.inbox import PollingInbox
from whistle_tasks.core.rpc import Rpc


def request(contract: Contract, msg: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """Send ``msg`` by ``contract``; its validated answer (None: none within ``timeout``)."""
    inbox = PollingInbox(settings.amqp_url, name="cli")
    publisher = amqp.Publisher(settings.amqp_url)

    def send(c: Contract, m: dict[str, Any]) -> bool:
        publisher.send(c, m)
        return True

    try:
        return Rpc(inbox, f"cli-{uuid.uuid4().hex}", send=send).request(contract, msg, timeout)
    finally:
        publisher.close()
        inbox.close()
