"""``callflow.route_win``: the bridge hands a parked call to the call app its number names.

The task runs for as long as the call app drives the call (on the gevent pool a waiting call is
a sleeping greenlet). Whatever happens, the app's end hangs the call up if it is still up,
and an error in an app is logged with the call id, never left hanging.
"""

from __future__ import annotations

from typing import Any

from schemas import contracts
from whistle_tasks.core.config import settings
from whistle_tasks.core.log import get_logger
from whistle_tasks.whapps.callflow import registry
from whistle_tasks.whapps.callflow.call import Call, CallError
from whistle_tasks.whapps.handler import handler

log = get_logger(__name__)
WHAPP = "callflow"

registry.load("whistle_tasks.whapps.callflow.apps.attendant," + settings.whapp_modules)


@handler(contracts.ROUTE_WIN, to=WHAPP, acks_late=False)
def route_win(msg: dict[str, Any]) -> str:
    ccvs = msg.get("Custom-Channel-Vars") or {}
    name = str(ccvs.get("Whapp") or "")
    fn = registry.get(name)
    call = Call.from_route_win(msg)
    try:
        if fn is None:
            log.error("route_win for unknown call app %r (known: %s)", name, registry.names())
            call.respond(503, "Service Unavailable")
            return "unknown call app"
        log.info("call app %s takes the call", name)
        fn(call)
        return "done"
    except CallError as exc:
        log.info("call app %s ended: %s", name, exc)
        return type(exc).__name__
    except Exception:
        log.exception("call app %s failed", name)
        return "failed"
    finally:
        try:
            if not call.hungup:
                call.hangup()
        except CallError:
            pass
        call.close()
