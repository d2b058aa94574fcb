"""Registration (Event-Category ``directory``): reg_success, reg_query(_resp/_error), reg_flush.

``reg_success`` is made by the bridge from FreeSWITCH's ``CUSTOM sofia::register`` event;
the registrar stores it and answers ``reg_query`` with registration objects (``Fields``)
or a ``Count``; ``reg_flush`` forgets a realm's (or one user's) registrations.
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

MESSAGES = (REG_SUCCESS, REG_QUERY, REG_QUERY_RESP, REG_QUERY_ERROR, REG_FLUSH)
