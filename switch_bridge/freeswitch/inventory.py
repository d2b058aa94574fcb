"""What a FreeSWITCH node holds, from its own answers (pure functions, no I/O).

The node sync (``extensions/node_sync.py``) asks a node, each time the bridge connects:

============================================  ================================================
``api hostname``                              the node's name, as its events carry it
                                              (``FreeSWITCH-Hostname``)
``api strmicroepoch``                         its clock, in µs (:func:`microepoch`)
``api sofia xmlstatus``                       its sofia profiles (:func:`profiles`)
``api sofia xmlstatus profile <p> reg``       every registration of a profile, one per contact
                                              (:func:`registrations`)
``api show channels as json``                 the channels in progress (:func:`channels`)
``api uuid_getvar <uuid> <var>``              one channel variable (:func:`variable`)
``api status``                                sessions now and at most (:func:`sessions`)
============================================  ================================================

Formats as FreeSWITCH master writes them (captured in ``tests/fixtures/freeswitch/nodesync``).
The registration list is XML written with ``printf``: ``contact`` and ``agent`` are
entity-encoded, ``sip-auth-user`` URL-encoded, but ``call-id`` and ``user`` are written as
they came in the REGISTER, and a SIP Call-ID may contain ``<``, ``>``, ``/`` and ``"``: a
phone could write a whole fake ``<registration>`` into its Call-ID. So it is not read as
XML but as FreeSWITCH writes it: one element per line, in a fixed order, each line
``<name>value</name>`` whole (a SIP header value cannot hold a line break). A block that
is not exactly that shape is skipped and counted, never guessed at.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import unquote

#: The channel variable that names a call's control queue (set when the bridge takes
#: control, read back when a bridge connects: control survives a bridge restart).
CONTROL_QUEUE_VAR = "whistle_control_queue"

UNDEF = "_undef_"

#: The lines of one ``<registration>``, in FreeSWITCH's order (mod_sofia.c
#: ``show_reg_callback_xml``).
_REG_LINES = ("call-id", "user", "contact", "agent", "status", "ping-status", "ping-time",
              "host", "network-ip", "network-port", "sip-auth-user", "sip-auth-realm",
              "mwi-account")
_ELEMENT = re.compile(r"^\s*<([a-z-]+)>(.*)</\1>\s*$")
_EXPSECS = re.compile(r"expsecs\((-?\d+)\)\s*$")
_STATUS = re.compile(r"^(.*?) exp\(")
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

STATS = {"registrations_skipped": 0}


class InventoryError(ValueError):
    """An answer that is not what FreeSWITCH writes (an error, a different version)."""


def microepoch(body: str) -> float:
    """``strmicroepoch`` → Unix seconds (float)."""
    text = body.strip()
    if not text.isdigit():
        raise InventoryError(f"strmicroepoch: not a number of microseconds: {text[:60]!r}")
    return int(text) / 1_000_000


def hostname(body: str) -> str:
    text = body.strip()
    if not text or text.startswith(("-ERR", "-USAGE")) or "\n" in text:
        raise InventoryError(f"hostname: {text[:60]!r}")
    return text


def profiles(body: str) -> list[str]:
    """The names of the sofia profiles (``<type>profile</type>``; aliases and gateways are
    left out) of ``sofia xmlstatus``, in its order."""
    if "<profiles>" not in body:
        raise InventoryError(f"sofia xmlstatus: {body.strip()[:80]!r}")
    found = []
    for block in body.split("<profile>")[1:]:
        fields = dict(m.groups() for m in map(_ELEMENT.match, block.splitlines()) if m)
        name = fields.get("name", "")
        # a profile with TLS or WS bindings is listed once per binding
        if fields.get("type") == "profile" and _PROFILE_NAME.match(name) and name not in found:
            found.append(name)
    return found


def registrations(body: str, *, profile: str, node: str,
                  timestamp: float) -> list[dict[str, Any]]:
    """The registrations of ``sofia xmlstatus profile <profile> reg`` as reg_success fields,
    as of ``timestamp`` (the node's clock when it was asked): ``Expires`` = the seconds
    left (``expsecs``). Expired ones (nothing left) are left out."""
    if "<registrations>" not in body and "<registrations/>" not in body:
        raise InventoryError(f"sofia xmlstatus profile {profile} reg: {body.strip()[:80]!r}")
    out = []
    lines = body.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() != "<registration>":
            index += 1
            continue
        block = lines[index + 1:index + 2 + len(_REG_LINES)]
        index += 1
        reg = _registration(block, profile=profile, node=node, timestamp=timestamp)
        if reg is None:
            STATS["registrations_skipped"] += 1
            continue
        index += len(_REG_LINES) + 1
        if reg["Expires"] > 0:
            out.append(reg)
    return out


def _registration(block: list[str], *, profile: str, node: str,
                  timestamp: float) -> dict[str, Any] | None:
    if len(block) != len(_REG_LINES) + 1 or block[-1].strip() != "</registration>":
        return None
    values: dict[str, str] = {}
    for name, line in zip(_REG_LINES, block, strict=False):
        match = _ELEMENT.match(line)
        if match is None or match.group(1) != name:
            return None
        values[name] = match.group(2)
    expsecs = _EXPSECS.search(values["status"])
    user, _, host = values["user"].rpartition("@")
    username = unquote(values["sip-auth-user"]) or user
    realm = values["sip-auth-realm"] or host
    contact = html.unescape(values["contact"])
    if expsecs is None or not username or not realm or not contact:
        return None
    reg: dict[str, Any] = {
        "Contact": contact, "Original-Contact": contact, "Username": username,
        "Realm": realm, "Expires": max(0, int(expsecs.group(1))),
        "Event-Timestamp": timestamp, "Profile-Name": profile, "FreeSWITCH-Hostname": node,
    }
    optional = {"Call-ID": values["call-id"], "User-Agent": html.unescape(values["agent"]),
                "Network-IP": values["network-ip"], "From-User": user, "From-Host": host}
    status = _STATUS.match(values["status"])
    if status:
        optional["Status"] = status.group(1)
    reg.update({k: v for k, v in optional.items() if v})
    port = values["network-port"]
    if port.isdigit() and port.isascii():
        reg["Network-Port"] = int(port)
    return reg


def channels(body: str) -> list[dict[str, str]]:
    """The rows of ``show channels as json`` (``uuid``, ``name``, ``call_uuid``, ``state``,
    ``callstate``...; every value a string), each with ``profile``: the sofia profile of
    a ``sofia/<profile>/...`` channel, else ``""``."""
    try:
        data = json.loads(body)
    except ValueError:
        raise InventoryError(f"show channels as json: {body.strip()[:80]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("row_count"), int):
        raise InventoryError("show channels as json: no row_count")
    rows = data.get("rows") or []
    out = []
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("uuid"), str):
            continue
        row = {str(k): str(v) for k, v in row.items()}
        kind, _, rest = row.get("name", "").partition("/")
        row["profile"] = rest.partition("/")[0] if kind == "sofia" else ""
        out.append(row)
    return out


def variable(body: str) -> str | None:
    """``uuid_getvar``'s answer: the value, or None (unset, or no such channel)."""
    text = body.rstrip("\n")
    if not text or text == UNDEF or text.startswith(("-ERR", "-USAGE")):
        return None
    return text


_SESSIONS = re.compile(r"^(\d+) session\(s\) - peak", re.MULTILINE)
_MAX = re.compile(r"^(\d+) session\(s\) max", re.MULTILINE)


def sessions(body: str) -> tuple[int, int]:
    """``(sessions now, sessions at most)`` of ``status``."""
    now, most = _SESSIONS.search(body), _MAX.search(body)
    if now is None or most is None:
        raise InventoryError(f"status: {body.strip()[:80]!r}")
    return int(now.group(1)), int(most.group(1))


def control_queue_setvar(call_id: str, queue: str) -> str:
    """``uuid_setvar`` of the control-queue variable (both are plain words: checked)."""
    for word in (call_id, queue):
        if not re.fullmatch(r"[A-Za-z0-9._:-]+", word):
            raise ValueError(f"not usable in uuid_setvar: {word[:60]!r}")
    return f"uuid_setvar {call_id} {CONTROL_QUEUE_VAR} {queue}"


def control_queue_getvar(call_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._:-]+", call_id):
        raise ValueError(f"not a channel id: {call_id[:60]!r}")
    return f"uuid_getvar {call_id} {CONTROL_QUEUE_VAR}"


def flush_directory_cache(user: str | None = None, domain: str | None = None) -> str:
    """``xml_flush_cache id <user> <domain>`` (the key sofia caches a REGISTER's directory
    answer under, switch_xml.c ``switch_xml_locate_user_merged("id", ...)``), or the whole
    cache without arguments. The API splits its argument on spaces: a user or domain with
    a space or a line break cannot be named, and the whole cache is flushed instead."""
    if user and domain and not re.search(r"\s", user + domain):
        return f"xml_flush_cache id {user} {domain}"
    return "xml_flush_cache"
