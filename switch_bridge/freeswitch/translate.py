"""FreeSWITCH events → Whistle API messages: call events, registrations, bridge helpers.

Pure functions, no I/O: the bridge's event greenlet calls them for every event it
receives, so they are written for speed (a call event is a few dozen dict look-ups and
one pass over the header names, in C; see the module's tests and ``bench``).

What comes out
    * :func:`call_event`: ``(routing key, call_event message)`` for the channel events the
      API forwards (:data:`CALL_EVENTS`), ``None`` for every other event.
    * :func:`reg_success`: a ``reg_success`` for ``CUSTOM sofia::register`` only.
      ``sofia::pre_register`` and ``sofia::register_attempt`` are *not* registrations:
      FreeSWITCH also fires them for every digest-authenticated INVITE, with ``from-user``
      = the *called* number (captures c-f).
    * :func:`deregistration`: a ``reg_success`` with ``Expires`` = 0 (the registrar's
      de-registration) for ``sofia::unregister`` and ``sofia::expire``.

The messages are built here as plain dicts with the default headers filled, not through
``schemas.build``: build prunes and validates every field, ~6 us on top of the ~12 us of the
translation of a call event (measured on the captures). The output is valid by
construction (integer fields are only set from digit strings, ``_undef_`` never passes)
and the tests validate every message made from every real capture.

Decisions (documented here because other modules rely on them)
    * ``Timestamp`` / ``Event-Timestamp``: Unix time in *seconds*, a float, from
      ``Event-Date-Timestamp`` (microseconds). The registrar adds ``Expires`` to it.
    * ``Application-Name``: the *Whistle* command name when FreeSWITCH ran the application
      for one (``playback`` → ``play``, or ``tones`` for a ``tone_stream://`` argument;
      ``play_and_get_digits`` → ``play_and_collect_digits``; ``pre_answer`` → ``progress``;
      ``export`` → ``set``), as Whistle and Kazoo did: a whapp waits for the completion of
      the command it sent, by that command's name. Any other application keeps its
      FreeSWITCH name.
    * ``Application-Response`` (``CHANNEL_EXECUTE_COMPLETE`` only): play_and_collect_digits
      → ``variable_collected_digits`` (``""`` when nothing was collected); bridge →
      ``variable_originate_disposition``; record → the file path (``Record-File-Path``,
      else the first word of the application data); otherwise FreeSWITCH's value, except
      ``_none_`` / ``_undef_`` ("nothing"), which leave the field out. FreeSWITCH can
      report a stale response (case f: ``park`` completes with ``FILE PLAYED`` left over
      from a playback run inside it): it is passed on as is.
    * ``Application-UUID`` is not a field of the call_event schema, so it is not on the
      wire; the bridge's call control reads it from the event with :func:`application_uuid`.
    * A repeated header (``Hangup-Cause`` in every CHANNEL_HANGUP_COMPLETE) counts once:
      its first value.
    * An event of the right kind that lacks what the message needs (a call event without
      ``Unique-ID``, a sofia::register without contact, user or realm, a non-numeric
      ``expires``) raises :class:`EventError` (a ``ValueError``) naming the event and the
      missing header, for the bridge to log and count; never a ``KeyError``.
    * Registration messages carry the event's values as sent (case kept; the raw contact
      as ``Contact`` and ``Original-Contact``): the registrar cleans the contact and
      lower-cases realm and user, and so does the routing key of their contract
      (``contracts.REG_SUCCESS``), so every registration of one user takes one key.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache

from schemas.base import message_head
from schemas.keys import call_event_key
from switch_bridge import APP_NAME
from switch_bridge.freeswitch.esl.protocol import UNDEF, Event

__all__ = [
    "APPLICATION_NAMES",
    "CALL_EVENTS",
    "CCV_PREFIX",
    "REGISTRATION_SUBCLASSES",
    "EventError",
    "application_name",
    "application_uuid",
    "background_job",
    "call_event",
    "custom_channel_vars",
    "deregistration",
    "event_timestamp",
    "is_heartbeat",
    "prefixed",
    "reg_success",
    "subscription",
]

#: The FreeSWITCH events the bridge forwards as call events (docs/api.md, "Call events").
#: ``CHANNEL_EXECUTE_ERROR`` is ours (a command that could not run), never FreeSWITCH's.
CALL_EVENTS: tuple[str, ...] = (
    "CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY",
    "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "DTMF", "DETECTED_TONE", "RECORD_START",
    "RECORD_STOP", "CALL_UPDATE",
)
_CALL_EVENT_SET = frozenset(CALL_EVENTS)

REGISTER = "sofia::register"
UNREGISTER = "sofia::unregister"
EXPIRE = "sofia::expire"
#: The CUSTOM subclasses the bridge subscribes to (pre_register/register_attempt are not).
REGISTRATION_SUBCLASSES: tuple[str, ...] = (REGISTER, UNREGISTER, EXPIRE)

#: FreeSWITCH application → the Whistle command it runs (docs/api.md, "Call control").
APPLICATION_NAMES: dict[str, str] = {
    "playback": "play",
    "play_and_get_digits": "play_and_collect_digits",
    "pre_answer": "progress",
    "export": "set",
}
_TONE_STREAM = "tone_stream://"

#: The channel-variable prefix of Custom-Channel-Vars, as an event header.
CCV_PREFIX = "variable_ecallmgr_"

_NOTHING = frozenset((UNDEF, "_none_"))


class EventError(ValueError):
    """An event of a kind we translate that lacks what its message needs."""


def subscription(extra: Iterable[str] = ()) -> list[str]:
    """The event names for ``events json <names>``.

    The call events, ``HEARTBEAT``, ``BACKGROUND_JOB`` (plus ``extra``), then ``CUSTOM``
    followed by its subclasses, last: mod_event_socket reads every word after ``CUSTOM``
    as a subclass name, so nothing else may follow it.
    """
    names = [*CALL_EVENTS, "HEARTBEAT", "BACKGROUND_JOB"]
    for name in extra:
        if name not in names and name != "CUSTOM":
            names.append(name)
    return [*names, "CUSTOM", *REGISTRATION_SUBCLASSES]


# --------------------------------------------------------------------------- helpers


def _value(headers: dict[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None or value == UNDEF:
        return None
    return value


def event_timestamp(event: Event) -> float:
    """Unix seconds of the event (``Event-Date-Timestamp`` is microseconds).

    Falls back to now for an event without a usable timestamp (hand-made ones).
    """
    raw = event.headers.get("Event-Date-Timestamp")
    if raw is not None and raw.isdigit() and raw.isascii():
        return int(raw) / 1_000_000
    return time.time()


def prefixed(headers: Mapping[str, str], prefix: str) -> dict[str, str]:
    """Every header ``<prefix>K`` as ``{K: value}`` (``_undef_`` left out).

    Fast for the usual case of an event with ~150 headers and none or a few of the
    prefix: one join and one substring search, in C, before any per-name work.
    """
    joined = "\n".join(headers)
    if prefix not in joined:
        return {}
    found = {}
    for suffix in _prefix_pattern(prefix).findall(joined):
        value = headers.get(prefix + suffix)
        if value is not None and value != UNDEF:
            found[suffix] = value
    return found


@lru_cache(maxsize=32)
def _prefix_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(f"^{re.escape(prefix)}(.+)$", re.MULTILINE)


def custom_channel_vars(headers: Mapping[str, str]) -> dict[str, str]:
    """Every ``variable_ecallmgr_K`` header as ``{K: value}`` (``_undef_`` left out)."""
    return prefixed(headers, CCV_PREFIX)


def application_uuid(event: Event) -> str | None:
    """The ``Application-UUID`` of a CHANNEL_EXECUTE(_COMPLETE): sendmsg's ``event-uuid``.

    Not on the wire (the call_event schema has no such field): the bridge's call control
    matches a completion to the command it sent with it.
    """
    return event.get("Application-UUID")


def is_heartbeat(event: Event) -> bool:
    return event.name == "HEARTBEAT"


def background_job(event: Event) -> tuple[str, bool, str] | None:
    """``(Job-UUID, ok, result)`` of a ``BACKGROUND_JOB``; ``None`` for other events.

    ``ok`` is False when the command output starts with ``-`` (``-ERR ...``,
    ``-USAGE: ...``). ``result`` is the output without its trailing newline and without
    the ``+OK`` / ``-ERR`` word: ``+OK 8732...\\n`` → ``(job, True, "8732...")``,
    ``-ERR NO_ANSWER\\n`` → ``(job, False, "NO_ANSWER")``; other output (``status``) is
    returned whole. Raises :class:`EventError` when the event has no ``Job-UUID``.
    """
    if event.name != "BACKGROUND_JOB":
        return None
    job_uuid = event.get("Job-UUID")
    if not job_uuid:
        raise EventError("BACKGROUND_JOB without Job-UUID")
    text = event.body.rstrip("\r\n")
    ok = not text.startswith("-")
    for word in ("+OK", "-ERR"):
        if text == word or text.startswith(word + " ") or text.startswith(word + "\n"):
            text = text[len(word):].strip()
            break
    return job_uuid, ok, text


# --------------------------------------------------------------------------- call events

# (API field, FreeSWITCH header): copied when present and not _undef_.
_CALL_FIELDS: tuple[tuple[str, str], ...] = (
    ("Channel-Call-State", "Channel-Call-State"),
    ("Channel-State", "Channel-State"),
    ("Call-Direction", "Call-Direction"),
    ("Caller-ID-Name", "Caller-Caller-ID-Name"),
    ("Caller-ID-Number", "Caller-Caller-ID-Number"),
    ("Callee-ID-Name", "Caller-Callee-ID-Name"),
    ("Callee-ID-Number", "Caller-Callee-ID-Number"),
    ("Application-Data", "Application-Data"),
    ("Other-Leg-Call-ID", "Other-Leg-Unique-ID"),
    ("Other-Leg-Caller-ID-Name", "Other-Leg-Caller-ID-Name"),
    ("Other-Leg-Caller-ID-Number", "Other-Leg-Caller-ID-Number"),
    ("Other-Leg-Destination-Number", "Other-Leg-Destination-Number"),
    ("Hangup-Cause", "Hangup-Cause"),
    ("Hangup-Code", "variable_proto_specific_hangup_cause"),
    ("DTMF-Digit", "DTMF-Digit"),
    ("Detected-Tone", "Detected-Tone"),
    ("Disposition", "variable_endpoint_disposition"),
    ("Switch-Hostname", "FreeSWITCH-Hostname"),
)
# Integer fields: set (as int) only from a string of ASCII digits (the schema's INTEGER).
_CALL_INT_FIELDS: tuple[tuple[str, str], ...] = (
    ("DTMF-Duration", "DTMF-Duration"),
    ("Duration-Seconds", "variable_duration"),
    ("Billing-Seconds", "variable_billsec"),
    ("Ringing-Seconds", "variable_progresssec"),
)
_TERMINATOR_HEADERS = ("variable_playback_terminator_used", "variable_read_terminator_used")


def application_name(fs_app: str, data: str | None = None) -> str:
    """The Whistle name of a FreeSWITCH application (``playback`` → ``play``/``tones``)."""
    if fs_app == "playback" and data is not None and data.startswith(_TONE_STREAM):
        return "tones"
    return APPLICATION_NAMES.get(fs_app, fs_app)


def _application_response(headers: dict[str, str], fs_app: str | None) -> str | None:
    if fs_app == "play_and_get_digits":
        return _value(headers, "variable_collected_digits") or ""
    if fs_app == "bridge":
        disposition = _value(headers, "variable_originate_disposition")
        if disposition is not None:
            return disposition
    elif fs_app == "record":
        path = _value(headers, "Record-File-Path") or _value(headers, "variable_record_file_path")
        if path is None:
            data = _value(headers, "Application-Data")
            path = data.split(None, 1)[0] if data and data.strip() else None
        if path is not None:
            return path
    response = headers.get("Application-Response")
    if response is None or response in _NOTHING:
        return None
    return response


def call_event(event: Event, *, node: str,
               app_name: str = APP_NAME) -> tuple[str, dict] | None:
    """``(call.<EVENT_NAME>.<call-id>, call_event message)`` for a call event, else None.

    Raises :class:`EventError` for a call event without ``Unique-ID``.
    """
    headers = event.headers
    name = headers.get("Event-Name", "")
    if name not in _CALL_EVENT_SET:
        return None
    call_id = _value(headers, "Unique-ID")
    if not call_id:
        raise EventError(f"{name} without Unique-ID")
    msg = message_head(name, "call_event", app_name=app_name, node=node)
    msg["Call-ID"] = call_id
    raw_ts = headers.get("Event-Date-Timestamp")
    if raw_ts is not None and raw_ts.isdigit() and raw_ts.isascii():
        msg["Timestamp"] = int(raw_ts) / 1_000_000
    get = headers.get
    for field, source in _CALL_FIELDS:
        value = get(source)
        if value is not None and value != UNDEF:
            msg[field] = value
    for field, source in _CALL_INT_FIELDS:
        value = get(source)
        if value is not None and value.isdigit() and value.isascii():
            msg[field] = int(value)
    for source in _TERMINATOR_HEADERS:
        value = get(source)
        if value is not None and value != UNDEF:
            msg["Terminator"] = value
            break
    if "Other-Leg-Call-ID" not in msg:
        other = _bridge_peer(headers, call_id)
        if other is not None:
            msg["Other-Leg-Call-ID"] = other
    fs_app = _value(headers, "Application")
    if fs_app is not None:
        msg["Application-Name"] = application_name(fs_app, msg.get("Application-Data"))
    if name == "CHANNEL_EXECUTE_COMPLETE":
        response = _application_response(headers, fs_app)
        if response is not None:
            msg["Application-Response"] = response
    ccvs = custom_channel_vars(headers)
    if ccvs:
        msg["Custom-Channel-Vars"] = ccvs
    return call_event_key(name, call_id), msg


def _bridge_peer(headers: dict[str, str], call_id: str) -> str | None:
    """The other leg named by ``Bridge-A/B-Unique-ID`` (CHANNEL_BRIDGE/UNBRIDGE)."""
    a_leg = _value(headers, "Bridge-A-Unique-ID")
    b_leg = _value(headers, "Bridge-B-Unique-ID")
    if a_leg == call_id:
        return b_leg
    if b_leg == call_id:
        return a_leg
    return None


# --------------------------------------------------------------------------- registrations

# reg_success fields copied from the header of the lower-case name, else the exact name;
# Contact / Expires / Realm / Username / Event-Timestamp are made apart.
_REG_COPIED: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (field, (field.lower(), field) + extra) for field, extra in (
        ("From-User", ()), ("From-Host", ()), ("To-User", ()), ("To-Host", ()),
        ("Network-IP", ()), ("RPid", ()),
        ("Status", ("statusd",)),  # statusd: FreeSWITCH of 2009 (fsdocs capture)
        ("User-Agent", ()), ("Call-ID", ()), ("Profile-Name", ()), ("Presence-Hosts", ()),
        ("FreeSWITCH-Hostname", ()),
        # directory variables of the user, as the registrar's answer set them
        ("Account-ID", ("ecallmgr_Account-ID",)),
        ("Authorizing-ID", ("ecallmgr_Authorizing-ID",)),
        ("Source-IP", ()),
    )
)
_REG_PORTS = ("Network-Port", "Source-Port")


def _first(headers: dict[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None and value != UNDEF and value != "":
            return value
    return None


def _registration(event: Event, node: str, app_name: str, *, expires: int,
                  user_names: tuple[str, ...], realm_names: tuple[str, ...]) -> dict:
    headers = event.headers
    label = f"CUSTOM {event.subclass}"
    username = _first(headers, user_names)
    if username is None:
        raise EventError(f"{label} without a user ({' / '.join(user_names)})")
    realm = _first(headers, realm_names)
    if realm is None:
        raise EventError(f"{label} without a realm ({' / '.join(realm_names)})")
    contact = _first(headers, ("contact", "Contact"))
    msg = message_head("reg_success", "directory", app_name=app_name, node=node)
    msg["Event-Timestamp"] = event_timestamp(event)
    msg["Username"] = username
    msg["Realm"] = realm
    msg["Expires"] = expires
    if contact is not None:
        msg["Contact"] = contact
        msg["Original-Contact"] = contact
    for field, names in _REG_COPIED:
        value = _first(headers, names)
        if value is not None:
            msg[field] = value
    for field in _REG_PORTS:
        value = _first(headers, (field.lower(), field))
        if value is not None and value.isdigit() and value.isascii():
            msg[field] = int(value)
    return msg


def reg_success(event: Event, *, node: str, app_name: str = APP_NAME) -> dict | None:
    """The ``reg_success`` of a ``CUSTOM sofia::register``; ``None`` for any other event.

    Each field comes from the event header of the lower-case name (``from-user``), else
    the exact name; ``Username`` from ``username``, else ``from-user``, else ``to-user``;
    ``Realm`` from ``realm``, else ``from-host``, else ``to-host``; ``Expires`` = the
    relative ``expires``; ``Contact`` = ``Original-Contact`` = the raw contact.
    Raises :class:`EventError` when contact, user, realm or a numeric expires is missing.
    """
    if event.name != "CUSTOM" or event.subclass != REGISTER:
        return None
    raw = _first(event.headers, ("expires", "Expires"))
    if raw is None or not (raw.isdigit() and raw.isascii()):
        raise EventError(f"CUSTOM {REGISTER} with expires {raw!r} (not a number of seconds)")
    msg = _registration(event, node, app_name, expires=int(raw),
                        user_names=("username", "from-user", "to-user", "Username"),
                        realm_names=("realm", "from-host", "to-host", "Realm"))
    if "Contact" not in msg:
        raise EventError(f"CUSTOM {REGISTER} without contact")
    return msg


def deregistration(event: Event, *, node: str, app_name: str = APP_NAME) -> dict | None:
    """A ``reg_success`` with ``Expires`` = 0 for ``sofia::unregister`` / ``sofia::expire``.

    ``sofia::unregister`` has no ``status``; ``sofia::expire`` names the user ``user`` /
    ``username`` and the realm ``realm`` / ``host``, and its ``expires`` is an absolute
    Unix time (ignored: the binding is gone either way). Without a contact, ``Contact``
    is ``""``: the registrar then removes every binding of the user.
    ``None`` for any other event; :class:`EventError` without user or realm.
    """
    if event.name != "CUSTOM" or event.subclass not in (UNREGISTER, EXPIRE):
        return None
    msg = _registration(event, node, app_name, expires=0,
                        user_names=("username", "from-user", "user", "to-user", "Username"),
                        realm_names=("realm", "from-host", "host", "to-host", "Realm"))
    msg.setdefault("Contact", "")
    return msg
