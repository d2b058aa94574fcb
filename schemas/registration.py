"""Registration (Event-Category ``directory``): reg_success, reg_sync, reg_query(_resp/_error),
reg_flush.

``reg_success`` is made by the bridge from FreeSWITCH's ``CUSTOM sofia::register`` event
(and ``Expires`` 0 from ``sofia::unregister`` / ``sofia::expire``); the registrar keeps one
registration per contact, the newest by ``Event-Timestamp``. ``reg_sync`` is what a node
holds, sent by the bridge each time it connects to it: ``FreeSWITCH-Hostname`` (the node,
as its registrations name it), ``Event-Timestamp`` (when the node was asked, on its clock)
and ``Registrations`` (every registration it holds, as reg_success fields); the registrar
stores the ones it did not know and removes that node's ones the node no longer has. The
registrar answers ``reg_query`` with registration objects (``Fields``) or a ``Count``;
``reg_flush`` forgets a realm's (or one user's) registrations.
"""

from __future__ import annotations

from schemas.base import message, obj
from schemas.kinds import BOOLEAN, INTEGER, NUMBER, TEXT, list_of, nested_list

CATEGORY = "directory"

REG_REQUIRED = ("Contact", "Event-Timestamp", "Expires", "Realm", "Username")
REG_OPTIONAL = ("From-User", "From-Host", "To-User", "To-Host", "Network-IP", "Network-Port",
                "RPid", "Status", "User-Agent", "Call-ID", "Profile-Name", "Presence-Hosts",
                "FreeSWITCH-Hostname", "Account-ID", "Authorizing-ID", "Original-Contact",
                "Source-IP", "Source-Port")
REG_TYPES = {"Event-Timestamp": NUMBER, "Expires": INTEGER, "Network-Port": INTEGER,
             "Source-Port": INTEGER}

#: Every field of a registration: what ``reg_query``'s ``Fields`` may ask for.
REG_FIELDS = REG_REQUIRED + REG_OPTIONAL

REG_SUCCESS = message("reg_success", CATEGORY, required=REG_REQUIRED, optional=REG_OPTIONAL,
                      types=REG_TYPES)

#: One registration in a ``reg_query_resp`` (only the fields that were asked for).
REGISTRATION = obj("registration", optional=REG_FIELDS, types=REG_TYPES)

#: One registration a node holds, in a ``reg_sync``: a reg_success's fields.
HELD_REGISTRATION = obj("held_registration", required=REG_REQUIRED, optional=REG_OPTIONAL,
                        types=REG_TYPES)

REG_SYNC = message(
    "reg_sync", CATEGORY,
    required=("FreeSWITCH-Hostname", "Event-Timestamp", "Registrations"),
    types={"Event-Timestamp": NUMBER, "Registrations": nested_list(HELD_REGISTRATION)},
)

REG_QUERY = message(
    "reg_query", CATEGORY,
    optional=("Realm", "Username", "Fields", "Count-Only"),
    values={"Fields": REG_FIELDS},  # each element of the list
    types={"Fields": list_of(TEXT), "Count-Only": BOOLEAN},
)

REG_QUERY_RESP = message(
    "reg_query_resp", CATEGORY,
    optional=("Fields", "Count"),
    types={"Fields": nested_list(REGISTRATION), "Count": INTEGER},
)

#: Nothing found.
REG_QUERY_ERROR = message("reg_query_error", CATEGORY)

REG_FLUSH = message("reg_flush", CATEGORY, required=("Realm",), optional=("Username",))

MESSAGES = (REG_SUCCESS, REG_SYNC, REG_QUERY, REG_QUERY_RESP, REG_QUERY_ERROR, REG_FLUSH)
