"""Resources (Event-Category ``resource``): originate a call on a FreeSWITCH node.

A whapp asks for a new call with ``originate_req`` (endpoints as a bridge's, then park,
bridge or transfer once answered); the bridge answers ``originate_resp`` with the new
call's id and control queue, or ``originate_error`` / ``resource_error``.
"""

from __future__ import annotations

from schemas.base import message
from schemas.command import BRIDGE_OPTIONAL, BRIDGE_TYPES, BRIDGE_VALUES
from schemas.kinds import BOOLEAN, INTEGER, OBJECT, SCALARS, TEXT, either

CATEGORY = "resource"

ORIGINATE_APPLICATIONS = ("park", "bridge", "transfer")

ORIGINATE_REQ = message(
    "originate_req", CATEGORY,
    required=("Application-Name", "Endpoints"),
    optional=("Application-Data", "Custom-Channel-Vars", "Originate-Immediate", "Timeout",
              *BRIDGE_OPTIONAL),
    values={"Application-Name": ORIGINATE_APPLICATIONS, **BRIDGE_VALUES},
    types={**BRIDGE_TYPES, "Application-Data": either(TEXT, OBJECT),
           "Custom-Channel-Vars": SCALARS, "Originate-Immediate": BOOLEAN},
)

ORIGINATE_RESP = message(
    "originate_resp", CATEGORY,
    required=("Call-ID",),
    optional=("Control-Queue", "Channel-Call-State"),
)

_FAILURE = {"optional": ("Failure-Message", "Failure-Code", "Failed-Attempts"),
            "types": {"Failed-Attempts": INTEGER}}

ORIGINATE_ERROR = message("originate_error", CATEGORY, **_FAILURE)
RESOURCE_ERROR = message("resource_error", CATEGORY, **_FAILURE)

MESSAGES = (ORIGINATE_REQ, ORIGINATE_RESP, ORIGINATE_ERROR, RESOURCE_ERROR)
