"""``callflow.route_win``: the bridge hands a parked call to the callflow its number runs.

The router parked the call with ``Custom-Channel-Vars`` naming the callflow
(``Callflow-ID``, ``Account-ID``, ``Realm``, ``Dialled-Number``, ``Callflow-Number``); the
task loads it and runs it (:mod:`.engine`) for as long as the call lasts (on the gevent
pool a waiting call is a sleeping greenlet). Whatever happens, the end hangs the call up if
it is still up and closes its event queue; an error is logged with the call id, never left
hanging. (A park naming only ``Whapp``, from a router of before callflows, runs that call
app as a one-node callflow.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas import contracts
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import CouchError
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts, callflows
from whistle_tasks.whapps.callflow import engine, registry
from whistle_tasks.whapps.callflow.call import Call, CallError
from whistle_tasks.whapps.callflow.context import Context
from whistle_tasks.whapps.handler import handler

log = get_logger(__name__)
WHAPP = "callflow"

registry.load_all(settings.callflow_modules)


def prepare(ccvs: Mapping[str, Any], call_id: str
            ) -> tuple[Mapping[str, Any], Context] | str:
    """The flow to run and its context, from the park's channel variables; or why not."""
    realm = str(ccvs.get("Realm") or "")
    account = accounts.account_by_realm(realm) if realm else None
    if account is None:
        return f"no account for realm {realm!r}"
    dialled = str(ccvs.get("Dialled-Number") or "")
    number = str(ccvs.get("Callflow-Number") or dialled)
    context = Context(account=account, call_id=call_id, number=number, dialled=dialled,
                      caller=dict(ccvs))
    callflow_id = ccvs.get("Callflow-ID")
    if callflow_id:
        doc = callflows.get(account, str(callflow_id))
        if doc is None:
            return f"callflow {callflow_id} is gone"
        context.callflow_id = str(callflow_id)
        if number not in (doc.get("numbers") or ()):
            context.captures = callflows.captures_of(doc, dialled)
        return doc["flow"], context
    app = ccvs.get("Whapp")
    if app:
        return {"module": str(app), "data": {}}, context
    return "the park names no callflow"


@handler(contracts.ROUTE_WIN, to=WHAPP, acks_late=False)
def route_win(msg: dict[str, Any]) -> str:
    ccvs = msg.get("Custom-Channel-Vars") or {}
    call = Call.from_route_win(msg)
    try:
        try:
            prepared = prepare(ccvs, call.call_id)
        except CouchError as exc:
            prepared = f"CouchDB: {exc}"
        if isinstance(prepared, str):
            log.error("route_win: %s", prepared)
            engine.count("errors.prepare")
            call.respond(503, "Service Unavailable")
            return prepared
        flow, context = prepared
        why = engine.run(call, flow, context)
        log.info("callflow %s ended: %s", context.callflow_id or flow.get("module"), why)
        if any(failure in why for failure in engine.FAILURES) and not call.answered:
            call.respond(503, "Service Unavailable")
        return why
    except CallError as exc:
        log.info("callflow ended: %s", exc)
        return type(exc).__name__
    except Exception:
        log.exception("callflow failed")
        return "failed"
    finally:
        try:
            if not call.hungup:
                call.hangup()
        except CallError:
            pass
        call.close()
