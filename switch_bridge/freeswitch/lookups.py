"""mod_xml_curl request bodies → Whistle API requests (``authn_req``, ``route_req``).

Pure functions, no I/O: the bridge's HTTP endpoint reads the POST body, calls
:func:`parse_form`, then, by section, :func:`directory_kind` + :func:`authn_req` or
:func:`route_req` + :func:`call_context`.

The form (:func:`parse_form`)
    FreeSWITCH encodes every name and value with ``switch_url_encode``: ``%XX`` escapes,
    space as ``%20``, and a literal ``+`` left as is (``+14155550100``). So the body is
    decoded with ``urllib.parse.unquote``, never ``unquote_plus``. Decisions:

    * split on ``&``, then each pair on its first ``=``; empty pairs (``a=1&&b=2``, a
      trailing ``&``) are skipped;
    * a non-empty pair without ``=``, or with an empty name, is refused: FreeSWITCH
      always writes ``name=value`` (``name=`` when empty), so such a body is not a fetch
      (a JSON body, a wrong client) and the error says which pair;
    * a repeated name keeps its first value (FreeSWITCH never repeats one);
    * bytes that are not UTF-8 (raw or after decoding ``%XX``) become U+FFFD rather than
      failing the whole lookup: they come from SIP (a phone's display name or
      User-Agent) and one odd byte must not stop a phone from registering. A malformed
      escape (``%zz``) is kept as text, as ``unquote`` does;
    * an empty body, or one over :data:`MAX_FORM_BYTES` (1 MiB; real ones are 0.5-7 KB),
      is refused.

    Every refusal is a :class:`FetchError` (a ``ValueError``) with a message that says
    what is wrong and where, short enough to log (values are cut, never dumped whole).

The requests
    ``authn_req`` from a directory ``action=sip_auth`` body; ``route_req`` from a dialplan
    body. Values are passed on as FreeSWITCH sent them (the registrar lower-cases realm and
    user itself). Both are checked against their schema before they are returned, so a
    message that leaves here is valid or a :class:`FetchError` says why not.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import repeat

import schemas
from schemas.authn import SIP_METHODS
from schemas.base import message_head
from switch_bridge import APP_NAME
from switch_bridge.freeswitch.esl.protocol import decode_values
from switch_bridge.freeswitch.translate import custom_channel_vars, prefixed

__all__ = [
    "DEFAULT_PROFILE",
    "DEFAULT_REALM",
    "DIRECTORY_KINDS",
    "MAX_FORM_BYTES",
    "FetchError",
    "authn_req",
    "call_context",
    "custom_sip_headers",
    "directory_kind",
    "parse_form",
    "route_req",
]

MAX_FORM_BYTES = 1024 * 1024

#: What :func:`directory_kind` answers. Only ``sip_auth`` becomes an ``authn_req``; the
#: bridge answers the others ``not found`` (FreeSWITCH then tries its static XML).
DIRECTORY_KINDS = ("sip_auth", "gateways", "network-list", "message-count",
                   "reverse-auth-lookup", "user_call", "other")

#: The realm of a call whose fetch names none (a loopback leg has no SIP headers).
DEFAULT_REALM = "norealm"
DEFAULT_PROFILE = "internal"
DEFAULT_CONTEXT = "default"

SIP_HEADER_PREFIX = "variable_sip_h_"
_SIP_METHODS = frozenset(SIP_METHODS)
_PREVIEW = 40


class FetchError(ValueError):
    """A mod_xml_curl request body that cannot be turned into an API request."""


# --------------------------------------------------------------------------- the form


def _preview(text: str) -> str:
    return repr(text[:_PREVIEW]) + ("..." if len(text) > _PREVIEW else "")


def parse_form(body: bytes | bytearray | memoryview | str) -> dict[str, str]:
    """The ``application/x-www-form-urlencoded`` body as ``{name: value}`` (see module doc).

    Raises :class:`FetchError`: empty body, body over :data:`MAX_FORM_BYTES`, a pair
    without ``=`` or with an empty name.
    """
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    elif not isinstance(body, bytes | bytearray | memoryview):
        raise FetchError(f"form body must be bytes, not {type(body).__name__}")
    size = body.nbytes if isinstance(body, memoryview) else len(body)
    if size > MAX_FORM_BYTES:
        raise FetchError(f"form body of {size} bytes is over the {MAX_FORM_BYTES}-byte limit")
    raw = bytes(body)
    try:
        text = raw.decode("ascii")  # what FreeSWITCH sends: everything else is escaped
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
    text = text.rstrip("\r\n")  # a client's final newline (FreeSWITCH encodes real ones)
    if not text.strip():
        raise FetchError("empty form body")
    pieces = [p for p in text.split("&") if p]
    if not pieces:
        raise FetchError("form body has no name=value pair (only '&')")
    raw_names, seps, raw_values = zip(*map(str.partition, pieces, repeat("=")), strict=True)
    if "" in seps:
        index = seps.index("")
        raise FetchError(f"form pair {index + 1} has no '=': {_preview(pieces[index])}")
    if "" in raw_names:
        index = raw_names.index("")
        raise FetchError(f"form pair {index + 1} has an empty name: {_preview(pieces[index])}")
    names = decode_values(raw_names)
    values = decode_values(raw_values)
    form = dict(zip(names, values, strict=True))
    if len(form) != len(names):  # a repeated name keeps its first value
        form = {}
        for name, value in zip(names, values, strict=True):
            form.setdefault(name, value)
    return form


def _get(form: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` with a non-empty value (``_undef_`` counts as empty)."""
    for name in names:
        value = form.get(name)
        if value and value != "_undef_":
            return value
    return None


def _at(user: str | None, host: str | None) -> str | None:
    return f"{user}@{host}" if user and host else None


def _port(value: str | None) -> int | None:
    if value and value.isascii() and value.isdigit():
        return int(value)
    return None


def _checked(name: str, msg: dict) -> dict:
    try:
        return schemas.validate_as(name, msg)
    except schemas.MessageError as exc:
        raise FetchError(str(exc)) from None


def _set(msg: dict, field: str, value: object) -> None:
    if value is not None:
        msg[field] = value


# --------------------------------------------------------------------------- directory


def directory_kind(form: Mapping[str, str]) -> str:
    """What a directory fetch asks for (one of :data:`DIRECTORY_KINDS`).

    ``action`` (``sip_auth``, ``message-count``, ``reverse-auth-lookup``, ``user_call``)
    wins over ``purpose`` (``gateways``, ``network-list``); an older FreeSWITCH wrote
    ``Action`` (fsdocs dump of reverse-auth-lookup).
    """
    action = _get(form, "action", "Action")
    if action in ("sip_auth", "message-count", "reverse-auth-lookup", "user_call"):
        return action
    purpose = _get(form, "purpose")
    if action is None and purpose in ("gateways", "network-list"):
        return purpose
    return "other"


def authn_req(form: Mapping[str, str], *, server_id: str | None, node: str,
              app_name: str = APP_NAME) -> dict:
    """The ``authn_req`` of a directory ``action=sip_auth`` fetch.

    ``Auth-Realm`` = ``sip_auth_realm`` (else ``domain``), ``Auth-User`` =
    ``sip_auth_username`` (else ``user``), ``From``/``To``/``Contact`` =
    ``sip_{from,to,contact}_user@..._host`` (``From``/``To`` fall back to
    ``Auth-User@Auth-Realm``), ``Orig-IP`` = ``ip``, ``Orig-Port`` = ``client_port``,
    ``Method`` = ``sip_auth_method`` (left out when not a SIP method),
    ``Switch-Hostname`` = ``hostname``. Raises :class:`FetchError` when the body is not a
    sip_auth fetch or names no user or realm.
    """
    kind = directory_kind(form)
    if kind != "sip_auth":
        raise FetchError(f"directory fetch is {kind!r}, not a sip_auth")
    realm = _get(form, "sip_auth_realm", "domain")
    if realm is None:
        raise FetchError("sip_auth fetch without sip_auth_realm or domain")
    user = _get(form, "sip_auth_username", "user")
    if user is None:
        raise FetchError("sip_auth fetch without sip_auth_username or user")
    msg = message_head("authn_req", "directory", app_name=app_name, node=node, server_id=server_id)
    msg["Auth-Realm"] = realm
    msg["Auth-User"] = user
    msg["From"] = _at(_get(form, "sip_from_user"), _get(form, "sip_from_host")) or \
        f"{user}@{realm}"
    msg["To"] = _at(_get(form, "sip_to_user"), _get(form, "sip_to_host")) or f"{user}@{realm}"
    _set(msg, "Auth-Nonce", _get(form, "sip_auth_nonce"))
    _set(msg, "Auth-Response", _get(form, "sip_auth_response"))
    _set(msg, "Call-ID", _get(form, "sip_call_id"))
    _set(msg, "Contact", _at(_get(form, "sip_contact_user"), _get(form, "sip_contact_host")))
    method = (_get(form, "sip_auth_method") or "").upper()
    if method in _SIP_METHODS:
        msg["Method"] = method
    _set(msg, "Orig-IP", _get(form, "ip"))
    _set(msg, "Orig-Port", _port(_get(form, "client_port")))
    _set(msg, "Switch-Hostname", _get(form, "hostname", "FreeSWITCH-Hostname"))
    _set(msg, "User-Agent", _get(form, "sip_user_agent"))
    _set(msg, "Expires", _port(_get(form, "expires")))
    return _checked("authn_req", msg)


# --------------------------------------------------------------------------- dialplan


def custom_sip_headers(form: Mapping[str, str]) -> dict[str, str]:
    """Every ``variable_sip_h_<Name>`` as ``{Name: value}``.

    mod_sofia keeps the INVITE's custom headers (``X-...``, ``P-...``) as ``sip_h_<Name>``
    channel variables; they travel to the whapp as ``Custom-SIP-Headers``.
    """
    return prefixed(form, SIP_HEADER_PREFIX)


def _destination(form: Mapping[str, str]) -> str | None:
    return _get(form, "Hunt-Destination-Number", "Caller-Destination-Number",
                "variable_sip_req_user", "variable_sip_to_user")


def _call_id(form: Mapping[str, str]) -> str | None:
    return _get(form, "Unique-ID", "Channel-Call-UUID", "Caller-Unique-ID", "variable_uuid")


def _realm(form: Mapping[str, str], ccvs: Mapping[str, str]) -> str:
    """The request host: the INVITE's, else the To's, else what the channel knows."""
    return (_get(form, "variable_sip_req_host", "variable_sip_to_host")
            or _get(ccvs, "Realm")
            or _get(form, "variable_domain_name", "variable_dialed_domain")
            or DEFAULT_REALM)


def route_req(form: Mapping[str, str], *, server_id: str | None, node: str,
              app_name: str = APP_NAME, switch_nodename: str | None = None) -> dict:
    """The ``route_req`` of a dialplan fetch.

    ``Request`` = ``<destination>@<request host>``: the destination is
    ``Hunt-Destination-Number`` (else ``Caller-Destination-Number``), the host
    ``variable_sip_req_host``, else the domain of ``To``, else the channel's
    ``Custom-Channel-Vars`` ``Realm`` or ``domain_name``, else :data:`DEFAULT_REALM` (a
    loopback leg carries no SIP request). ``To``/``From`` =
    ``variable_sip_{to,from}_user@..._host``, else ``<destination>@<host>`` /
    ``<caller number>@<host>``. ``Custom-Channel-Vars`` from ``variable_ecallmgr_K``,
    ``Custom-SIP-Headers`` from ``variable_sip_h_Name``, ``Resource-Type`` audio.
    ``Media`` and ``Codecs`` are left to the whapp (nothing in the fetch says what the
    caller wants). ``Switch-Nodename`` = ``switch_nodename`` when the bridge knows the
    node by another name, else ``FreeSWITCH-Switchname``. Raises :class:`FetchError`
    without a call id or a destination.
    """
    call_id = _call_id(form)
    if call_id is None:
        raise FetchError("dialplan fetch without Unique-ID / Channel-Call-UUID")
    destination = _destination(form)
    if destination is None:
        raise FetchError("dialplan fetch without Hunt-Destination-Number / "
                         "Caller-Destination-Number")
    ccvs = custom_channel_vars(form)
    request_host = _realm(form, ccvs)
    msg = message_head("route_req", "dialplan", app_name=app_name, node=node, server_id=server_id)
    msg["Call-ID"] = call_id
    msg["Request"] = f"{destination}@{request_host}"
    msg["To"] = _at(_get(form, "variable_sip_to_user"), _get(form, "variable_sip_to_host")) or \
        f"{destination}@{request_host}"
    caller_number = _get(form, "Caller-Caller-ID-Number", "Hunt-Caller-ID-Number")
    msg["From"] = _at(_get(form, "variable_sip_from_user"),
                      _get(form, "variable_sip_from_host")) or \
        f"{caller_number or 'unknown'}@{request_host}"
    msg["Destination-Number"] = destination
    _set(msg, "Caller-ID-Name", _get(form, "Caller-Caller-ID-Name", "Hunt-Caller-ID-Name"))
    _set(msg, "Caller-ID-Number", caller_number)
    if ccvs:
        msg["Custom-Channel-Vars"] = ccvs
    sip_headers = custom_sip_headers(form)
    if sip_headers:
        msg["Custom-SIP-Headers"] = sip_headers
    _set(msg, "Orig-IP", _get(form, "variable_sip_received_ip", "variable_sip_network_ip",
                              "Caller-Network-Addr"))
    _set(msg, "Orig-Port", _port(_get(form, "variable_sip_received_port",
                                      "variable_sip_network_port")))
    _set(msg, "From-Network-Addr", _get(form, "variable_sip_network_ip"))
    _set(msg, "User-Agent", _get(form, "variable_sip_user_agent"))
    _set(msg, "Switch-Hostname", _get(form, "hostname", "FreeSWITCH-Hostname"))
    _set(msg, "Switch-Nodename", switch_nodename or _get(form, "FreeSWITCH-Switchname",
                                                         "FreeSWITCH-Hostname", "hostname"))
    _set(msg, "Context", _get(form, "Hunt-Context", "Caller-Context"))
    _set(msg, "Call-Direction", _get(form, "Call-Direction"))
    msg["Resource-Type"] = "audio"
    return _checked("route_req", msg)


def call_context(form: Mapping[str, str]) -> dict[str, str | None]:
    """What the dialplan renderer needs from the fetch, with FreeSWITCH's defaults.

    ``context`` (``Hunt-Context``/``Caller-Context``, default ``default``),
    ``destination`` (as in ``Request``; ``None`` when absent), ``profile``
    (``variable_sofia_profile_name``, default ``internal``), ``call_id`` (``None`` when
    absent), ``node`` (``hostname``/``FreeSWITCH-Hostname``). Never raises.
    """
    return {
        "context": _get(form, "Hunt-Context", "Caller-Context") or DEFAULT_CONTEXT,
        "destination": _destination(form),
        "profile": _get(form, "variable_sofia_profile_name") or DEFAULT_PROFILE,
        "call_id": _call_id(form),
        "node": _get(form, "hostname", "FreeSWITCH-Hostname"),
    }
