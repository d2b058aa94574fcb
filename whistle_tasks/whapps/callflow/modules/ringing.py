"""Modules that ring people and phones: ``device``, ``user``, ``ring_group``, ``forward``.

Each makes one bridge (``ring_group`` sequential: one per member) and returns:

* ``None`` when someone answered: the call was connected and is over, so the callflow ends;
* ``no_answer`` (nobody answered in time), ``busy`` (the callee was busy or declined) or
  ``unavailable`` (nothing to ring: not registered, disabled, do-not-disturb, an error),
  whose child runs next, else the ``_`` child (typically ``voicemail``).

A ``device`` rings every registered contact of the device at once; a ``user`` every contact
of every device the user owns, after the user's do-not-disturb and call forwarding
(``always``: straight to the forward; ``busy``/``no_answer``: after ringing). A forward to
a URI is a bridge; to a number, the callflow continues at that number's callflow (the
account's, or its ``no_match`` for an outside number), as if dialled. The caller id every
leg presents is the context's one rule (:meth:`Context.with_caller_id`): the internal id
to devices, the external one to gateways and URIs; a call whose caller may not leave with
the caller id it has (``lock_external``) is answered 403 ``Caller ID Not Allowed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from whistle_tasks.core.log import get_logger
from whistle_tasks.data import caller_id, callflows, endpoints, users
from whistle_tasks.whapps.callflow.context import Goto
from whistle_tasks.whapps.callflow.registry import module

if TYPE_CHECKING:
    from whistle_tasks.whapps.callflow.call import Call
    from whistle_tasks.whapps.callflow.context import Context

log = get_logger(__name__)

DEFAULT_TIMEOUT = 20
GROUP_TIMEOUT = 30
ANSWERED = frozenset({"SUCCESS", "NORMAL_CLEARING"})
NO_ANSWER = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT",
                       "RECOVERY_ON_TIMER_EXPIRE", "ORIGINATOR_CANCEL", ""})
BUSY = frozenset({"USER_BUSY", "CALL_REJECTED", "NORMAL_CIRCUIT_CONGESTION"})


def outcome_of(disposition: str) -> str | None:
    """The module outcome of a bridge's disposition (None: it was answered)."""
    disposition = disposition.upper()
    if disposition in ANSWERED:
        return None
    if disposition in NO_ANSWER:
        return "no_answer"
    if disposition in BUSY:
        return "busy"
    return "unavailable"


def ring(call: Call, context: Context, legs: list[dict[str, Any]], *, timeout: int,
         data: Mapping[str, Any], method: str = "simultaneous") -> str | None:
    """One bridge to ``legs``; its outcome (see :func:`outcome_of`)."""
    if not legs:
        return "unavailable"
    try:
        legs = context.with_caller_id(legs, data.get("caller_id"))
    except caller_id.Refused as exc:
        log.warning("%s: call refused: %s (lock_external, no external caller id)",
                    context.path, exc)
        call.respond(caller_id.REFUSED_CODE, caller_id.REFUSED_MESSAGE)
        return None
    options: dict[str, Any] = {"Continue-On-Fail": True}
    if data.get("ringback"):
        options["Ringback"] = str(data["ringback"])
    disposition = call.bridge(legs, timeout=timeout, method=method, **options)
    outcome = outcome_of(disposition)
    log.info("%s: bridge %s → %s", context.path, disposition or "(no disposition)",
             outcome or "answered")
    return outcome


def device_legs(context: Context, username: str, *extra: Mapping[str, Any] | None,
                why: list[str] | None = None) -> list[dict[str, Any]]:
    legs, problem = endpoints.device(context.realm, username, *extra,
                                     account_id=context.account_id)
    if problem and why is not None:
        why.append(f"device {username}: {problem}")
    return legs


def user_legs(context: Context, user: Mapping[str, Any], *extra: Mapping[str, Any] | None,
              why: list[str] | None = None) -> list[dict[str, Any]]:
    """Every contact of every device the user owns."""
    legs: list[dict[str, Any]] = []
    for username in users.devices(context.account, str(user["_id"])):
        legs += device_legs(context, username, *extra, why=why)
    return legs


def _timeout(data: Mapping[str, Any], default: int = DEFAULT_TIMEOUT) -> int:
    return int(data.get("timeout") or default)


@module("device")
def device(call: Call, data: dict[str, Any], context: Context) -> str | None:
    why: list[str] = []
    legs = device_legs(context, str(data["username"]), data, why=why)
    if not legs:
        log.info("%s: nothing to ring (%s)", context.path, "; ".join(why))
    return ring(call, context, legs, timeout=_timeout(data), data=data)


def _forward_settings(user: Mapping[str, Any]) -> Mapping[str, Any] | None:
    forward = user.get("call_forward")
    if not isinstance(forward, Mapping) or not forward.get("enabled"):
        return None
    if not (forward.get("number") or forward.get("uri")):
        return None
    return forward


def forward_user(call: Call, context: Context, user: Mapping[str, Any],
                 forward: Mapping[str, Any], timeout: int) -> str | None | Goto:
    """Follow a user's call forwarding: ring its URI, or continue at its number."""
    context.forwarded_by = user
    context.keep_caller_id = forward.get("keep_caller_id", True) not in (False, "false")
    if forward.get("uri"):
        leg = {"Invite-Format": "route", "Route": str(forward["uri"])}
        return ring(call, context, [leg], timeout=timeout, data={})
    number = str(forward["number"])
    found = callflows.find(context.account, number)
    if found is None:
        log.info("%s: forward of %s to %s: no callflow takes that number", context.path,
                 user.get("username"), number)
        return "unavailable"
    log.info("%s: %s is forwarded to %s", context.path, user.get("username"), number)
    return Goto(found.flow, found.callflow_id, found.number, found.captures)


@module("user")
def user(call: Call, data: dict[str, Any], context: Context) -> str | None | Goto:
    found = users.user(context.account, str(data["username"]))
    if found is None:
        log.info("%s: no user %s", context.path, data["username"])
        return "unavailable"
    timeout = _timeout(data, int(found.get("call_timeout") or DEFAULT_TIMEOUT))
    forward = _forward_settings(found)
    if forward is not None and forward.get("always", not (forward.get("busy") or
                                                           forward.get("no_answer"))):
        return forward_user(call, context, found, forward, timeout)
    if found.get("do_not_disturb") in (True, "true"):
        log.info("%s: %s is in do-not-disturb", context.path, found.get("username"))
        return "unavailable"
    why: list[str] = []
    outcome = ring(call, context, user_legs(context, found, why=why), timeout=timeout,
                   data={"ringback": data.get("ringback"), "caller_id": None})
    if outcome is not None and forward is not None and forward.get(outcome):
        return forward_user(call, context, found, forward, timeout)
    if why and outcome == "unavailable":
        log.info("%s: nothing to ring for %s (%s)", context.path, found.get("username"),
                 "; ".join(why))
    return outcome


def member_legs(context: Context, member: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The legs of one ring group member, with its per-member timeout and delay."""
    kind, ident = member.get("type"), str(member.get("id") or "")
    knobs: dict[str, Any] = {}
    if member.get("timeout"):
        knobs["Endpoint-Timeout"] = int(member["timeout"])
    if member.get("delay"):
        knobs["Endpoint-Delay"] = int(member["delay"])
    if kind == "device":
        legs = device_legs(context, ident)
    elif kind == "user":
        found = users.user(context.account, ident)
        if found is None or found.get("do_not_disturb") in (True, "true"):
            legs = []
        else:
            legs = user_legs(context, found)
    elif kind == "number":
        legs = number_legs(context, ident)
    else:
        legs = []
    return [{**leg, **knobs} for leg in legs]


def number_legs(context: Context, number: str) -> list[dict[str, Any]]:
    """What ringing a number takes, when its callflow is one that rings (a device, a user,
    a forward); nothing else can be rung in a group."""
    found = callflows.find(context.account, number)
    if found is None:
        return []
    root = found.flow
    data = root.get("data") or {}
    if root.get("module") == "device":
        return device_legs(context, str(data.get("username")), data)
    if root.get("module") == "user":
        person = users.user(context.account, str(data.get("username")))
        return user_legs(context, person) if person else []
    if root.get("module") == "forward":
        return [endpoints.forward(data, found.number)]
    log.info("%s: number %s runs a %s callflow, which a ring group cannot ring",
             context.path, number, root.get("module"))
    return []


def group_members(context: Context, data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    members: list[Mapping[str, Any]] = list(data.get("members") or [])
    if data.get("group"):
        found = users.group(context.account, str(data["group"]))
        if found is None:
            log.info("%s: no group %s", context.path, data["group"])
        else:
            members += list(found.get("members") or [])
    return members


def _strategy(data: Mapping[str, Any], context: Context) -> str:
    if data.get("strategy"):
        return str(data["strategy"])
    if data.get("group"):
        found = users.group(context.account, str(data["group"]))
        if found and found.get("strategy"):
            return str(found["strategy"])
    return "simultaneous"


@module("ring_group")
def ring_group(call: Call, data: dict[str, Any], context: Context) -> str | None:
    members = group_members(context, data)
    if _strategy(data, context) == "sequential":
        return _sequential(call, context, members, data)
    legs = [leg for member in members for leg in member_legs(context, member)]
    return ring(call, context, legs, timeout=_timeout(data, GROUP_TIMEOUT), data=data)


def _sequential(call: Call, context: Context, members: Iterable[Mapping[str, Any]],
                data: Mapping[str, Any]) -> str | None:
    outcome: str | None = "unavailable"
    for index, member in enumerate(members):
        legs = member_legs(context, member)
        if not legs:
            continue
        timeout = int(member.get("timeout") or data.get("timeout") or DEFAULT_TIMEOUT)
        for leg in legs:     # the member's own timeout is the bridge's here
            leg.pop("Endpoint-Timeout", None)
        log.info("%s: member %d (%s %s)", context.path, index, member.get("type"),
                 member.get("id"))
        outcome = ring(call, context, legs, timeout=timeout + int(member.get("delay") or 0),
                       data=data)
        if outcome is None:
            return None
    return outcome


@module("forward")
def forward(call: Call, data: dict[str, Any], context: Context) -> str | None:
    return ring(call, context, [endpoints.forward(data, context.number)],
                timeout=_timeout(data, 60), data=data, method="single")
