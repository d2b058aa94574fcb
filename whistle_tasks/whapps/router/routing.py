"""Where a call goes: a ``route_req`` in, the data of a ``route_resp`` out.

1. The account: the caller's realm (``Custom-Channel-Vars`` of an authenticated device),
   else the host of ``Request``, else — for calls from outside (a carrier's DID) — the
   system-wide number index.
2. The number: the user part of ``Request``, normalised by the account's ``number_format``
   (E.164 by default; short extensions stay as dialled), looked up in the account's
   numbers (view ``numbers/by_number``), then as dialled, then ``no_match``.
3. The target: a device (every registered contact of it, from the registrar's data, rung
   at once: ``Dial-Endpoint-Method`` simultaneous; not registered → 480), a SIP URI or a
   gateway (``Invite-Format`` e164 / npan / 1npan / route), a whapp
   (park; the bridge's route_win then hands the call to it) or an error. Nothing → 404.

No FreeSWITCH knowledge here: routes name contacts, URIs and formats; the bridge makes
dial strings of them.
"""

from __future__ import annotations

from typing import Any

from whistle_tasks.core import numbers as numfmt
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts, registrations

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


def lookup_number(account: dict[str, Any], number: str) -> dict[str, Any] | None:
    """The number document for ``number`` (normalised, then as dialled, then no_match)."""
    fmt = account.get("number_format") or "e164"
    candidates = []
    try:
        candidates.append(numfmt.normalize(number, fmt))
    except (TypeError, ValueError):
        pass
    candidates += [number, "no_match"]
    for candidate in dict.fromkeys(candidates):
        doc = accounts.number(account, candidate)
        if doc is not None:
            return doc
    return None


def caller_identity(request: dict[str, Any]) -> dict[str, Any]:
    """Caller-id for the outgoing leg: the calling device's configured caller id, if any."""
    ccvs = request.get("Custom-Channel-Vars") or {}
    realm, user = ccvs.get("Realm"), ccvs.get("Username")
    if not (realm and user):
        return {}
    creds = accounts.credentials(str(realm), str(user))
    caller_id = (creds or {}).get("caller_id") or {}
    out = {}
    if caller_id.get("name"):
        out["Caller-ID-Name"] = caller_id["name"]
    if caller_id.get("number"):
        out["Caller-ID-Number"] = caller_id["number"]
    return out


def _options(*docs: dict[str, Any] | None) -> dict[str, Any]:
    """Route fields from device/number documents (later documents win)."""
    out: dict[str, Any] = {}
    for doc in docs:
        if not doc:
            continue
        caller_id = doc.get("caller_id") or {}
        if caller_id.get("name"):
            out["Caller-ID-Name"] = caller_id["name"]
        if caller_id.get("number"):
            out["Caller-ID-Number"] = caller_id["number"]
        if doc.get("codecs"):
            out["Codecs"] = list(doc["codecs"])
        timeout = doc.get("call_timeout") or doc.get("timeout")
        if timeout:
            out["Endpoint-Timeout"] = int(timeout)
        if doc.get("sip_headers"):
            out["SIP-Headers"] = dict(doc["sip_headers"])
    return out


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
    doc = lookup_number(account, number)
    if doc is None:
        log.info("route %s in %s: no such number", number, account["realm"])
        return error(404)
    to = doc.get("to") or {}
    kind = to.get("type")
    caller = caller_identity(request)
    if kind == "device":
        return _to_device(account, to["username"], caller, doc)
    if kind == "uri":
        return {"Method": "bridge", "Routes": [{
            "Invite-Format": "route", "Route": to["uri"], **caller, **_options(doc)}]}
    if kind == "gateway":
        fmt = to.get("invite_format") or "e164"
        did = number if doc.get("number") == "no_match" else doc.get("number", number)
        return {"Method": "bridge", "Routes": [{
            "Invite-Format": fmt, "Route": f"sip:{did}@{to['host']}", "To-DID": did,
            **caller, **_options(doc)}]}
    if kind == "app":
        return {"Method": "park", "Server-ID": CALLFLOW_QUEUE,
                "Custom-Channel-Vars": {"Whapp": to["name"], "Account-ID": account["id"],
                                        "Realm": account["realm"], "Dialled-Number": number}}
    if kind == "error":
        return error(int(to.get("code", 500)), to.get("message") or None)
    log.error("number %s in %s has an unknown target %r", number, account["realm"], kind)
    return error(500)


def _to_device(account: dict[str, Any], username: str, caller: dict[str, Any],
               number_doc: dict[str, Any]) -> dict[str, Any]:
    realm = account["realm"]
    device = accounts.credentials(realm, username)
    if device is None or not device.get("enabled", True):
        return error(404)
    phones = registrations.contacts(realm, username)
    if not phones:
        log.info("route to %s@%s: not registered", username, realm)
        return error(480)
    options = {**caller, **_options(device, number_doc)}
    ccvs = {"Authorizing-ID": device["authorizing_id"], "Account-ID": account["id"]}
    return {"Method": "bridge", "Dial-Endpoint-Method": "simultaneous",
            "Routes": device_routes(realm, username, phones, options, ccvs)}


def device_routes(realm: str, username: str, phones: list[dict[str, Any]],
                  options: dict[str, Any] | None = None,
                  ccvs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One route per registered contact of a device (``registrations.contacts``), to be
    rung at once: the desk phone and the softphone both ring, the first to answer wins."""
    return [{"Invite-Format": "username", "To-User": username, "To-Realm": realm,
             "Route": phone["Contact"], **(options or {}),
             **({"Custom-Channel-Vars": dict(ccvs)} if ccvs else {})} for phone in phones]
