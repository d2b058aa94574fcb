"""Routing (Event-Category ``dialplan``): route_req, route_resp, route_win, route objects.

The bridge asks where a call goes (``route_req``, from a mod_xml_curl dialplan fetch);
a whapp answers with a ``route_resp``: bridge to ``Routes``, park, or an error. When
FreeSWITCH took a park, the bridge tells the winner with ``route_win`` (sent to the
``Server-ID`` of its route_resp) and the whapp drives the call with commands.

``ROUTE_FIELDS`` / ``ROUTE_TYPES`` are shared with the bridge endpoints of
:mod:`schemas.command`: an endpoint is a route plus a few per-leg knobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.base import message, obj
from schemas.kinds import BOOLEAN, INTEGER, NUMBER, SCALARS, TEXT, list_of, nested_list

CATEGORY = "dialplan"

INVITE_FORMATS = ("username", "e164", "npan", "1npan", "route", "contact")
#: how a number may be sent to a gateway (a number document's ``invite_format``)
GATEWAY_INVITE_FORMATS = ("e164", "npan", "1npan", "route")
ROUTE_MEDIA = ("process", "bypass", "auto")
REQUEST_MEDIA = ("process", "proxy", "bypass")
CALLER_ID_TYPES = ("from", "rpid", "pid")
RESOURCE_TYPES = ("audio", "video", "sms", "mms", "chat")
ROUTE_METHODS = ("bridge", "park", "error")
#: How the ``Routes`` of a bridge answer are dialled: one after the other until one answers
#: (``single``: a carrier and its backups), or all at once, the first to answer wins
#: (``simultaneous``: every phone of a user).
ROUTE_DIAL_METHODS = ("single", "simultaneous")
PRE_PARK = ("none", "ring_ready", "answer")

#: Optional fields of a route (element of ``Routes``), and the channel-variable sources
#: the bridge renders for a leg (``Outgoing-Caller-ID-Name`` → ``origination_caller_id_name``,
#: ``Endpoint-Timeout`` → ``leg_timeout``...), so that they survive building.
ROUTE_FIELDS = (
    "Route", "To-User", "To-Realm", "To-DID", "Proxy-Via", "Media", "Auth-User",
    "Auth-Password", "Codecs", "Progress-Timeout", "Caller-ID-Name", "Caller-ID-Number",
    "Caller-ID-Type", "Weight-Cost", "Weight-Location", "Rate", "Rate-Increment",
    "Rate-Minimum", "Surcharge", "SIP-Headers", "Custom-Channel-Vars",
    # channel-variable sources (docs/api.md, "Routing": channel variables)
    "Outgoing-Caller-ID-Name", "Outgoing-Caller-ID-Number", "Endpoint-Timeout",
    "Endpoint-Progress-Timeout", "Endpoint-Delay", "Timeout", "Ignore-Early-Media",
    # caller id privacy on this leg (docs/api.md, "Caller id"): an anonymous From and a
    # Privacy header; Caller-ID-Type (above) says which header carries the true identity
    "Privacy-Hide-Name", "Privacy-Hide-Number",
)
ROUTE_VALUES = {"Invite-Format": INVITE_FORMATS, "Media": ROUTE_MEDIA,
                "Caller-ID-Type": CALLER_ID_TYPES}
ROUTE_TYPES = {
    "Codecs": list_of(TEXT), "Progress-Timeout": INTEGER, "Weight-Cost": INTEGER,
    "Weight-Location": INTEGER, "Rate": NUMBER, "Rate-Increment": NUMBER,
    "Rate-Minimum": NUMBER, "Surcharge": NUMBER, "SIP-Headers": SCALARS,
    "Custom-Channel-Vars": SCALARS, "Endpoint-Timeout": INTEGER,
    "Endpoint-Progress-Timeout": INTEGER, "Endpoint-Delay": INTEGER, "Timeout": INTEGER,
    "Ignore-Early-Media": BOOLEAN, "Privacy-Hide-Name": BOOLEAN, "Privacy-Hide-Number": BOOLEAN,
}

#: One element of ``Routes``.
ROUTE = obj("route", required=("Invite-Format",), optional=ROUTE_FIELDS, values=ROUTE_VALUES,
            types=ROUTE_TYPES)

ROUTE_REQ = message(
    "route_req", CATEGORY,
    required=("From", "To", "Request", "Call-ID"),
    optional=("Caller-ID-Name", "Caller-ID-Number", "Custom-Channel-Vars", "Custom-SIP-Headers",
              "Orig-IP", "Orig-Port", "From-Network-Addr", "Media", "Codecs", "Max-Call-Length",
              "Resource-Type", "Switch-Hostname", "Switch-Nodename", "User-Agent", "Context",
              "Call-Direction", "Destination-Number"),
    values={"Resource-Type": RESOURCE_TYPES, "Media": REQUEST_MEDIA},
    types={"Custom-Channel-Vars": SCALARS, "Custom-SIP-Headers": SCALARS, "Orig-Port": INTEGER,
           "Codecs": list_of(TEXT), "Max-Call-Length": INTEGER},
)

ROUTE_RESP = message(
    "route_resp", CATEGORY,
    required=("Method",),
    # Server-ID (a default header anyway): where the bridge sends route_win.
    optional=("Routes", "Route-Error-Code", "Route-Error-Message", "Custom-Channel-Vars",
              "Pre-Park", "Ringback-Media", "Transfer-Media", "Server-ID",
              "Dial-Endpoint-Method"),
    values={"Method": ROUTE_METHODS, "Pre-Park": PRE_PARK,
            "Dial-Endpoint-Method": ROUTE_DIAL_METHODS},
    types={"Routes": nested_list(ROUTE), "Route-Error-Code": INTEGER,
           "Custom-Channel-Vars": SCALARS},
)

#: Sent by the bridge to the winner's ``Server-ID`` once FreeSWITCH took the park.
ROUTE_WIN = message(
    "route_win", CATEGORY,
    required=("Call-ID", "Control-Queue"),
    optional=("Custom-Channel-Vars", "Switch-Hostname"),
    types={"Custom-Channel-Vars": SCALARS},
)

MESSAGES = (ROUTE_REQ, ROUTE_RESP, ROUTE_WIN)



def route_realm(msg: Mapping[str, Any]) -> str:
    """The realm a ``route_req`` is keyed by (lower-cased): the authenticated caller's
    (``Custom-Channel-Vars`` ``Realm``), else the host of ``Request``."""
    ccvs = msg.get("Custom-Channel-Vars") or {}
    realm = ccvs.get("Realm") if isinstance(ccvs, Mapping) else None
    if not realm:
        realm = str(msg.get("Request", "")).rpartition("@")[2]
    return str(realm or "unknown").lower()
