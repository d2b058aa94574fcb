"""Authentication (Event-Category ``directory``): authn_req, authn_resp, authn_err.

The bridge asks with an ``authn_req`` for every SIP digest challenge FreeSWITCH fetches
over mod_xml_curl; the registrar answers with the credentials (``authn_resp``) or says the
user is unknown or disabled (``authn_err``). This is the hottest message of the system.
"""

from __future__ import annotations

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
