"""Calls placed by an operator: click-to-call.

``click_to_call(realm, "1000", "2001")`` rings every registered phone of device 1000 at
once (an ``originate_req`` to the bridges, ``contracts.ORIGINATE``); when one answers,
FreeSWITCH transfers that leg into the dialplan as if 1000 had dialled 2001 (its
``Custom-Channel-Vars`` name the device, so the route request is the caller's own). The
router decides where 2001 goes, exactly as for a call from the phone: a device, a number
routed to a whapp, a carrier. The answer comes once the caller's phone has answered: the
new call's id, or the reason it failed (not registered, no answer, busy...).
"""

from __future__ import annotations

from typing import Any

import schemas
from schemas import contracts
from whistle_tasks.data import accounts, registrations
from whistle_tasks.ops.ask import request

APP_NAME = "whistle-cli"
#: seconds an originate may take beyond its ring timeout (the bridge's own margin is 5)
MARGIN = 10.0


class CallFailed(Exception):
    """The call could not be placed; the message says why."""


def click_to_call_request(realm: str, caller: str, callee: str, *,
                          timeout: int = 30) -> dict[str, Any]:
    """The ``originate_req`` of a click-to-call (raises :class:`CallFailed` when the caller
    is not a usable, registered device)."""
    if not callee or any(not (c.isalnum() or c in "+*#_-") for c in callee):
        raise CallFailed(f"cannot call {callee!r}: a number or extension is expected")
    device = accounts.credentials(realm, caller)
    if device is None:
        raise CallFailed(f"no device {caller} in {realm}")
    if not device.get("enabled", True):
        raise CallFailed(f"device {caller} in {realm} is disabled")
    phones = registrations.contacts(realm, caller)
    if not phones:
        raise CallFailed(f"device {caller} in {realm} is not registered")
    endpoints = [{"Invite-Format": "username", "To-User": caller, "To-Realm": realm,
                  "Route": phone["Contact"]} for phone in phones]
    ccvs = {"Realm": realm.lower(), "Username": caller.lower(), "Inception": "on-net",
            "Account-ID": device.get("account_id") or "",
            "Authorizing-ID": device.get("authorizing_id") or ""}
    return schemas.build("originate_req", {
        "Application-Name": "transfer", "Application-Data": callee,
        "Endpoints": endpoints, "Dial-Endpoint-Method": "simultaneous", "Timeout": timeout,
        "Outgoing-Caller-ID-Name": callee, "Outgoing-Caller-ID-Number": callee,
        "Custom-Channel-Vars": {k: v for k, v in ccvs.items() if v}},
        **{"App-Name": APP_NAME})


def click_to_call(realm: str, caller: str, callee: str, *, timeout: int = 30) -> str:
    """Ring ``caller``'s phones; once one answers, connect it to ``callee`` as a routed
    call. Returns the call id; raises :class:`CallFailed` with the reason."""
    msg = click_to_call_request(realm, caller, callee, timeout=timeout)
    answer = request(contracts.ORIGINATE, msg, timeout + MARGIN)
    if answer is None:
        raise CallFailed(f"no switch bridge answered within {timeout + MARGIN:g}s "
                         "(is one running?)")
    if answer["Event-Name"] != "originate_resp":
        why = answer.get("Failure-Message") or answer.get("Error-Message") or "failed"
        raise CallFailed(f"{caller} could not be connected to {callee}: {why}")
    return str(answer["Call-ID"])
