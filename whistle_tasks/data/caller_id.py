"""Which caller id a bridge presents: one rule, for the router's answers and every bridge a
callflow makes (ring groups, users, devices, forwards; voicemail reads who called with it).

Two kinds (:mod:`schemas.caller_id`): the **internal** id on legs that ring a device of the
platform (``Invite-Format`` ``username`` / ``contact``), the **external** id on legs that
leave it (a gateway or a SIP URI). For each field (name, number) of the kind the leg needs,
the first of these that sets it wins:

1. the call's override: a ``set_caller_id`` node earlier in the callflow, else the bridge
   node's own ``caller_id`` (a flat ``{name, number}`` on a node is both kinds);
2. the user whose call forwarding placed the bridge, when it does not keep the caller's id;
3. the calling device;
4. the device's owner (a user);
5. the account.

An external leg with nothing external configured anywhere presents the internal id found
the same way, unless ``lock_external`` is set (``caller_id_options``, same precedence): then
only a configured external id may leave, and a call without one is refused
(:class:`Refused`, 403 ``Caller ID Not Allowed``): the phone cannot choose its own caller id
towards carriers. ``outbound_privacy`` (``name``, ``number``, ``full``) hides the id on
external legs: ``Privacy-Hide-Name`` / ``Privacy-Hide-Number`` (the bridge asks FreeSWITCH
for an anonymous From and a ``Privacy`` header) and ``Caller-ID-Type`` ``pid`` (the
carrier still gets the true id in ``P-Asserted-Identity``).

A call that does not come from a device of the account (a carrier's call to a DID) keeps
its own caller id; only an override or a forwarding user changes it. Nothing configured:
no field, and FreeSWITCH passes the caller's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas import caller_id as cid
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts, users

log = get_logger(__name__)

#: ``Invite-Format`` of legs that ring a device of the platform (the internal id)
INTERNAL_FORMATS = frozenset({"username", "contact"})
REFUSED_CODE = 403
REFUSED_MESSAGE = "Caller ID Not Allowed"
WIRE = {"name": "Outgoing-Caller-ID-Name", "number": "Outgoing-Caller-ID-Number"}


class Refused(Exception):
    """The call may not leave with the caller id it has (``lock_external``)."""

    code = REFUSED_CODE
    message = REFUSED_MESSAGE


def leg_kind(leg: Mapping[str, Any]) -> str:
    """``internal`` for a leg to a device of the platform, else ``external``."""
    return "internal" if leg.get("Invite-Format") in INTERNAL_FORMATS else "external"


def node_override(value: Any) -> dict[str, dict[str, str]]:  # noqa: ANN401
    """A node's ``caller_id`` (a ``set_caller_id`` node's, or a bridge node's): a flat
    ``{name, number}`` is both kinds there."""
    if not isinstance(value, Mapping):
        return {}
    flat = {k: value[k] for k in cid.FIELDS if value.get(k)}
    out = cid.normalize({k: v for k, v in value.items() if k in cid.KINDS})
    if flat:
        pair = cid.normalize(flat).get("internal", {})
        for kind in cid.KINDS:
            out[kind] = {**pair, **out.get(kind, {})}
    return {kind: pair for kind, pair in out.items() if pair}


@dataclass(frozen=True)
class Level:
    """One source of caller id, in precedence order."""

    what: str
    ids: dict[str, dict[str, str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def levels(caller: Mapping[str, Any], *, account: Mapping[str, Any] | None = None,
           override: Mapping[str, Any] | None = None,
           override_options: Mapping[str, Any] | None = None,
           forwarded_by: Mapping[str, Any] | None = None,
           keep_caller_id: bool = True) -> list[Level]:
    """The sources that apply to a call from ``caller`` (its ``Custom-Channel-Vars``:
    ``Realm`` and ``Username`` of an authenticated device), best first."""
    out: list[Level] = []
    if override or override_options:
        out.append(Level("node", node_override(override),
                         cid.normalize_options(override_options)))
    if forwarded_by is not None and not keep_caller_id:
        out.append(Level("forwarding user", cid.normalize(forwarded_by.get("caller_id")),
                         cid.normalize_options(forwarded_by.get("caller_id_options"))))
    realm, user = caller.get("Realm"), caller.get("Username")
    if not (realm and user):
        return out          # not one of our devices: the caller's own id stays
    device = accounts.credentials(str(realm), str(user))
    if device is None:
        return out
    out.append(Level("device", cid.normalize(device.get("caller_id")),
                     cid.normalize_options(device.get("caller_id_options"))))
    if account is None:
        account = accounts.account_by_realm(str(realm))
    if account is None:
        return out
    if device.get("owner_id") and account.get("account_db"):
        owner = users.by_id(account, str(device["owner_id"]))
        if owner is not None:
            out.append(Level("owner", cid.normalize(owner.get("caller_id")),
                             cid.normalize_options(owner.get("caller_id_options"))))
    out.append(Level("account", cid.normalize(account.get("caller_id")),
                     cid.normalize_options(account.get("caller_id_options"))))
    return out


def _pick(found: Iterable[Level], kind: str) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for level in found:
        for key, value in level.ids.get(kind, {}).items():
            chosen.setdefault(key, value)
    return chosen


def _option(found: Iterable[Level], name: str) -> Any:  # noqa: ANN401
    for level in found:
        if name in level.options:
            return level.options[name]
    return None


def fields_for(found: list[Level], kind: str) -> dict[str, Any]:
    """The route fields presenting the ``kind`` caller id; :class:`Refused` when an external
    leg is locked and has no external id."""
    if kind == "internal":
        return {WIRE[key]: value for key, value in _pick(found, "internal").items()}
    chosen = _pick(found, "external")
    if _option(found, "lock_external") is True:
        if not chosen.get("number"):
            log.warning("caller id refused: lock_external is set and no external caller id "
                        "number is configured (%s)", ", ".join(lv.what for lv in found))
            raise Refused(REFUSED_MESSAGE)
    else:
        for key, value in _pick(found, "internal").items():
            chosen.setdefault(key, value)
    out: dict[str, Any] = {WIRE[key]: value for key, value in chosen.items()}
    privacy = _option(found, "outbound_privacy") or "none"
    if privacy in ("name", "full"):
        out["Privacy-Hide-Name"] = True
    if privacy in ("number", "full"):
        out["Privacy-Hide-Number"] = True
    if privacy != "none":
        out["Caller-ID-Type"] = "pid"
    return out


def for_legs(legs: Iterable[Mapping[str, Any]], caller: Mapping[str, Any], **how: Any
             ) -> list[dict[str, Any]]:  # noqa: ANN401
    """``legs`` with the caller id fields each presents (see the module docstring; ``how``:
    the keyword arguments of :func:`levels`). :class:`Refused` when a locked external leg
    has no external id."""
    found = levels(caller, **how)
    cache: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for leg in legs:
        kind = leg_kind(leg)
        if kind not in cache:
            cache[kind] = fields_for(found, kind)
        clean = {k: v for k, v in leg.items() if k not in (*WIRE.values(), "Caller-ID-Name",
                                                           "Caller-ID-Number")}
        out.append({**clean, **cache[kind]})
    return out


def presented(caller: Mapping[str, Any], kind: str = "internal", **how: Any  # noqa: ANN401
              ) -> dict[str, str]:
    """``{name?, number?}`` a call from ``caller`` presents on a ``kind`` leg (voicemail
    files a message under it); never refuses."""
    found = levels(caller, **how)
    chosen = _pick(found, kind)
    if kind == "external":
        for key, value in _pick(found, "internal").items():
            chosen.setdefault(key, value)
    return chosen
