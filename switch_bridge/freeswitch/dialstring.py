"""Dial strings for FreeSWITCH's originate, built so that no value can change their shape.

A dial string is what ``bridge`` (dialplan action, ``sendmsg execute``) and ``originate``
hand to ``switch_ivr_originate``::

    {global=vars}[^^!leg=vars!more=vars]sofia/<profile>/<sip uri>|[...]sofia/...   (single)
    {global=vars}[^^!leg=vars]sofia/<profile>/<sip uri>,[...]sofia/...             (simultaneous)

Values come from SIP (caller-id names, user names, headers) and from operators, so every
value is encoded for each parser it crosses. The parsers and their exact rules, read in
FreeSWITCH's source (signalwire/freeswitch, the 1.10/1.11 line that the captures in
``tests/fixtures/freeswitch/modern`` come from):

``switch_ivr_originate`` (src/switch_ivr_originate.c), in this order:

1. ``strstr(bridgeto, ":_:")`` (``SWITCH_ENT_ORIGINATE_DELIM``) switches the whole string to
   *enterprise* originate, and ``switch_stristr("origination_nested_vars=true", data)``
   turns off the check that refuses ``${`` in variable values. Both are raw substring
   tests, so a value must never contain them as raw text: :func:`_break_triggers` inserts
   an empty quote pair ``''`` (``:''_:``, ``origination_nested_vars=''true``), which the
   first tokenizer the text meets removes again (see 3).
2. ``{...}`` blocks: ``switch_event_create_brackets(data, '{', '}', ',')``
   (src/switch_event.c). The block ends at ``switch_find_end_paren`` (src/switch_utils.c),
   which counts ``{``/``}`` nesting and knows neither quotes nor escapes: a value may
   carry braces only as balanced pairs, unmatched ones are dropped (:func:`_balance`).
   A block that starts with ``^^X`` uses ``X`` instead of ``,`` as separator; the block
   always starts with a variable name here, and names are checked
   (``[A-Za-z0-9_][A-Za-z0-9_.+*%~-]*``), so the ``^^`` trick cannot be triggered.
   The block is split with ``switch_separate_string(vdata, ',')`` and each piece with
   ``switch_separate_string(piece, '=', array, 2)``: the value is everything after the
   first ``=``, and it passes ``cleanup_separated_string`` twice (once per split).
3. ``switch_separate_string`` / ``separate_string_char_delim`` / ``cleanup_separated_string``
   (src/switch_utils.c): the tokenizer splits on the delimiter outside ``'...'`` quotes
   (a ``'`` counts as a quote only when another ``'`` follows) and skips the character
   after a ``\\``. The cleanup then skips leading spaces, trims trailing ones, removes the
   quote characters, and unescapes ``\\'`` ``\\"`` ``\\\\`` ``\\<delim>`` and ``\\n`` ``\\r``
   ``\\t`` ``\\s`` (space); any other ``\\x`` stays as it is. :func:`_esc_layer` is the exact
   inverse: it backslash-escapes ``\\``, ``'`` and the delimiter and writes leading and
   trailing spaces as ``\\s``, so nothing splits, nothing is quoted, nothing is trimmed
   (``"``, inner spaces, TAB, LF, CR mean nothing to either and pass as they are).
4. The rest is split on ``|`` (``switch_separate_string(.., '|')``), then inside each part
   the commas within ``[...]`` are protected (unescaped ones become the markers 0x01 /
   0x02 depending on a ``'`` count that ignores escapes, *unless* the block starts with
   ``[^^``), then the part is split on ``,``, and each peer's ``[...]`` block is read by
   ``switch_event_create_brackets(.., '[', ']', 0x02)``. So a leg value crosses four
   tokenizer+cleanup layers (``|``, ``,``, the block separator, ``=``); leg blocks are
   written ``[^^!a=1!b=2]`` so that the separator is ``!`` and the ``'`` count does not
   matter. ``[`` and ``]`` cannot be carried in a leg value at all (the comma pass
   restarts at any ``[`` it sees, quoted or not): they are dropped.

Application data also passes ``switch_channel_expand_variables_check``
(src/switch_channel.c) when ``switch_core_session_exec`` runs the application (dialplan
actions and ``sendmsg execute``), and the ``set`` application (mod_dptools ``base_set``)
expands its value once more. The expander only works on a string for which
``switch_string_var_check_const`` (``$``, any ``\\``, then ``{``) or
``switch_string_has_escaped_data`` (a ``\\`` followed by ``\\ n s t '``) is true; it then
turns ``\\\\`` into ``\\``, ``\\$`` into ``$`` (``\\$$`` into one ``$``), deletes ``\\'``,
keeps any other ``\\x``, expands ``${..}``/``$${..}``, and writes a ``$`` not followed by
``{`` as is (``$$x`` loses a ``$``). :func:`protect_expansion` therefore leaves a string
alone when FreeSWITCH would leave it alone, and otherwise doubles every ``\\`` and writes
every ``$`` as ``\\$``: the expander then returns exactly the original text and expands
nothing. It is *not* part of :func:`bridge_target` (the ``bgapi originate`` path has no
channel expansion); callers that run the dial string as application data wrap it, and
``bgapi originate`` callers wrap it with :func:`api_arg` (the API splits on spaces).

FreeSWITCH itself refuses to set a dial-string variable whose value matches
``$\\*{`` (``switch_channel_set_variable_var_check`` with ``check_vars``): such values
reach the parser intact and are then dropped by FreeSWITCH, never expanded.

Lossy cases, all counted in :data:`STATS` (``dropped_chars``):

- C0 control characters other than TAB/LF/CR (NUL ends a C string; 0x01/0x02 are the
  originate comma markers), lone surrogates, U+FFFE and U+FFFF (XML 1.0 and UTF-8 cannot
  carry them) are removed from every value, before any escaping;
- unmatched ``{``/``}`` from ``{}`` values, every ``[``/``]`` from ``[]`` values;
- CR and LF from values that become SIP header text (``sip_h_*``, caller-id names and
  numbers, ``sip_auth_username``): they would split the SIP header;
- a variable whose value is empty after that is left out (FreeSWITCH's ``=`` split needs
  a non-empty value).

URIs are not escaped but validated: a ``sip:``/``sips:`` URI whose parts hold only
characters that no layer above treats specially, else ``ValueError``.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Mapping
from typing import Any

from whistle_tasks.core import numbers
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

#: Counters of what had to be dropped or refused (for metrics and tests).
STATS: collections.Counter[str] = collections.Counter()

#: Channel-variable prefix of ``Custom-Channel-Vars`` (docs/api.md).
CCV_PREFIX = "ecallmgr_"
DEFAULT_PROGRESS_TIMEOUT = "6"
LEG_DELIMITER = "!"
DIAL_METHODS = ("single", "simultaneous")

# Route/bridge field -> FreeSWITCH channel variable (docs/api.md, "Routing": channel
# variables from route and bridge fields). SIP-Headers and Custom-Channel-Vars are apart.
FIELD_VARS: tuple[tuple[str, str], ...] = (
    ("Outgoing-Caller-ID-Name", "origination_caller_id_name"),
    ("Outgoing-Caller-ID-Number", "origination_caller_id_number"),
    ("Caller-ID-Name", "effective_caller_id_name"),
    ("Caller-ID-Number", "effective_caller_id_number"),
    ("Auth-User", "sip_auth_username"),
    ("Auth-Password", "sip_auth_password"),
    ("Codecs", "codec_string"),
    ("Progress-Timeout", "progress_timeout"),
    ("Endpoint-Timeout", "leg_timeout"),
    ("Endpoint-Progress-Timeout", "leg_progress_timeout"),
    ("Endpoint-Delay", "leg_delay_start"),
    ("Timeout", "originate_timeout"),  # sofia legs read this one, not call_timeout
    ("Ignore-Early-Media", "ignore_early_media"),
    ("Caller-ID-Type", "sip_cid_type"),
)
#: ``Caller-ID-Type`` (schemas.route) -> sofia's ``sip_cid_type``: which header carries the
#: caller's identity besides From (``pid``: P-Asserted-Identity, with ``Privacy: id`` when
#: the number is hidden; ``rpid``: Remote-Party-ID; ``from``: none).
CID_TYPES = {"from": "none", "rpid": "rpid", "pid": "pid"}
#: ``Privacy-Hide-*`` -> the flags of ``origination_privacy`` (switch_ivr_originate)
PRIVACY_FLAGS = (("Privacy-Hide-Name", "hide_name"), ("Privacy-Hide-Number", "hide_number"))
ANONYMOUS_NAME = "Anonymous"
ANONYMOUS_URI = "sip:anonymous@anonymous.invalid"
#: caller-id names (SIP display names, written by sofia inside quotes) and numbers (the
#: user part of From / P-Asserted-Identity / Remote-Party-ID)
DISPLAY_VARS = frozenset({"origination_caller_id_name", "effective_caller_id_name"})
NUMBER_VARS = frozenset({"origination_caller_id_number", "effective_caller_id_number"})
#: Variables whose value becomes SIP header text: CR and LF are removed from them.
SIP_TEXT_VARS = frozenset({"origination_caller_id_name", "origination_caller_id_number",
                           "effective_caller_id_name", "effective_caller_id_number",
                           "sip_auth_username"})
SIP_HEADER_PREFIX = "sip_h_"

_VAR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+*%~-]{0,127}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+*%~-]{0,119}")
_PROFILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
# Characters of a SIP user part that no layer treats specially (RFC 3261 unreserved and
# user-unreserved, minus ' $ , which the tokenizers and the expander would act on).
_USER = re.compile(r"[A-Za-z0-9\-_.!~*()%&=+;?/#]{1,256}")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,253})|\[[0-9A-Fa-f:.]{2,45}\]")
_PARAMS = re.compile(r"[A-Za-z0-9\-_.!~*()%&=+;?:@/#]{0,1024}")
_URI = re.compile(r"(?P<scheme>sips?):(?:(?P<user>[^@]*)@)?(?P<host>\[[^\]]*\]|[^:;?]*)"
                  r"(?P<port>:[0-9]{1,5})?(?P<rest>[;?].*)?", re.IGNORECASE | re.DOTALL)

#: Characters no value may keep: C0 controls except TAB, LF, CR (NUL ends a C string,
#: 0x01/0x02 are originate's comma markers), and what XML 1.0 / UTF-8 cannot carry (lone
#: surrogates, U+FFFE, U+FFFF). They are removed *before* any escaping is decided: removing
#: them later (in the XML writer) could join ``$`` and ``{`` or ``:`` and ``_:``.
UNSAFE_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CRLF = re.compile(r"[\r\n]")
_TRIGGER_ENT = re.compile(r":(?=_:)")
_TRIGGER_NESTED = re.compile(r"(origination_nested_vars=)(?=true)", re.IGNORECASE)


# -- the FreeSWITCH expander ------------------------------------------------------------

def var_check(text: str) -> bool:
    """``switch_string_var_check_const``: a ``$``, any backslashes, then ``{``."""
    return re.search(r"\$\\*\{", text) is not None


def has_escaped_data(text: str) -> bool:
    """``switch_string_has_escaped_data``: a ``\\`` followed by ``\\ n s t '``."""
    return re.search(r"\\[\\nst']", text) is not None


def fs_would_expand(text: str) -> bool:
    """True when ``switch_channel_expand_variables_check`` processes ``text`` at all."""
    return var_check(text) or has_escaped_data(text)


def protect_expansion(text: str) -> str:
    """``text`` as it must be written so that FreeSWITCH's expander returns it unchanged.

    For application data (dialplan actions, ``sendmsg execute``), which FreeSWITCH passes
    through ``switch_channel_expand_variables`` before the application sees it.
    """
    if not fs_would_expand(text):
        return text
    protected = text.replace("\\", "\\\\").replace("$", "\\$")
    # Invariant (see module docstring): a string that expands still expands once escaped.
    if not fs_would_expand(protected):  # pragma: no cover - impossible by construction
        raise AssertionError("expansion protection lost its trigger")
    return protected


# -- value encoding ---------------------------------------------------------------------

def _esc_layer(text: str, delim: str) -> str:
    """Inverse of one ``switch_separate_string`` split + ``cleanup_separated_string``.

    Only what the tokenizer or the cleanup acts on is escaped: ``\\``, ``'`` and the
    delimiter get a backslash; leading and trailing spaces (skipped / trimmed) become
    ``\\s``. Inner spaces, ``"``, TAB, LF and CR pass both untouched.
    """
    body = text.strip(" ")
    if not body:
        return "\\s" * len(text)
    lead = len(text) - len(text.lstrip(" "))
    trail = len(text) - len(text.rstrip(" "))
    out = ["\\s" * lead]
    for ch in body:
        if ch == "\\" or ch == "'" or ch == delim:
            out.append("\\" + ch)
        else:
            out.append(ch)
    out.append("\\s" * trail)
    return "".join(out)


def _drop(text: str, pattern: re.Pattern[str]) -> str:
    cleaned, count = pattern.subn("", text)
    if count:
        STATS["dropped_chars"] += count
    return cleaned


def _balance(text: str, opening: str, closing: str) -> str:
    """``text`` without the ``opening``/``closing`` characters that have no partner."""
    if opening not in text and closing not in text:
        return text
    stack: list[int] = []
    unmatched: set[int] = set()
    for index, ch in enumerate(text):
        if ch == opening:
            stack.append(index)
        elif ch == closing:
            if stack:
                stack.pop()
            else:
                unmatched.add(index)
    unmatched.update(stack)
    if not unmatched:
        return text
    STATS["dropped_chars"] += len(unmatched)
    return "".join(ch for index, ch in enumerate(text) if index not in unmatched)


def _break_triggers(text: str) -> str:
    """Break the raw substrings ``switch_ivr_originate`` reacts to with an empty ``''``."""
    text = _TRIGGER_ENT.sub(":''", text)
    return _TRIGGER_NESTED.sub(r"\1''", text)


_NOT_IN_DISPLAY = re.compile(r'[\r\n"]')
_DISPLAY_ENCODE = {"%": "%25", "@": "%40", "/": "%2F", ":": "%3A"}
_NUMBER_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+*._!~-")


def display_name(text: str) -> str:
    """A caller-id name as sofia must receive it. Sofia writes the name between double
    quotes (``From: "<name>" <sip:...>``) without escaping, so CR, LF and ``"`` are removed
    (counted) and ``\\`` is doubled (a quoted-pair): nothing can end the quoted string or
    split the header. FreeSWITCH also URL-decodes a caller-id name and, left raw, reads
    ``@``, ``/`` and ``:`` in it as parts of a URI (``Evil <sip:x@y>`` arrived as ``x``,
    ``h: i`` as `` i``: measured on the real switch), so ``%``, ``@``, ``/`` and ``:`` are
    percent-encoded and arrive as they were. The rest (``<``, ``>``, ``,``, ``;``,
    ``${...}``) is quoted text."""
    text = _drop(text, _NOT_IN_DISPLAY).replace("\\", "\\\\")
    return "".join(_DISPLAY_ENCODE.get(ch, ch) for ch in text)


def cid_number(text: str) -> str:
    """A caller-id number as the user part of a SIP URI: every character outside
    ``A-Za-z0-9+*._!~-`` percent-encoded (UTF-8), so it can never end the URI."""
    return "".join(ch if ch in _NUMBER_SAFE else "".join(f"%{b:02X}" for b in ch.encode())
                   for ch in drop_unsafe(text))


def drop_unsafe(text: str) -> str:
    """``text`` without :data:`UNSAFE_CHARS` (counted in ``STATS["dropped_chars"]``)."""
    return _drop(text, UNSAFE_CHARS)


def clean_value(value: str, brackets: str) -> str:
    """The value FreeSWITCH will see in a ``brackets`` block: the lossy cases removed."""
    value = drop_unsafe(value)
    if brackets == "{}":
        return _balance(value, "{", "}")
    return _drop(value, re.compile(r"[\[\]]"))


def wire_text(value: Any) -> str | None:  # noqa: ANN401 - wire scalars of any JSON type
    """A wire scalar as FreeSWITCH text (``true``/``false`` for booleans), None if absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        parts = [wire_text(item) for item in value]
        return ",".join(part for part in parts if part is not None)
    raise ValueError(f"expected a scalar value, got {type(value).__name__}")


def check_var_name(name: str) -> str:
    """``name`` if it can be a channel variable name in every layer, else ValueError."""
    if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
        STATS["refused_names"] += 1
        raise ValueError(f"unusable channel variable name {str(name)[:60]!r}")
    return name


def format_vars(variables: Mapping[str, Any], brackets: str = "{}") -> str:
    """A ``{...}`` (global) or ``[^^!...]`` (per-leg) block of channel variables.

    The block is written as ``switch_event_create_brackets`` must read it; inside a dial
    string a ``[]`` block also crosses the endpoint splits, which :func:`bridge_target`
    encodes. Empty mapping: empty string. Names are checked (``ValueError``).
    """
    if brackets not in ("{}", "[]"):
        raise ValueError(f"brackets must be '{{}}' or '[]', not {brackets!r}")
    delim = "," if brackets == "{}" else LEG_DELIMITER
    pieces: list[str] = []
    for name, raw in variables.items():
        check_var_name(name)
        text = wire_text(raw)
        if text is None:
            continue
        value = clean_value(text, brackets)
        if not value:
            continue
        pieces.append(f"{name}={_esc_layer(_esc_layer(value, '='), delim)}")
    if not pieces:
        return ""
    if brackets == "{}":
        return "{" + ",".join(pieces) + "}"
    return f"[^^{LEG_DELIMITER}" + LEG_DELIMITER.join(pieces) + "]"


# -- channel variables from route / bridge fields ---------------------------------------

def _map_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for field, var in FIELD_VARS:
        text = wire_text(obj.get(field))
        if text is None:
            continue
        if field == "Ignore-Early-Media":
            text = "true" if text in ("true", "1") else "false"
        if field == "Caller-ID-Type":
            if text not in CID_TYPES:
                STATS["refused_values"] += 1
                raise ValueError(f"Caller-ID-Type must be one of {sorted(CID_TYPES)}, "
                                 f"not {text[:20]!r}")
            text = CID_TYPES[text]
        if var in SIP_TEXT_VARS:
            text = _drop(text, _CRLF)
        if var in DISPLAY_VARS:
            text = display_name(text)
        elif var in NUMBER_VARS:
            text = cid_number(text)
        if text:
            out[var] = text
    flags = [flag for field, flag in PRIVACY_FLAGS if wire_text(obj.get(field)) in ("true", "1")]
    if flags:
        # the flags give the Privacy header (and RPID privacy=); sofia still writes the
        # caller profile's id in From, so From itself is made anonymous (RFC 3323)
        # (screen: the true identity goes in P-Asserted-Identity, for the carrier)
        out["origination_privacy"] = "+".join(("screen", *flags))
        if "hide_name" in flags:
            out["sip_from_display"] = ANONYMOUS_NAME
        if "hide_number" in flags:
            out["sip_invite_from_uri"] = ANONYMOUS_URI
    headers = obj.get("SIP-Headers") or {}
    if not isinstance(headers, Mapping):
        raise ValueError("SIP-Headers must be an object of header: value")
    for header, raw in headers.items():
        if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
            STATS["refused_names"] += 1
            raise ValueError(f"unusable SIP header name {str(header)[:60]!r}")
        text = wire_text(raw)
        if text is not None:
            out[SIP_HEADER_PREFIX + header] = _drop(text, _CRLF)
    ccvs = obj.get("Custom-Channel-Vars") or {}
    if not isinstance(ccvs, Mapping):
        raise ValueError("Custom-Channel-Vars must be an object")
    for key, raw in ccvs.items():
        name = check_var_name(f"{CCV_PREFIX}{key}")
        text = wire_text(raw)
        if text is not None:
            out[name] = text
    return out


def leg_vars(route: Mapping[str, Any]) -> dict[str, str]:
    """Per-leg variables (``[...]``) of one route / bridge endpoint (docs/api.md mapping)."""
    return _map_fields(route)


def global_vars(answer_or_command: Mapping[str, Any]) -> dict[str, str]:
    """Global variables (``{...}``) of a route_resp / bridge command / originate request.

    Same mapping as :func:`leg_vars`, plus ``progress_timeout`` = 6 when not given.
    """
    out = _map_fields(answer_or_command)
    out.setdefault("progress_timeout", DEFAULT_PROGRESS_TIMEOUT)
    return out


# -- SIP URIs and endpoints -------------------------------------------------------------

def _refuse(message: str) -> ValueError:
    STATS["refused_endpoints"] += 1
    return ValueError(message)


def _split_uri(uri: Any) -> dict[str, str]:  # noqa: ANN401
    if not isinstance(uri, str) or not uri:
        raise _refuse("Route must be a sip: or sips: URI")
    match = _URI.fullmatch(uri)
    if match is None:
        raise _refuse(f"Route is not a sip: or sips: URI: {uri[:80]!r}")
    parts = {key: value or "" for key, value in match.groupdict().items()}
    parts["scheme"] = parts["scheme"].lower()
    if match.group("user") is not None:
        _check_user(parts["user"], "user part of Route")
        parts["has_user"] = "1"
    else:
        parts["has_user"] = ""
    if not _HOST.fullmatch(parts["host"]):
        raise _refuse(f"unusable host in Route: {parts['host'][:80]!r}")
    if not _PARAMS.fullmatch(parts["rest"]):
        raise _refuse(f"unusable parameters in Route: {parts['rest'][:80]!r}")
    return parts


def _check_user(user: Any, what: str) -> str:  # noqa: ANN401
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise _refuse(f"unusable {what}: {str(user)[:80]!r}")
    return user


def _join_uri(parts: Mapping[str, str], user: str | None) -> str:
    userinfo = f"{user}@" if user else ""
    return f"{parts['scheme']}:{userinfo}{parts['host']}{parts['port']}{parts['rest']}"


def endpoint_uri(route: Mapping[str, Any]) -> str:
    """The SIP URI a route / endpoint goes to, by its ``Invite-Format`` (docs/api.md)."""
    fmt = route.get("Invite-Format")
    parts = _split_uri(route.get("Route"))
    if fmt in ("route", "contact"):
        return _join_uri(parts, parts["user"] if parts["has_user"] else None)
    if fmt == "username":
        user = _check_user(route.get("To-User"), "To-User")
        return _join_uri(parts, user)
    if fmt in numbers.FORMATS:
        did = route.get("To-DID")
        if not isinstance(did, str) or not did:
            raise _refuse(f"Invite-Format {fmt} needs To-DID")
        return _join_uri(parts, _check_user(numbers.normalize(did, fmt), "To-DID"))
    raise _refuse(f"unknown Invite-Format {fmt!r}")


def dial_string(route: Mapping[str, Any], *, profile: str) -> str:
    """``sofia/<profile>/<uri>`` for one route object / bridge endpoint (no variables)."""
    if not isinstance(profile, str) or not _PROFILE.fullmatch(profile):
        raise _refuse(f"unusable sofia profile name {str(profile)[:60]!r}")
    return f"sofia/{profile}/{endpoint_uri(route)}"


def api_arg(text: str) -> str:
    """``text`` as one argument of a space-separated API command (``bgapi originate``).

    ``originate`` (mod_commands ``originate_function``) splits its argument with
    ``switch_separate_string(cmd, ' ')``: the blank-delimiter tokenizer splits on every
    unquoted space, toggles quotes on every ``'`` and skips the character after ``\\``;
    ``cleanup_separated_string(.., 0)`` then unescapes. ``switch_api_execute`` does not
    expand variables. So ``\\`` and ``'`` get a backslash and space, TAB, LF, CR are
    written ``\\s \\t \\n \\r`` (no raw line break can end the ESL command line either).
    A command line that starts with ``^^`` names its own delimiter (``^^:a:b``), so a
    leading ``^`` is quoted (``'^'``: the quotes go, the caret stays): the argument can
    never change how the line is split.
    """
    if not text:
        raise ValueError("an API argument cannot be empty")
    out: list[str] = []
    if text.startswith("^"):
        out.append("'^'")
        text = text[1:]
    for ch in text:
        if ch == "\\" or ch == "'":
            out.append("\\" + ch)
        elif ch in _API_ESCAPES:
            out.append(_API_ESCAPES[ch])
        else:
            out.append(ch)
    return "".join(out)


_API_ESCAPES = {" ": "\\s", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def bridge_target(endpoints: Iterable[Mapping[str, Any]], method: str = "single", *,
                  profile: str, global_vars: Mapping[str, Any]) -> str:
    """The whole dial string: ``{globals}`` then the endpoints with their ``[leg vars]``.

    Endpoints are joined by ``|`` (``single``: one after the other) or ``,``
    (``simultaneous``: all at once). The result is what ``switch_ivr_originate`` must
    receive; wrap it with :func:`protect_expansion` when it runs as application data
    (dialplan action, ``sendmsg execute``), with :func:`api_arg` when it is an argument of
    ``bgapi originate``.
    """
    if method not in DIAL_METHODS:
        raise ValueError(f"Dial-Endpoint-Method must be one of {DIAL_METHODS}, not {method!r}")
    elements: list[str] = []
    for endpoint in endpoints:
        if not isinstance(endpoint, Mapping):
            raise _refuse("an endpoint must be an object")
        element = format_vars(leg_vars(endpoint), "[]") + dial_string(endpoint, profile=profile)
        # the peer split (',') then the endpoint-list split ('|') clean the element in turn
        elements.append(_esc_layer(_esc_layer(element, ","), "|"))
    if not elements:
        raise _refuse("no endpoint to dial")
    separator = "|" if method == "single" else ","
    return _break_triggers(format_vars(global_vars, "{}") + separator.join(elements))
