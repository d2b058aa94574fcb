"""Call control (Event-Category ``call``, Event-Name ``command``): one type per application.

A whapp drives a parked call by sending commands to the call's control queue; the bridge
runs them one at a time. Every command requires ``Application-Name`` and ``Call-ID`` and
may say where it goes in the queue (``Insert-At``). ``COMMANDS`` below is the API table:
per application, its own required and optional fields, allowed values and kinds.

A ``queue`` command carries ``Commands``: commands without the default headers (the
queue's own ``Call-ID`` applies), each checked against its own application's declaration
(``QUEUED``). A queue inside a queue is refused.

A bridge ``Endpoints`` element is a route (:mod:`schemas.route`) plus per-leg knobs;
``ENDPOINT`` and the bridge options are shared with ``originate_req``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.base import COMMAND_CATEGORY, COMMAND_EVENT, MessageSpec, ObjectSpec, message, obj
from schemas.kinds import (
    BOOLEAN,
    INTEGER,
    SCALARS,
    SIGNED_INTEGER,
    TERMINATORS,
    Dispatched,
    json_type,
    list_of,
    nested_list,
)
from schemas.route import ROUTE_FIELDS, ROUTE_MEDIA, ROUTE_TYPES, ROUTE_VALUES

INSERT_AT = ("head", "tail", "flush", "now")
DIAL_METHODS = ("single", "simultaneous")
#: how ``store`` sends the file (an HTTP PUT of the whole file)
STORE_METHODS = ("put",)

#: FreeSWITCH ``say`` types and methods (as Kazoo's kapi_dialplan).
SAY_TYPES = ("number", "items", "persons", "messages", "currency", "time_measurement",
             "current_date", "current_time", "current_date_time", "telephone_number",
             "telephone_extension", "url", "ip_address", "e-mail_address", "postal_address",
             "account_number", "name_spelled", "name_phonetic", "short_date_time")
SAY_METHODS = ("none", "pronounced", "iterated", "counted")

#: One tone of a ``tones`` command (``tone_stream://%(on,off,freqs...)``).
TONE = obj("tone", required=("Frequencies", "Duration-ON", "Duration-OFF"),
           optional=("Volume", "Repeat"),
           types={"Frequencies": list_of(INTEGER), "Duration-ON": INTEGER,
                  "Duration-OFF": INTEGER, "Volume": SIGNED_INTEGER, "Repeat": INTEGER})

#: One leg of a bridge: a route plus its per-leg knobs.
ENDPOINT = obj("endpoint", required=("Invite-Format",),
               optional=(*ROUTE_FIELDS, "Bypass-Media"), values=ROUTE_VALUES,
               types={**ROUTE_TYPES, "Bypass-Media": BOOLEAN})

#: Options of a bridge, also taken by ``originate_req``.
BRIDGE_OPTIONAL = ("Timeout", "Continue-On-Fail", "Ignore-Early-Media", "Ringback",
                   "Dial-Endpoint-Method", "Media", "Outgoing-Caller-ID-Name",
                   "Outgoing-Caller-ID-Number", "Caller-ID-Name", "Caller-ID-Number",
                   "SIP-Headers", "Custom-Channel-Vars")
BRIDGE_VALUES = {"Dial-Endpoint-Method": DIAL_METHODS, "Media": ROUTE_MEDIA}
BRIDGE_TYPES = {"Endpoints": nested_list(ENDPOINT), "Timeout": INTEGER,
                "Continue-On-Fail": BOOLEAN, "Ignore-Early-Media": BOOLEAN,
                "SIP-Headers": SCALARS, "Custom-Channel-Vars": SCALARS}

#: The API table: application -> its own fields (beyond Application-Name, Call-ID, Insert-At).
COMMANDS: dict[str, dict[str, Any]] = {
    "answer": {},
    "hangup": {"optional": ("Hangup-Cause",)},
    "park": {},
    "progress": {},
    "play": {"required": ("Media-Name",), "optional": ("Terminators",),
             "types": {"Terminators": TERMINATORS}},
    "tones": {"required": ("Tones",), "types": {"Tones": nested_list(TONE)}},
    "record": {"required": ("Media-Name",),
               "optional": ("Terminators", "Time-Limit", "Silence-Threshold", "Silence-Hits"),
               "types": {"Terminators": TERMINATORS, "Time-Limit": INTEGER,
                         "Silence-Threshold": INTEGER, "Silence-Hits": INTEGER}},
    "play_and_collect_digits": {
        "required": ("Minimum-Digits", "Maximum-Digits", "Timeout", "Terminators", "Media-Name",
                     "Media-Tries", "Failed-Media-Name", "Digits-Regex"),
        "types": {"Minimum-Digits": INTEGER, "Maximum-Digits": INTEGER, "Timeout": INTEGER,
                  "Terminators": TERMINATORS, "Media-Tries": INTEGER}},
    "say": {"required": ("Language", "Type", "Method", "Say-Text"),
            "values": {"Type": SAY_TYPES, "Method": SAY_METHODS}},
    "sleep": {"required": ("Time",), "types": {"Time": INTEGER}},
    "respond": {"required": ("Response-Code",), "optional": ("Response-Message",),
                "types": {"Response-Code": INTEGER}},
    "set": {"required": ("Custom-Channel-Vars", "Custom-Call-Vars"),
            "types": {"Custom-Channel-Vars": SCALARS, "Custom-Call-Vars": SCALARS}},
    "bridge": {"required": ("Endpoints",), "optional": BRIDGE_OPTIONAL,
               "values": BRIDGE_VALUES, "types": BRIDGE_TYPES},
    # upload a file the switch recorded (``record``) to a URL; runs even after the hangup
    "store": {"required": ("Media-Name", "Media-Transfer-Destination"),
              "optional": ("Media-Transfer-Method",),
              "values": {"Media-Transfer-Method": STORE_METHODS}},
    # join a conference room (mod_conference): its id (unique on the switch: callers put the
    # account in it), the switch's profile, a PIN the caller is asked for, member flags
    "conference": {"required": ("Conference-ID",),
                   "optional": ("Profile", "PIN", "Moderator", "Mute", "Deaf"),
                   "types": {"Moderator": BOOLEAN, "Mute": BOOLEAN, "Deaf": BOOLEAN}},
    # valet parking (mod_valet_parking): park the call in Slot of Lot, or, when a call is
    # parked there already, connect to it; runs until the call is retrieved or hangs up
    "valet_park": {"required": ("Lot", "Slot")},
    "queue": {"required": ("Commands",)},  # Commands' kind is set below (needs QUEUED)
    "noop": {"optional": ("Msg-ID",)},
}


def _command(app: str, fields: Mapping[str, Any], **types: Any) -> MessageSpec:
    return message(
        app, COMMAND_CATEGORY, event_name=COMMAND_EVENT, application_name=app,
        required=("Application-Name", "Call-ID", *fields.get("required", ())),
        optional=("Insert-At", *fields.get("optional", ())),
        values={"Insert-At": INSERT_AT, **fields.get("values", {})},
        types={**fields.get("types", {}), **types},
    )


def _queued(app: str, fields: Mapping[str, Any]) -> ObjectSpec:
    return obj(
        f"{app} command",
        required=("Application-Name", *fields.get("required", ())),
        optional=("Insert-At", *fields.get("optional", ())),
        values={"Application-Name": (app,), "Insert-At": INSERT_AT, **fields.get("values", {})},
        types=fields.get("types", {}),
    )


#: Declarations of the commands a queue may hold (every application but ``queue``).
QUEUED: dict[str, ObjectSpec] = {app: _queued(app, f) for app, f in COMMANDS.items()
                                 if app != "queue"}


def _resolve(command: dict) -> ObjectSpec | None:
    app = command.get("Application-Name")
    return QUEUED.get(app) if isinstance(app, str) else None


def _unresolved(command: dict) -> dict:
    app = command.get("Application-Name")
    if app is None:
        return {"Application-Name": ["missing"]}
    if not isinstance(app, str):
        return {"Application-Name": [f"expected a string, got {json_type(app)}"]}
    return {"Application-Name": [f"{app!r} is not one of {list(QUEUED)}"]}


QUEUED_COMMANDS = Dispatched("a list of commands (each with its Application-Name)",
                             _resolve, _unresolved)

#: One message type per application, by Application-Name.
BY_APPLICATION: dict[str, MessageSpec] = {
    app: _command(app, f, **({"Commands": QUEUED_COMMANDS} if app == "queue" else {}))
    for app, f in COMMANDS.items()
}

MESSAGES = tuple(BY_APPLICATION.values())
