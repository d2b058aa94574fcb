"""Callflows: a tree of modules per number, declared here and checked as a whole when saved.

A callflow document (in the account's database, ``pvt_type`` ``callflow``)::

    {"name": "main line",
     "numbers": ["5000", "+14155550100"],          # exact numbers (as stored: normalised)
     "patterns": ["^\\\\+1(\\\\d{10})$"],             # regular expressions, with captures
     "flow": {"module": "menu", "data": {"greeting": "ivr/main.wav"},
              "children": {"1": {"module": "ring_group", "data": {...},
                                 "children": {"_": {"module": "voicemail", ...}}},
                           "_": {"module": "hangup"}}}}

Every node is ``{module, data, children}``; ``children`` are keyed by the *outcome* a module
returns (``_`` = any other outcome). Each module declares (:class:`ModuleSpec`) the schema of
its ``data`` (an :func:`~schemas.base.obj` declaration, compiled to marshmallow like every
message) and the outcomes it can return, so a child key it never produces is an error.

:func:`check` validates a whole callflow (pure: it is given the modules and, for transfers,
a way to find other callflows) and names every problem by its path::

    flow.children.1.data.timeout: expected an integer from 1 to 600, got string 'soon'
    flow.children.9: 'menu' never returns '9x' (it returns: a DTMF entry, timeout, invalid, _)
    flow.children._.children._.data.number: transfers back to 5000 without ever waiting for
        the caller: an endless loop

The built-in modules' data is declared below; a module of an operator's own package is
declared with it (``@module("name", data=obj(...), outcomes=(...))``, see the whapp's
registry) and added to :data:`MODULES` by :func:`declare`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.base import MessageError, ObjectSpec, obj
from schemas.caller_id import CALLER_ID as CALLER_ID_KIND
from schemas.caller_id import CALLER_ID_NAME, CALLER_ID_NUMBER, OUTBOUND_PRIVACY
from schemas.command import SAY_METHODS, SAY_TYPES
from schemas.kinds import (
    BOOLEAN,
    SCALARS,
    TERMINATORS,
    TEXT,
    Kind,
    NestedList,
    OneOf,
    Reasons,
    json_type,
    list_of,
    nested_list,
    show,
)
from schemas.route import GATEWAY_INVITE_FORMATS

#: the child key of "any other outcome"
DEFAULT = "_"
#: how deep a tree may be (nodes from the root to a leaf)
MAX_DEPTH = 32
#: how many nodes one callflow may hold
MAX_NODES = 500
#: how many callflows a chain of transfers may cross before the check gives up following it
MAX_TRANSFERS = 16

NODE_KEYS = ("module", "data", "children")
DOC_KEYS = ("name", "numbers", "patterns", "flow", "featurecode")


# --------------------------------------------------------------------------- kinds of data


class IntRange(Kind):
    """A whole number (int, or a string of digits) from ``low`` to ``high``."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.expected = f"an integer from {low} to {high}"

    def ok(self, value: Any) -> bool:  # noqa: ANN401
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        return isinstance(value, int) and not isinstance(value, bool) \
            and self.low <= value <= self.high


class Pattern(Kind):
    """A text matching a regular expression (``what`` names it in errors)."""

    def __init__(self, regex: str, what: str) -> None:
        self.regex = re.compile(regex)
        self.expected = what

    def ok(self, value: Any) -> bool:  # noqa: ANN401
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


class Regex(Kind):
    """A Python regular expression that compiles."""

    expected = "a regular expression"

    def ok(self, value: Any) -> bool:  # noqa: ANN401
        if not isinstance(value, str) or not value or len(value) > 500:
            return False
        try:
            re.compile(value)
        except re.error:
            return False
        return True

    def explain(self, value: Any, secret: bool = False) -> Reasons:  # noqa: ANN401
        if isinstance(value, str) and value and len(value) <= 500:
            try:
                re.compile(value)
            except re.error as exc:
                return [f"not a regular expression: {exc}"]
        return super().explain(value, secret)


class TimeZone(Kind):
    """An IANA time zone name (``Europe/Paris``)."""

    expected = "an IANA time zone name (e.g. Europe/Paris)"

    def ok(self, value: Any) -> bool:  # noqa: ANN401
        return isinstance(value, str) and zone(value) is not None


class Date(Kind):
    """``YYYY-MM-DD`` (one day) or ``MM-DD`` (that day every year)."""

    expected = "a date YYYY-MM-DD or MM-DD"

    def ok(self, value: Any) -> bool:  # noqa: ANN401
        return isinstance(value, str) and parse_date(value) is not None


class Number(Kind):
    """A phone number as dialled or stored: digits, ``+`` first, ``*`` and ``#``."""

    expected = "a number (digits, an optional leading +, * and #)"
    _re = re.compile(r"\+?[0-9*#]{1,32}")

    def ok(self, value: Any) -> bool:  # noqa: ANN401
        return isinstance(value, str) and self._re.fullmatch(value) is not None


def zone(name: str) -> dt.tzinfo | None:
    """The time zone ``name``, or None when there is no such zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not name or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_date(text: str) -> tuple[int | None, int, int] | None:
    """``(year or None, month, day)`` of ``YYYY-MM-DD`` / ``MM-DD``; None if not a date."""
    match = re.fullmatch(r"(?:(\d{4})-)?(\d{2})-(\d{2})", text)
    if not match:
        return None
    year = int(match.group(1)) if match.group(1) else None
    month, day = int(match.group(2)), int(match.group(3))
    try:
        dt.date(year or 2000, month, day)  # 2000: a leap year, so 02-29 is a date
    except ValueError:
        return None
    return year, month, day


def parse_clock(text: str) -> int:
    """Minutes since midnight of ``HH:MM`` (``24:00`` is the end of the day)."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


SECONDS = IntRange(1, 3600)
RING_SECONDS = IntRange(1, 600)
DIGITS = Pattern(r"[0-9*#]{1,8}", "DTMF keys (0-9 * #), 1 to 8 of them")
CLOCK = Pattern(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00", "a time HH:MM (00:00 to 24:00)")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
NAME = Pattern(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
               "a name of letters, digits, _ . - (up to 64, not starting with _ . -)")
MEDIA = Pattern(r"[^\r\n\0]{1,1024}", "a media name (a path, URL or prompt name)")
NUMBER = Number()
SIP_URI = Pattern(r"sips?:[^\s<>\"]{1,1024}", "a sip: or sips: URI")
TIMEZONE = TimeZone()
DATE = Date()
REGEX = Regex()
CALLER_ID = obj("caller id", optional=("name", "number"), types={"number": NUMBER})

# --------------------------------------------------------------------------- declarations

Outcome = str | re.Pattern[str]


@dataclass(frozen=True)
class ModuleSpec:
    """What a callflow module is, for the validator and the engine.

    ``data``: the declaration of its ``data``. ``outcomes``: the child keys it may return
    (strings, or compiled patterns a key must match), or a function of its data giving
    them (``temporal_route``: its rules' names); ``_`` is always allowed. ``waits``: the
    module waits for the caller to do something (a menu), so a loop through it is not
    endless. ``transfer``: the data field naming a number this node continues at (for the
    loop check). ``check``: extra rules across fields, ``data -> {path: [reasons]}``.
    ``describe``: the words of the outcomes for error messages.
    """

    name: str
    data: ObjectSpec
    outcomes: tuple[Outcome, ...] | Callable[[Mapping[str, Any]], tuple[Outcome, ...]] = ()
    waits: bool = False
    transfer: str | None = None
    check: Callable[[Mapping[str, Any]], dict[str, list[str]]] | None = None
    describe: tuple[str, ...] = field(default=())
    #: the module ends the call: a node of it has no children
    ends: bool = False

    def outcomes_of(self, data: Mapping[str, Any]) -> tuple[Outcome, ...]:
        if self.ends:
            return ()
        out = self.outcomes(data) if callable(self.outcomes) else self.outcomes
        return (*out, DEFAULT)

    def produces(self, key: str, data: Mapping[str, Any]) -> bool:
        for outcome in self.outcomes_of(data):
            if isinstance(outcome, str):
                if outcome == key:
                    return True
            elif outcome.fullmatch(key):
                return True
        return False

    def outcome_words(self, data: Mapping[str, Any]) -> str:
        if self.ends:
            return "nothing: it ends the call"
        if self.describe:
            return ", ".join((*self.describe, DEFAULT))
        return ", ".join(o if isinstance(o, str) else o.pattern for o in self.outcomes_of(data))


#: every module a callflow may name, by name (built-ins below; more by :func:`declare`)
MODULES: dict[str, ModuleSpec] = {}


def declare(spec: ModuleSpec) -> ModuleSpec:
    """Add a module's declaration (the same one twice is fine; another one is an error)."""
    existing = MODULES.get(spec.name)
    if existing is not None and existing != spec:
        raise ValueError(f"callflow module {spec.name!r} is declared twice, differently")
    MODULES[spec.name] = spec
    return spec


def module_spec(name: str, *, required: Iterable[str] = (), optional: Iterable[str] = (),
                values: Mapping[str, Iterable[str]] | None = None,
                types: Mapping[str, Kind] | None = None,
                **options: Any) -> ModuleSpec:  # noqa: ANN401
    """A module declaration: its data fields (as :func:`obj`) and its options."""
    return ModuleSpec(name, obj(f"{name} data", required, optional, values, types), **options)


# what a bridge to people/phones may end in
RING_OUTCOMES = ("no_answer", "busy", "unavailable")
BRIDGE_OPTIONS = ("timeout", "ringback", "caller_id", "sip_headers", "codecs")
BRIDGE_TYPES: dict[str, Kind] = {"timeout": RING_SECONDS, "ringback": MEDIA,
                                 "caller_id": CALLER_ID_KIND, "sip_headers": SCALARS,
                                 "codecs": list_of(TEXT)}

PLAY = module_spec("play", required=("media",), optional=("terminators", "answer"),
                   types={"media": MEDIA, "terminators": TERMINATORS, "answer": BOOLEAN})

SAY = module_spec("say", required=("text",), optional=("type", "method", "language", "answer"),
                  values={"type": SAY_TYPES, "method": SAY_METHODS},
                  types={"language": Pattern(r"[a-z]{2}(-[A-Za-z]{2})?", "a language code"),
                         "answer": BOOLEAN})

RECORD = module_spec(
    "record", required=("name",), optional=("time_limit", "terminators", "beep", "greeting"),
    types={"name": NAME, "time_limit": SECONDS, "terminators": TERMINATORS, "beep": BOOLEAN,
           "greeting": MEDIA})

MENU = module_spec(
    "menu", required=("greeting",),
    optional=("invalid_media", "timeout_media", "exit_media", "retries", "timeout",
              "max_digits", "terminators"),
    types={"greeting": MEDIA, "invalid_media": MEDIA, "timeout_media": MEDIA,
           "exit_media": MEDIA, "retries": IntRange(1, 10), "timeout": IntRange(1, 60),
           "max_digits": IntRange(1, 8), "terminators": TERMINATORS},
    outcomes=(re.compile(r"[0-9*#]{1,8}"), "timeout", "invalid"), waits=True,
    describe=("a DTMF entry (0-9 * #)", "timeout", "invalid"))

DEVICE = module_spec("device", required=("username",), optional=BRIDGE_OPTIONS,
                     types={"username": TEXT, **BRIDGE_TYPES}, outcomes=RING_OUTCOMES)

USER = module_spec("user", required=("username",), optional=("timeout", "ringback"),
                   types={"username": TEXT, "timeout": RING_SECONDS, "ringback": MEDIA},
                   outcomes=RING_OUTCOMES)

MEMBER_TYPES = ("device", "user", "number")
MEMBER = obj("member", required=("type", "id"), optional=("timeout", "delay"),
             values={"type": MEMBER_TYPES},
             types={"timeout": RING_SECONDS, "delay": IntRange(0, 600)})


def _ring_group_check(data: Mapping[str, Any]) -> dict[str, list[str]]:
    if not data.get("members") and not data.get("group"):
        return {"members": ["give members, a group, or both"]}
    return {}


RING_GROUP = module_spec(
    "ring_group", optional=("members", "group", "strategy", "timeout", "ringback"),
    values={"strategy": ("simultaneous", "sequential")},
    types={"members": nested_list(MEMBER), "group": NAME, "timeout": RING_SECONDS,
           "ringback": MEDIA},
    outcomes=RING_OUTCOMES, check=_ring_group_check)

RULE = obj("rule", required=("name",), optional=("days", "dates", "start", "end"),
           values={"days": WEEKDAYS},
           types={"name": Pattern(r"[A-Za-z][A-Za-z0-9_-]{0,31}",
                                  "a rule name (a letter, then letters, digits, _ -)"),
                  "days": list_of(TEXT), "dates": list_of(DATE), "start": CLOCK, "end": CLOCK})


def _temporal_outcomes(data: Mapping[str, Any]) -> tuple[str, ...]:
    rules = data.get("rules")
    if not isinstance(rules, list):
        return ()
    return tuple(str(r["name"]) for r in rules if isinstance(r, dict) and
                 isinstance(r.get("name"), str))


def _temporal_check(data: Mapping[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    rules = data.get("rules")
    if not isinstance(rules, list):
        return errors
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        name = rule.get("name")
        if isinstance(name, str):
            if name in seen:
                errors.setdefault(f"rules.{index}.name", []).append(
                    f"{name!r} names two rules")
            if name == DEFAULT:
                errors.setdefault(f"rules.{index}.name", []).append("'_' is the default child")
            seen.add(name)
        start, end = rule.get("start"), rule.get("end")
        if (start is None) != (end is None):
            errors.setdefault(f"rules.{index}", []).append("give both start and end, or neither")
        elif CLOCK.ok(start) and CLOCK.ok(end) and parse_clock(start) == parse_clock(end):
            errors.setdefault(f"rules.{index}.end", []).append("start and end are the same time")
    return errors


TEMPORAL_ROUTE = module_spec(
    "temporal_route", required=("rules",), optional=("timezone",),
    types={"rules": nested_list(RULE), "timezone": TIMEZONE},
    outcomes=_temporal_outcomes, check=_temporal_check)


def _one_of(*names: str) -> Callable[[Mapping[str, Any]], dict[str, list[str]]]:
    def check(data: Mapping[str, Any]) -> dict[str, list[str]]:
        given = [n for n in names if data.get(n) not in (None, "")]
        if len(given) != 1:
            return {names[0] if not given else given[1]:
                    [f"give exactly one of {', '.join(names)}"]}
        return {}

    return check


TRANSFER = module_spec("transfer", required=("number",), types={"number": NUMBER},
                       transfer="number", outcomes=("unavailable",))


def _forward_check(data: Mapping[str, Any]) -> dict[str, list[str]]:
    errors = _one_of("uri", "gateway")(data)
    if data.get("format") and not data.get("gateway"):
        errors.setdefault("format", []).append("only a gateway takes a format")
    return errors


FORWARD = module_spec(
    "forward", optional=("uri", "gateway", "number", "format", *BRIDGE_OPTIONS),
    values={"format": GATEWAY_INVITE_FORMATS},
    types={"uri": SIP_URI, "gateway": Pattern(r"[A-Za-z0-9.:\[\]-]{1,255}", "a host[:port]"),
           "number": NUMBER, **BRIDGE_TYPES},
    outcomes=RING_OUTCOMES, check=_forward_check)

CONFERENCE = module_spec("conference", required=("name",), optional=("pin", "profile",
                                                                     "moderator"),
                         types={"name": NAME, "pin": Pattern(r"[0-9]{1,12}", "1 to 12 digits"),
                                "profile": NAME, "moderator": BOOLEAN})

SLOT = Pattern(r"[0-9]{1,6}", "a slot number (digits)")
PARK = module_spec("park", optional=("slot", "lot"), types={"slot": SLOT, "lot": NAME})
RETRIEVE = module_spec("retrieve", optional=("slot", "lot", "prompt"),
                       types={"slot": SLOT, "lot": NAME, "prompt": MEDIA},
                       outcomes=("empty",), waits=True)

RESPOND = module_spec("respond", required=("code",), optional=("message",),
                      types={"code": IntRange(180, 699),
                             "message": Pattern(r"[^\r\n\0]{0,128}", "a reason phrase")})

HANGUP = module_spec("hangup", optional=("cause",),
                     types={"cause": Pattern(r"[A-Z_]{1,40}", "a hangup cause (NORMAL_CLEARING)")},
                     ends=True)

def _set_caller_id_check(data: Mapping[str, Any]) -> dict[str, list[str]]:
    if not any(data.get(k) not in (None, "", {}) for k in SET_CALLER_ID_FIELDS):
        return {"_schema": [f"set at least one of {', '.join(SET_CALLER_ID_FIELDS)}"]}
    return {}


#: ``set_caller_id``: the caller id of the bridges after it in this call (over every
#: configured one); a flat ``name``/``number`` is both kinds, ``internal``/``external`` one
SET_CALLER_ID_FIELDS = ("name", "number", "internal", "external", "outbound_privacy",
                        "lock_external")
SET_CALLER_ID = module_spec(
    "set_caller_id", optional=SET_CALLER_ID_FIELDS,
    types={"name": CALLER_ID_NAME, "number": CALLER_ID_NUMBER, "internal": CALLER_ID_KIND,
           "external": CALLER_ID_KIND, "outbound_privacy": OUTBOUND_PRIVACY,
           "lock_external": BOOLEAN},
    check=_set_caller_id_check)

for _spec in (PLAY, SAY, RECORD, MENU, DEVICE, USER, RING_GROUP, TEMPORAL_ROUTE, TRANSFER,
              FORWARD, CONFERENCE, PARK, RETRIEVE, RESPOND, HANGUP, SET_CALLER_ID):
    declare(_spec)

#: a call app run as a module (``app:NAME`` numbers): no data, one way on
APP_DATA = obj("call app data")


def call_app_spec(name: str) -> ModuleSpec:
    return ModuleSpec(name, APP_DATA)


# --------------------------------------------------------------------------- the checks


class CallflowError(MessageError):
    """A callflow that cannot be saved; ``errors`` maps each path to its reasons."""

    def __init__(self, errors: Mapping[str, Iterable[str]]) -> None:
        super().__init__("callflow", errors)


#: ``resolve(number) -> (callflow id, callflow document) | None``: another callflow of the
#: account (for transfers)
Resolver = Callable[[str], "tuple[str, Mapping[str, Any]] | None"]


def check(doc: Any, modules: Mapping[str, ModuleSpec] | None = None, *,  # noqa: ANN401
          resolve: Resolver | None = None, doc_id: str | None = None) -> dict[str, list[str]]:
    """Every problem of a callflow document, ``{path: [reasons]}`` (empty: it is valid)."""
    modules = MODULES if modules is None else modules
    errors: dict[str, list[str]] = {}

    def add(path: str, reason: str) -> None:
        errors.setdefault(path, []).append(reason)

    if not isinstance(doc, dict):
        return {"_schema": [f"expected a JSON object, got {json_type(doc)}"]}
    for key in doc:
        if key not in DOC_KEYS and not key.startswith(("_", "pvt_")):
            add(key, f"unknown field (a callflow has {', '.join(DOC_KEYS)})")
    if "name" in doc and not (isinstance(doc["name"], str) and len(doc["name"]) <= 128):
        add("name", f"expected a string of up to 128 characters, got {show(doc['name'])}")
    numbers = doc.get("numbers", [])
    patterns = doc.get("patterns", [])
    if not isinstance(numbers, list):
        add("numbers", f"expected a list of numbers, got {json_type(numbers)}")
        numbers = []
    if not isinstance(patterns, list):
        add("patterns", f"expected a list of regular expressions, got {json_type(patterns)}")
        patterns = []
    for index, number in enumerate(numbers):
        if not (number == "no_match" or NUMBER.ok(number)):
            add(f"numbers.{index}", f"expected {NUMBER.expected} or no_match, "
                                   f"got {show(number)}")
        elif number in numbers[:index]:
            add(f"numbers.{index}", f"{number} is listed twice")
    for index, pattern in enumerate(patterns):
        if not REGEX.ok(pattern):
            for reason in REGEX.explain(pattern):
                add(f"patterns.{index}", str(reason))
    if not numbers and not patterns:
        add("numbers", "a callflow needs at least one number or pattern")
    if "flow" not in doc:
        add("flow", "missing")
        return errors
    counter = [0]
    _check_node(doc["flow"], "flow", 1, modules, add, counter)
    if counter[0] > MAX_NODES:
        add("flow", f"{counter[0]} nodes: a callflow holds at most {MAX_NODES}")
    if not errors:
        _check_loops(doc, modules, resolve, doc_id, add)
    return errors


def validate(doc: Any, modules: Mapping[str, ModuleSpec] | None = None, *,  # noqa: ANN401
             resolve: Resolver | None = None, doc_id: str | None = None) -> dict[str, Any]:
    """``doc`` itself when valid; else :class:`CallflowError` naming every problem."""
    errors = check(doc, modules, resolve=resolve, doc_id=doc_id)
    if errors:
        raise CallflowError(errors)
    return doc


def check_node(node: Any, modules: Mapping[str, ModuleSpec] | None = None,  # noqa: ANN401
               path: str = "flow") -> dict[str, list[str]]:
    """Every problem of one node and its children (no loop check)."""
    errors: dict[str, list[str]] = {}
    _check_node(node, path, 1, MODULES if modules is None else modules,
                lambda p, r: errors.setdefault(p, []).append(r), [0])
    return errors


def _check_node(node: Any, path: str, depth: int, modules: Mapping[str, ModuleSpec],  # noqa: ANN401
                add: Callable[[str, str], None], counter: list[int]) -> None:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        return
    if not isinstance(node, dict):
        add(path, f"expected a node (an object with module, data, children), "
                  f"got {json_type(node)}")
        return
    if depth > MAX_DEPTH:
        add(path, f"deeper than {MAX_DEPTH} levels")
        return
    for key in node:
        if key not in NODE_KEYS:
            add(f"{path}.{key}", "unknown field (a node has module, data, children)")
    name = node.get("module")
    spec = modules.get(name) if isinstance(name, str) else None
    if name is None:
        add(f"{path}.module", "missing")
    elif spec is None:
        add(f"{path}.module", f"unknown module {show(name)} "
                              f"(known: {', '.join(sorted(modules))})")
    data = node.get("data", {})
    if not isinstance(data, dict):
        add(f"{path}.data", f"expected an object, got {json_type(data)}")
        data = None
    elif spec is not None:
        for sub, reasons in data_errors(spec, data).items():
            for reason in reasons:
                add(f"{path}.data.{sub}" if sub != "_schema" else f"{path}.data", reason)
    children = node.get("children", {})
    if not isinstance(children, dict):
        add(f"{path}.children", f"expected an object of nodes keyed by outcome, "
                                f"got {json_type(children)}")
        return
    for key, child in children.items():
        child_path = f"{path}.children.{key}"
        if spec is not None and data is not None and not spec.produces(key, data):
            add(child_path, f"{spec.name!r} never returns {key!r} "
                            f"(it returns: {spec.outcome_words(data)})")
        _check_node(child, child_path, depth + 1, modules, add, counter)


def data_errors(spec: ModuleSpec, data: Mapping[str, Any]) -> dict[str, list[str]]:
    """The problems of a module's ``data``: its declaration, unknown fields, extra rules."""
    errors = dict(spec.data.errors(dict(data)))
    for path, reason in _unknown_fields(spec.data, data, ""):
        errors.setdefault(path, []).append(reason)
    if spec.check is not None and not errors:
        for path, reasons in spec.check(data).items():
            errors.setdefault(path, []).extend(reasons)
    return errors


def _unknown_fields(spec: ObjectSpec, data: Mapping[str, Any],
                    prefix: str) -> Iterable[tuple[str, str]]:
    for key, value in data.items():
        if key not in spec.kinds:
            known = ", ".join(spec.fields) or "none"
            yield f"{prefix}{key}", f"unknown field (known: {known})"
            continue
        kind = spec.kinds[key]
        inner = kind.kind if isinstance(kind, OneOf) else kind
        if isinstance(inner, NestedList) and isinstance(value, list) \
                and isinstance(inner.spec, ObjectSpec):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    yield from _unknown_fields(inner.spec, item, f"{prefix}{key}.{index}.")


def walk(node: Mapping[str, Any], path: str = "flow") -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Every node of a (valid) tree with its path, root first."""
    yield path, node
    for key, child in (node.get("children") or {}).items():
        yield from walk(child, f"{path}.children.{key}")


def _check_loops(doc: Mapping[str, Any], modules: Mapping[str, ModuleSpec],
                 resolve: Resolver | None, doc_id: str | None,
                 add: Callable[[str, str], None]) -> None:
    """A transfer that comes back to this callflow without a module that waits for the
    caller on the way (a menu) would run forever: an error at the transfer's path."""
    own = set(doc.get("numbers") or [])
    for path, node, waited in _transfers(doc["flow"], "flow", modules, False):
        spec = modules[node["module"]]
        target = str((node.get("data") or {}).get(spec.transfer or "", ""))
        loop = _loops_back(target, own, doc_id, modules, resolve, waited, set())
        if loop is not None:
            add(f"{path}.data.{spec.transfer}",
                f"transfers back to {loop} without ever waiting for the caller: "
                "an endless loop")


def _transfers(node: Mapping[str, Any], path: str, modules: Mapping[str, ModuleSpec],
               waited: bool) -> Iterable[tuple[str, Mapping[str, Any], bool]]:
    """``(path, node, a waiting module is on the way to it)`` of every transfer node."""
    spec = modules.get(node.get("module"))
    if spec is None:
        return
    if spec.transfer:
        yield path, node, waited
    waits = waited or spec.waits
    for key, child in (node.get("children") or {}).items():
        yield from _transfers(child, f"{path}.children.{key}", modules, waits)


def _loops_back(number: str, own: set[str], doc_id: str | None,
                modules: Mapping[str, ModuleSpec], resolve: Resolver | None, waited: bool,
                seen: set[str]) -> str | None:
    if waited:
        return None
    if number in own:
        return number
    if resolve is None or len(seen) >= MAX_TRANSFERS:
        return None
    found = resolve(number)
    if found is None:
        return None
    other_id, other = found
    if other_id == doc_id:
        return number
    if other_id in seen:
        return None     # a loop elsewhere: its own callflow's check reports it
    seen.add(other_id)
    flow = other.get("flow")
    if not isinstance(flow, dict):
        return None
    for _path, node, waits in _transfers(flow, "flow", modules, False):
        spec = modules[node["module"]]
        target = str((node.get("data") or {}).get(spec.transfer or "", ""))
        loop = _loops_back(target, own, doc_id, modules, resolve, waits, seen)
        if loop is not None:
            return f"{number} → {loop}" if loop != number else number
    return None


def compiled(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    """The patterns of a (valid) callflow, compiled."""
    return [re.compile(p) for p in patterns]
