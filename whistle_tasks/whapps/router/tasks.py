"""The router's Celery task: ``router.route_req`` → ``route_resp`` (see routing.py)."""

from __future__ import annotations

from typing import Any

from celery import signals

from schemas import contracts
from whistle_tasks.celery import consumed_queues
from whistle_tasks.core.couch import CouchError
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts, callflows
from whistle_tasks.whapps.handler import handler, reply
from whistle_tasks.whapps.router import routing

log = get_logger(__name__)
WHAPP = "router"


@handler(contracts.ROUTE)
def route_req(msg: dict[str, Any]) -> str:
    try:
        data = routing.route(msg)
    except CouchError as exc:
        log.error("route_req for %s: %s", msg.get("Request"), exc)
        data = routing.error(503)
    reply(msg, "route_resp", data, WHAPP)
    return str(data["Method"])


@signals.worker_ready.connect
def _prime(sender: Any = None, **_: Any) -> None:  # noqa: ANN401
    queues = consumed_queues(sender)
    if WHAPP not in queues:
        return
    try:
        primed = 0 if "registrar" in queues else accounts.prime()  # the registrar primes too
        log.info("router ready: %d accounts/credentials and %d callflows cached", primed,
                 callflows.prime())
    except CouchError as exc:
        log.error("router could not prime its caches: %s (continuing cold)", exc)
