"""Modules that steer the call: ``respond``, ``hangup``, ``transfer``.

``respond`` answers the call's INVITE with a SIP code before it is answered (an error, or
``180``/``183`` and on to the ``_`` child); ``hangup`` ends the call (with a cause);
``transfer`` continues at the callflow of another number of the account, as if the caller
had dialled it (``unavailable`` when no callflow takes that number).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.callflow import DEFAULT
from whistle_tasks.data import callflows
from whistle_tasks.whapps.callflow.context import Goto
from whistle_tasks.whapps.callflow.registry import module

if TYPE_CHECKING:
    from whistle_tasks.whapps.callflow.call import Call
    from whistle_tasks.whapps.callflow.context import Context

REASONS = {180: "Ringing", 183: "Session Progress", 400: "Bad Request", 403: "Forbidden",
           404: "Not Found", 480: "Temporarily Unavailable", 486: "Busy Here",
           487: "Request Terminated", 488: "Not Acceptable Here",
           500: "Server Internal Error", 503: "Service Unavailable", 603: "Decline",
           604: "Does Not Exist Anywhere"}


@module("respond")
def respond(call: Call, data: dict[str, Any], context: Context) -> str | None:
    code = int(data["code"])
    call.respond(code, str(data.get("message") or REASONS.get(code, "")))
    return DEFAULT if code < 300 else None


@module("hangup")
def hangup(call: Call, data: dict[str, Any], context: Context) -> None:
    call.hangup(cause=data.get("cause"))
    return None


@module("transfer")
def transfer(call: Call, data: dict[str, Any], context: Context) -> Goto | str:
    number = str(data["number"])
    found = callflows.find(context.account, number)
    if found is None:
        return "unavailable"
    return Goto(found.flow, found.callflow_id, found.number, found.captures)
