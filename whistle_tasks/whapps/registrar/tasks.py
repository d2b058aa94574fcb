"""The registrar's Celery tasks: ``registrar.authn_req``, ``reg_success``, ``reg_sync``,
``reg_query``, ``reg_flush`` (API requests, see :mod:`whistle_tasks.whapps.handler` for the
convention) and ``registrar.expire`` (beat)."""

from __future__ import annotations

from typing import Any

from celery import signals

from schemas import contracts
from whistle_tasks.celery import app, consumed_queues
from whistle_tasks.core.couch import CouchError, Unavailable
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts, registrations
from whistle_tasks.whapps.handler import handler, reply
from whistle_tasks.whapps.registrar import authn

log = get_logger(__name__)
WHAPP = "registrar"
QUERY_FIELDS_ALL = registrations.REG_FIELDS


@handler(contracts.AUTHN)
def authn_req(msg: dict[str, Any]) -> str:
    """Answer with the device's password or a1-hash, or ``authn_err``."""
    try:
        name, data = authn.answer(msg)
    except CouchError as exc:
        # CouchDB is away and nothing cached: refuse now rather than let the switch hang
        log.error("authn_req for %s@%s: %s", msg.get("Auth-User"), msg.get("Auth-Realm"), exc)
        name, data = "authn_err", {}
    reply(msg, name, data, WHAPP)
    return name


@handler(contracts.REG_SUCCESS, bind=True, max_retries=None)
def reg_success(task: Any, msg: dict[str, Any]) -> str | None:  # noqa: ANN401
    """Store a registration; while CouchDB is away, retry with back-off (nothing lost)."""
    try:
        return registrations.store(msg)
    except Unavailable as exc:
        delay = min(2 ** min(task.request.retries, 5), 30)
        log.warning("reg_success for %s@%s waits for CouchDB (retry in %ss)",
                    msg.get("Username"), msg.get("Realm"), delay)
        raise task.retry(exc=exc, countdown=delay) from None


@handler(contracts.REG_SYNC, bind=True, max_retries=None)
def reg_sync(task: Any, msg: dict[str, Any]) -> dict[str, int]:  # noqa: ANN401
    """A bridge connected to a node: reconcile that node's registrations with what it
    holds; while CouchDB is away, retry with back-off (nothing lost)."""
    node = str(msg["FreeSWITCH-Hostname"])
    try:
        counts = registrations.sync(node, float(msg["Event-Timestamp"]),
                                    msg["Registrations"])
    except Unavailable as exc:
        delay = min(2 ** min(task.request.retries, 5), 30)
        log.warning("reg_sync of %s waits for CouchDB (retry in %ss)", node, delay)
        raise task.retry(exc=exc, countdown=delay) from None
    log.info("node %s holds %d registrations: %d stored, %d removed, %d already known",
             node, counts["held"], counts["stored"], counts["removed"], counts["unchanged"])
    return counts


@handler(contracts.REG_QUERY)
def reg_query(msg: dict[str, Any]) -> str:
    found = registrations.query(msg.get("Realm"), msg.get("Username"))
    if not found:
        reply(msg, "reg_query_error", {}, WHAPP)
        return "reg_query_error"
    if str(msg.get("Count-Only", "")).lower() == "true" or msg.get("Count-Only") is True:
        reply(msg, "reg_query_resp", {"Count": len(found)}, WHAPP)
        return "reg_query_resp"
    fields = msg.get("Fields") or QUERY_FIELDS_ALL
    if isinstance(fields, str):
        fields = [fields]
    rows = [{k: v for k, v in reg.items() if k in fields} for reg in found]
    reply(msg, "reg_query_resp", {"Fields": rows, "Count": len(rows)}, WHAPP)
    return "reg_query_resp"


@handler(contracts.REG_FLUSH)
def reg_flush(msg: dict[str, Any]) -> int:
    return registrations.flush(msg["Realm"], msg.get("Username"))


@app.task(name="registrar.expire", ignore_result=True, acks_late=True)
def expire() -> int:
    """Beat: delete the registrations whose time is up (documents and cache)."""
    return registrations.expire()


@signals.worker_ready.connect
def _prime(sender: Any = None, **_: Any) -> None:  # noqa: ANN401
    """When a worker that serves the registrar starts: caches primed."""
    queues = consumed_queues(sender)
    if WHAPP not in queues:
        return
    try:
        users = registrations.prime_users()
        regs = len(users)
        primed = accounts.prime(hot=users)
        log.info("registrar ready: %d accounts/credentials and %d registrations cached",
                 primed, regs)
    except CouchError as exc:
        log.error("registrar could not prime its caches: %s (continuing cold)", exc)
