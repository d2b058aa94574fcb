"""The XML the bridge hands FreeSWITCH's mod_xml_curl: directory users and dialplans.

Every value is written through :func:`attr`; markup is only ever our own literal element
and attribute names. Why each escape is there, from FreeSWITCH's source
(signalwire/freeswitch, the 1.10/1.11 line of ``tests/fixtures/freeswitch/modern``):

- ``mod_xml_curl.c`` ``xml_url_fetch`` writes the HTTP answer to a temporary file and
  parses it with ``switch_xml_parse_file``, not ``switch_xml_parse_str``. In
  ``switch_xml.c``, ``switch_xml_parse_file`` first runs ``preprocess()`` over the raw
  text, line by line (``switch_fp_read_dline``):

  * ``expand_vars`` replaces every raw ``$${name}`` by the global variable ``name``. We
    write *every* ``$`` as the character reference ``&#36;``, so the preprocessor never
    sees a ``$`` at all; the XML parser turns it back into ``$`` afterwards.
  * a line containing ``<include>``, ``</include>`` or ``<?`` is dropped, and so is a line
    containing ``X-pre-process`` (case-insensitive) not preceded by ``<``; ``<!--#`` starts
    a command. ``<`` is always ``&lt;`` in values, we never write ``<?xml ...?>`` or
    comments, and in attribute text any ``x-pre-process`` has its first ``-`` written as
    ``&#45;``, so no value can make the preprocessor drop or run anything.

- ``switch_xml_parse_str`` / ``switch_xml_decode`` (``t = ' '`` for attributes): an
  attribute value ends at the next raw quote character of the same kind; raw CR/CRLF
  become LF and raw whitespace becomes a space (attribute normalisation); ``&#N;`` /
  ``&#xN;`` character references (not ``&#0;``) and the five predefined entities are
  decoded, and a decoded character is never decoded again. So ``& < > " '`` are written
  as ``&amp; &lt; &gt; &quot; &#39;`` and TAB, LF, CR as ``&#9; &#10; &#13;``, which the
  decoder restores exactly.
- XML 1.0 cannot hold NUL, the other C0 controls, lone surrogates, U+FFFE and U+FFFF;
  FreeSWITCH reads C strings (NUL would cut the value). These characters are *removed*:
  the one lossy case of this module, counted in :data:`STATS` (``xml_chars_dropped``).
  Values that also pass FreeSWITCH's expander or dial-string parser lose them first
  (:func:`switch_bridge.freeswitch.dialstring.drop_unsafe`), before their escapes are
  chosen, so that a removal can never join ``$`` and ``{`` after the fact.

Then the dialplan (``mod_dialplan_xml.c`` ``parse_exten``): a ``<condition>`` with no
``field`` is an absolute condition, its actions' ``data`` is taken as is (``$1``
substitution only happens with a regex ``expression``), and every action's data is
expanded once more when ``switch_core_session_exec`` runs the application
(``switch_channel_expand_variables``; data starting with ``%[`` would declare scoped
variables, ours never does). ``set`` expands its value a second time (mod_dptools
``base_set``). :func:`switch_bridge.freeswitch.dialstring.protect_expansion` makes values inert for
each of those expansions; the one ``${...}`` we write on purpose is
``respond ${bridge_hangup_cause}``.

Directory variables are copied onto the channel as they are (mod_sofia
``sofia_reg_parse_auth`` adds them to an event with ``switch_event_add_header_string``;
nothing expands them), so they only get the XML escapes above. Note that FreeSWITCH
expands a variable's stored value again whenever some other string references it as
``${name}``: keeping literal ``${`` out of *stored* values is not possible without
changing them, so they are stored literally and it is up to dialplans not to reference
untrusted variables.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping
from typing import Any

from switch_bridge.freeswitch import dialstring
from switch_bridge.freeswitch.dialstring import protect_expansion
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

#: Counters: characters XML cannot carry (dropped), routes that could not be rendered.
STATS: collections.Counter[str] = collections.Counter()

DEFAULT_CONTEXT = "default"
DEFAULT_PROFILE = "internal"
FAILURE_CAUSES = "NORMAL_CLEARING,ORIGINATOR_CANCEL,CRASH"
NO_HANDLER = (604, "no available handlers")
AUTH_METHODS = ("password", "a1-hash")

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
            "\t": "&#9;", "\n": "&#10;", "\r": "&#13;", "$": "&#36;"}
_NEEDS_ESCAPE = re.compile("[&<>\"'\t\n\r$]")
_PREPROCESS = re.compile("(x)-(pre-process)", re.IGNORECASE)
_NAME = re.compile(r"[a-z][a-z-]*")
_LINE_BREAKS = re.compile(r"[\r\n\t]")
_NAMES_SEEN: set[str] = set()  # markup names already checked (they are our literals)


# values made only of these need no work at all (the common case: names, ids, numbers)
_PLAIN = re.compile(r"[A-Za-z0-9 ._:@/,=+*#%;()\[\]{}^!~|-]*").fullmatch


def attr(value: str) -> str:
    """``value`` as the text of a double-quoted XML attribute FreeSWITCH reads back intact.

    Characters XML 1.0 cannot hold are removed (counted in ``STATS``); see the module doc.
    """
    if not isinstance(value, str):
        raise TypeError(f"attribute values are str, not {type(value).__name__}")
    if _PLAIN(value) and "pre-process" not in value.lower():
        return value
    value, dropped = dialstring.UNSAFE_CHARS.subn("", value)
    if dropped:
        STATS["xml_chars_dropped"] += dropped
    text = _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group()], value)
    return _PREPROCESS.sub(r"\1&#45;\2", text)


class _El:
    """A tiny element tree: our literal names, every attribute value through :func:`attr`."""

    __slots__ = ("children", "name", "attrs")

    def __init__(self, name: str, attrs: tuple[tuple[str, str], ...] = (),
                 children: list[_El] | None = None) -> None:
        if name not in _NAMES_SEEN or not all(key in _NAMES_SEEN for key, _ in attrs):
            if not _NAME.fullmatch(name) or not all(_NAME.fullmatch(k) for k, _ in attrs):
                raise AssertionError(f"not a literal markup name: {name!r}")
            _NAMES_SEEN.update([name, *(key for key, _ in attrs)])
        self.name, self.attrs, self.children = name, attrs, children or []

    def add(self, child: _El) -> _El:
        self.children.append(child)
        return child

    def write(self, out: list[str], depth: int = 0) -> None:
        pad = "  " * depth
        attrs = "".join(f' {key}="{attr(value)}"' for key, value in self.attrs)
        if not self.children:
            out.append(f"{pad}<{self.name}{attrs}/>\n")
            return
        out.append(f"{pad}<{self.name}{attrs}>\n")
        for child in self.children:
            child.write(out, depth + 1)
        out.append(f"{pad}</{self.name}>\n")


def _document(section: str) -> tuple[_El, _El]:
    root = _El("document", (("type", "freeswitch/xml"),))
    return root, root.add(_El("section", (("name", section),)))


def _bytes(root: _El) -> bytes:
    before = STATS["xml_chars_dropped"]
    out: list[str] = []
    root.write(out)
    dropped = STATS["xml_chars_dropped"] - before
    if dropped:
        log.warning("%s answer: dropped %d character(s) that XML cannot carry",
                    root.children[0].attrs[0][1], dropped)
    return "".join(out).encode("utf-8")


def not_found() -> bytes:
    """The answer that makes FreeSWITCH try its next binding / static XML."""
    root, section = _document("result")
    section.add(_El("result", (("status", "not found"),)))
    return _bytes(root)


def directory_user(realm: str, user: str, *, method: str, secret: str,
                   variables: Mapping[str, Any], cacheable_ms: int | None = None) -> bytes:
    """A directory answer for one SIP user (``password`` or ``a1-hash``).

    ``variables`` are the answer's ``Custom-Channel-Vars``: key ``K`` becomes the channel
    variable ``ecallmgr_K``. ``cacheable_ms`` lets FreeSWITCH cache the user.
    """
    if method not in AUTH_METHODS:
        raise ValueError(f"directory answers need Auth-Method password or a1-hash, "
                         f"not {method!r}")
    if not isinstance(secret, str) or not secret:
        raise ValueError("directory answers need a non-empty secret")
    root, section = _document("directory")
    domain = section.add(_El("domain", (("name", _str(realm, "realm")),)))
    user_attrs: tuple[tuple[str, str], ...] = (("id", _str(user, "user")),)
    if cacheable_ms is not None:
        if isinstance(cacheable_ms, bool) or not isinstance(cacheable_ms, int) \
                or cacheable_ms <= 0:
            raise ValueError(f"cacheable_ms must be a positive integer, not {cacheable_ms!r}")
        user_attrs += (("cacheable", str(cacheable_ms)),)
    element = domain.add(_El("user", user_attrs))
    params = element.add(_El("params"))
    params.add(_El("param", (("name", method), ("value", secret))))
    items = [_El("variable", (("name", dialstring.CCV_PREFIX + str(key)), ("value", text)))
             for key, text in _ccv_items(variables)]
    if items:
        element.add(_El("variables", children=items))
    return _bytes(root)


def _str(value: Any, what: str) -> str:  # noqa: ANN401
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _ccv_items(ccvs: Any) -> list[tuple[str, str]]:  # noqa: ANN401
    if not ccvs:
        return []
    if not isinstance(ccvs, Mapping):
        raise ValueError("Custom-Channel-Vars must be an object")
    items = []
    for key, raw in ccvs.items():
        text = dialstring.wire_text(raw)
        if text is not None:
            items.append((key, text))
    return items


# -- dialplan ---------------------------------------------------------------------------

def _dialplan_doc(call: Mapping[str, Any]) -> tuple[_El, _El]:
    root, section = _document("dialplan")
    context = str(call.get("context") or DEFAULT_CONTEXT)
    return root, section.add(_El("context", (("name", context),)))


def _extension(context: _El, name: str, actions: list[tuple[str, str | None]],
               continue_: bool = False) -> None:
    attrs: tuple[tuple[str, str], ...] = (("name", name),)
    if continue_:
        attrs += (("continue", "true"),)
    condition = _El("condition")
    for application, data in actions:
        pairs: tuple[tuple[str, str], ...] = (("application", application),)
        if data is not None:
            pairs += (("data", data),)
        condition.add(_El("action", pairs))
    context.add(_El("extension", attrs, [condition]))


def _set(name: str, value: str) -> tuple[str, str]:
    """A ``set`` action; ``set`` expands its value twice (executor, then ``base_set``)."""
    dialstring.check_var_name(name)
    value = dialstring.drop_unsafe(value)
    return "set", protect_expansion(f"{name}={protect_expansion(value)}")


def _ccv_sets(answer: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    return [_set(dialstring.CCV_PREFIX + key, text)
            for key, text in _ccv_items(answer.get("Custom-Channel-Vars"))]


def _media_sets(answer: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    sets: list[tuple[str, str | None]] = []
    for field, var in (("Ringback-Media", "ringback"), ("Transfer-Media", "transfer_ringback")):
        text = dialstring.wire_text(answer.get(field))
        if text:
            sets.append(_set(var, text))
    return sets


def dialplan(answer: Mapping[str, Any], call: Mapping[str, Any]) -> bytes:
    """The dialplan XML for a route_resp (``Method`` bridge, park or error).

    ``call``: ``context`` (the caller's Hunt-Context, where FreeSWITCH looks), ``profile``
    (sofia profile of the inbound channel, default ``internal``), ``destination``,
    ``call_id``. A route that cannot be dialled is skipped (logged, counted); ``ValueError``
    when nothing is left to render or the answer is not one of the three methods.
    """
    method = answer.get("Method")
    if method == "bridge":
        return _bridge(answer, call)
    if method == "park":
        return _park(answer, call)
    if method == "error":
        code = answer.get("Route-Error-Code")
        return dialplan_error(500 if code in (None, "") else _code(code),
                              str(answer.get("Route-Error-Message") or ""), call)
    raise ValueError(f"route_resp Method must be bridge, park or error, not {method!r}")


def _bridge(answer: Mapping[str, Any], call: Mapping[str, Any]) -> bytes:
    routes = answer.get("Routes") or []
    if not isinstance(routes, list) or not routes:
        raise ValueError("a bridge route_resp needs Routes")
    profile = str(call.get("profile") or DEFAULT_PROFILE)
    globals_ = dialstring.global_vars(answer)
    shared = _media_sets(answer)
    root, context = _dialplan_doc(call)
    rendered = 0
    for index, route in enumerate(routes, 1):
        try:
            if not isinstance(route, Mapping):
                raise ValueError("a route must be an object")
            target = dialstring.bridge_target([route], "single", profile=profile,
                                              global_vars=globals_)
        except ValueError as exc:
            STATS["routes_skipped"] += 1
            log.warning("route %d of %d skipped: %s", index, len(routes), exc)
            continue
        bypass = "true" if route.get("Media") == "bypass" else "false"
        actions: list[tuple[str, str | None]] = [
            ("set", "hangup_after_bridge=true"),
            ("set", f"failure_causes={FAILURE_CAUSES}"),
            ("set", f"bypass_media={bypass}"),
            *shared,
            ("bridge", protect_expansion(target)),
        ]
        _extension(context, f"route_{index}", actions, continue_=True)
        rendered += 1
    if not rendered:
        raise ValueError("no route of the bridge answer can be dialled")
    # the one expansion we write on purpose: FreeSWITCH answers with the bridge's cause
    _extension(context, "bridge_failed", [("respond", "${bridge_hangup_cause}")])
    return _bytes(root)


def _park(answer: Mapping[str, Any], call: Mapping[str, Any]) -> bytes:
    actions = _ccv_sets(answer) + _media_sets(answer)
    pre_park = answer.get("Pre-Park") or "none"
    if pre_park in ("ring_ready", "answer"):
        actions.append((pre_park, None))
    elif pre_park != "none":
        raise ValueError(f"Pre-Park must be none, ring_ready or answer, not {pre_park!r}")
    actions.append(("park", None))
    root, context = _dialplan_doc(call)
    _extension(context, "park", actions)
    return _bytes(root)


def _code(code: Any) -> int:  # noqa: ANN401
    if isinstance(code, bool):
        raise ValueError("Route-Error-Code must be a SIP status code")
    try:
        number = int(code)
    except (TypeError, ValueError):
        raise ValueError(f"Route-Error-Code must be a SIP status code, not {code!r}") from None
    if not 100 <= number <= 699:
        raise ValueError(f"Route-Error-Code must be between 100 and 699, not {number}")
    return number


def dialplan_error(code: int, message: str, call: Mapping[str, Any]) -> bytes:
    """``respond "<code> <message>"``: the reason phrase loses CR, LF and TAB (SIP)."""
    number = _code(code)
    reason = _LINE_BREAKS.sub(" ", dialstring.drop_unsafe(str(message))).strip(" ")
    data = f"{number} {reason}" if reason else str(number)
    root, context = _dialplan_doc(call)
    _extension(context, "error", [("respond", protect_expansion(data))])
    return _bytes(root)


def dialplan_no_handler(call: Mapping[str, Any]) -> bytes:
    """The answer when no whapp answered in time: ``604 no available handlers``."""
    return dialplan_error(NO_HANDLER[0], NO_HANDLER[1], call)
