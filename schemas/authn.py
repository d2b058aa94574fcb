"""Authentication (Event-Category ``directory``): authn_req, authn_resp, authn_err.

The bridge asks with an ``authn_req`` for every SIP digest challenge FreeSWITCH fetches
over mod_xml_curl; the registrar answers with the credentials (``authn_resp``) or says the
user is unknown or disabled (``authn_err``). This is the hottest message of the system.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from schemas.base import message
from schemas.kinds import BOOLEAN, INTEGER, SCALARS

CATEGORY = "directory"

#: SIP methods FreeSWITCH challenges (``sip_auth_method``).
SIP_METHODS = ("REGISTER", "INVITE", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "OPTIONS",
               "REFER", "INFO", "UPDATE", "PRACK", "BYE", "CANCEL", "ACK")

AUTH_METHODS = ("password", "ip", "a1-hash", "error")

AUTHN_REQ = message(
    "authn_req", CATEGORY,
    required=("Auth-Realm", "Auth-User", "From", "To"),
    optional=("Auth-Nonce", "Auth-Response", "Call-ID", "Contact", "Expires", "Method",
              "Orig-IP", "Orig-Port", "Switch-Hostname", "User-Agent", "Custom-SIP-Headers"),
    values={"Method": SIP_METHODS},
    types={"Expires": INTEGER, "Orig-Port": INTEGER, "Custom-SIP-Headers": SCALARS},
)

AUTHN_RESP = message(
    "authn_resp", CATEGORY,
    required=("Auth-Method", "Auth-Password"),
    optional=("Custom-Channel-Vars", "Access-Group", "Tenant-ID", "Auth-Username", "Expires",
              "Suppress-Unregister-Notifications", "Register-Overwrite-Notify"),
    values={"Auth-Method": AUTH_METHODS},
    types={"Custom-Channel-Vars": SCALARS, "Expires": INTEGER,
           "Suppress-Unregister-Notifications": BOOLEAN, "Register-Overwrite-Notify": BOOLEAN},
)

#: Sent when the user is unknown or disabled.
AUTHN_ERR = message("authn_err", CATEGORY, optional=("Defer-Response",))

MESSAGES = (AUTHN_REQ, AUTHN_RESP, AUTHN_ERR)


# --------------------------------------------------------------------------- identity


def user_part(uri: str) -> str:
    """``sip:1000@example.com`` / ``<sip:1000@x>`` / ``1000@x`` → ``1000``."""
    uri = uri.strip().strip("<>")
    if ":" in uri.split("@", 1)[0]:
        uri = uri.split(":", 1)[1]
    return uri.split("@", 1)[0]


def host_part(uri: str) -> str:
    """``sip:1000@example.com:5060;transport=udp`` → ``example.com`` (``[v6]`` kept whole)."""
    host = uri.strip().strip("<>").split("@", 1)[-1].split(";", 1)[0].split(">", 1)[0]
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def identity(msg: Mapping[str, Any]) -> tuple[str, str]:
    """The (realm, user) an ``authn_req`` is about — the one normalisation of them.

    Both lower-cased; user ``unknown`` → the user of ``To``; an IP literal as realm (a phone
    that registers to the switch's address) → the domain of ``To`` when that is a name.
    Never raises: a message missing fields gets empty ones (its validation says why).
    """
    realm = str(msg.get("Auth-Realm") or "").lower()
    user = str(msg.get("Auth-User") or "").lower()
    to = str(msg.get("To") or "")
    if user == "unknown":
        user = user_part(to).lower()
    if is_ip(realm):
        to_host = host_part(to).lower()
        if to_host and not is_ip(to_host):
            realm = to_host
    return realm, user
