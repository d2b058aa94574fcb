"""Where a call goes: a ``route_req`` in, the data of a ``route_resp`` out.

1. The account: the caller's realm (``Custom-Channel-Vars`` of an authenticated device),
   else the host of ``Request``, else — for calls from outside (a carrier's DID) — the
   system-wide number index.
2. The callflow: the user part of ``Request``, normalised by the account's
   ``number_format`` (E.164 by default; short extensions stay as dialled), looked up in
   the account's callflow numbers, then as dialled, then its patterns, then ``no_match``
   (:func:`whistle_tasks.data.callflows.find`). Nothing → 404.
3. The answer: a callflow of one node that is a plain route is answered here (the fast
   path, :func:`direct_answer`): ``device`` → every registered contact of it, rung at
   once (``Dial-Endpoint-Method`` simultaneous; not registered → 480), ``forward`` → a
   SIP URI or a gateway (``Invite-Format`` e164 / npan / 1npan / route), ``respond`` →
   an error. Every other callflow is parked with its id in ``Custom-Channel-Vars``; the
   bridge's route_win then hands the call to the callflow whapp, which runs it.

No FreeSWITCH knowledge here: routes name contacts, URIs and formats; the bridge makes
dial strings of them.
"""

from __future__ import annotations

from typing import Any

from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts, caller_id, callflows, endpoints

log = get_logger(__name__)

CALLFLOW_QUEUE = "callflow"   # where route_win goes for numbers routed to a whapp
REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
           480: "Temporarily Unavailable", 486: "Busy Here", 487: "Request Terminated",
           488: "Not Acceptable Here", 500: "Server Internal Error", 503: "Service Unavailable",
           603: "Decline", 604: "Does Not Exist Anywhere"}

def error(code: int, message: str | None = None) -> dict[str, Any]:
    return {"Method": "error", "Route-Error-Code": code,
            "Route-Error-Message": message or REASONS.get(code, "Error")}


def dialled(request: dict[str, Any]) -> str:
    """The number the caller dialled: the user part of ``Request`` (docs/api.md)."""
    return str(request.get("Request", "")).rpartition("@")[0] or \
        str(request.get("Destination-Number", ""))


def find_account(request: dict[str, Any], number: str) -> dict[str, Any] | None:
    ccvs = request.get("Custom-Channel-Vars") or {}
    for realm in (ccvs.get("Realm"), str(request.get("Request", "")).rpartition("@")[2]):
        if realm:
            account = accounts.account_by_realm(str(realm))
            if account is not None:
                return account
    index = accounts.number_owner(number)
    if index is not None:
        return accounts.account_by_realm(index["realm"])
    return None


def with_caller_id(request: dict[str, Any], account: dict[str, Any],
                   legs: list[dict[str, Any]], data: dict[str, Any] | None = None
                   ) -> list[dict[str, Any]]:
    """The legs with the caller id each presents (the one rule:
    :mod:`whistle_tasks.data.caller_id`); ``data``: the node's, whose ``caller_id``
    overrides. :class:`caller_id.Refused` when a locked external leg has none."""
    return caller_id.for_legs(legs, request.get("Custom-Channel-Vars") or {},
                              account=account, override=(data or {}).get("caller_id"))


def route(request: dict[str, Any]) -> dict[str, Any]:
    """The data of the ``route_resp`` for ``request`` (Method bridge, park or error)."""
    number = dialled(request)
    if not number:
        return error(404)
    account = find_account(request, number)
    if account is None:
        log.info("route %s: no account for %s", number, request.get("Request"))
        return error(404)
    if not account.get("enabled", True):
        return error(403, "Account Disabled")
    match = callflows.find(account, number)
    if match is None:
        log.info("route %s in %s: no callflow", number, account["realm"])
        return error(404)
    answer = direct_answer(account, match, request)
    if answer is not None:
        return answer
    return {"Method": "park", "Server-ID": CALLFLOW_QUEUE,
            "Custom-Channel-Vars": {"Callflow-ID": match.callflow_id,
                                    "Account-ID": account["id"], "Realm": account["realm"],
                                    "Dialled-Number": number, "Callflow-Number": match.number}}


def direct_answer(account: dict[str, Any], match: callflows.Match,
                  request: dict[str, Any]) -> dict[str, Any] | None:
    """The fast path: a callflow of one node without children that is a plain route —
    ``device`` (one registered contact), ``forward`` (a URI or a gateway) or ``respond``
    with an error code — is answered here (bridge or error), with no park. None: park it
    for the callflow whapp."""
    root = match.flow
    if root.get("children"):
        return None
    name, data = root.get("module"), root.get("data") or {}
    try:
        if name == "device" and isinstance(data.get("username"), str):
            return _to_device(account, data["username"], request, data)
        if name == "forward" and (data.get("uri") or data.get("gateway")):
            return {"Method": "bridge", "Routes": with_caller_id(
                request, account, [endpoints.forward(data, match.number)], data)}
    except caller_id.Refused as exc:
        log.warning("route %s in %s refused: %s", match.number, account["realm"], exc)
        return error(caller_id.REFUSED_CODE, caller_id.REFUSED_MESSAGE)
    if name == "respond":
        code = int(data.get("code") or 500)
        if code >= 300:
            return error(code, str(data.get("message") or "") or None)
    return None


def _to_device(account: dict[str, Any], username: str, request: dict[str, Any],
               data: dict[str, Any]) -> dict[str, Any] | None:
    found, why = endpoints.device(account["realm"], username, data, account_id=account["id"])
    if why in ("unknown", "disabled"):
        return error(404)
    if why == "unregistered":
        log.info("route to %s@%s: not registered", username, account["realm"])
        return error(480)
    routes = with_caller_id(request, account, found, data)
    if len(routes) == 1:
        return {"Method": "bridge", "Routes": routes}
    # every phone of the device at once: the first to answer wins
    return {"Method": "bridge", "Dial-Endpoint-Method": "simultaneous", "Routes": routes}
