"""What ringing something takes: a device's registered contacts, a SIP URI, a number out of a
gateway, as route/endpoint objects with the options their documents carry (codecs, timeout,
SIP headers). Shared by the router's direct answers and every bridge of the callflow whapp,
so both ring the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from whistle_tasks.data import accounts, registrations


def options(*docs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Route fields from device/number/node documents (later documents win). Caller id is
    not among them: :func:`whistle_tasks.data.caller_id.for_legs` chooses it."""
    out: dict[str, Any] = {}
    for doc in docs:
        if not doc:
            continue
        if doc.get("codecs"):
            out["Codecs"] = list(doc["codecs"])
        timeout = doc.get("call_timeout") or doc.get("timeout")
        if timeout:
            out["Endpoint-Timeout"] = int(timeout)
        if doc.get("sip_headers"):
            out["SIP-Headers"] = dict(doc["sip_headers"])
    return out


def device(realm: str, username: str, *extra: Mapping[str, Any] | None,
           account_id: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """``(endpoints, None)``: one endpoint per registered contact of the device, newest
    first; or ``([], why)`` with why = ``unknown``, ``disabled`` or ``unregistered``."""
    found = accounts.credentials(realm, username)
    if found is None:
        return [], "unknown"
    if not found.get("enabled", True):
        return [], "disabled"
    contacts = registrations.contacts(realm, username)
    if not contacts:
        return [], "unregistered"
    ccvs = {"Authorizing-ID": found["authorizing_id"]}
    if account_id or found.get("account_id"):
        ccvs["Account-ID"] = str(account_id or found.get("account_id"))
    shared = options(found, *extra)
    return [{"Invite-Format": "username", "To-User": username, "To-Realm": realm,
             "Route": contact["Contact"], **shared, "Custom-Channel-Vars": dict(ccvs)}
            for contact in contacts], None


def forward(data: Mapping[str, Any], number: str) -> dict[str, Any]:
    """The endpoint of a ``forward`` node: its SIP ``uri``, or ``number`` (its own
    ``number`` if it has one) out of its ``gateway`` in its ``format`` (default e164)."""
    if data.get("uri"):
        return {"Invite-Format": "route", "Route": str(data["uri"]), **options(data)}
    did = str(data.get("number") or number)
    return {"Invite-Format": str(data.get("format") or "e164"),
            "Route": f"sip:{did}@{data['gateway']}", "To-DID": did, **options(data)}
