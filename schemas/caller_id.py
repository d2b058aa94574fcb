"""Caller id as operators configure it on devices, users, accounts and callflow nodes.

A document's ``caller_id`` holds two kinds, as Kazoo has them::

    {"internal": {"name": "Front Desk", "number": "1002"},      # calls inside the account
     "external": {"name": "ACME Corp", "number": "+14155550100"}}  # calls out of gateways

A legacy flat ``{"name", "number"}`` is read as ``internal``. ``caller_id_options``::

    {"outbound_privacy": "none" | "name" | "number" | "full",   # what callees outside see
     "lock_external": true}        # towards gateways only the configured external id

Values are checked when set (:func:`check`, :func:`check_options`): a name is 1 to 35
characters, no control character, no ``"`` or ``\\`` (they would end or escape a SIP
quoted display name); a number is 1 to 35 of ``A-Z a-z 0-9 + * # . _ -`` (what a SIP user
part carries without escaping, plus ``#``). Every error names the field
(``caller_id.external.number: ...``). Reading (:func:`normalize`) is lenient: whatever text
is stored is used, never a crash; the bridge escapes whatever reaches it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from schemas.kinds import Kind, Reasons

KINDS = ("internal", "external")
FIELDS = ("name", "number")
PRIVACY = ("none", "name", "number", "full")
OPTION_FIELDS = ("outbound_privacy", "lock_external")
MAX_LENGTH = 35

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NUMBER = re.compile(r"[A-Za-z0-9+*#._-]{1,35}")


class CallerIdError(ValueError):
    """A caller id that cannot be stored; ``errors`` maps each field to its reasons."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{path}: {', '.join(reasons)}"
                                   for path, reasons in self.errors.items()))


def name_problem(value: Any) -> str | None:  # noqa: ANN401
    """Why ``value`` cannot be a caller id name (None: it can)."""
    if not isinstance(value, str):
        return f"expected a text, got {type(value).__name__}"
    if not 1 <= len(value) <= MAX_LENGTH:
        return f"must be 1 to {MAX_LENGTH} characters, got {len(value)}"
    if _CONTROL.search(value):
        return "must not contain control characters (CR, LF, TAB...)"
    if '"' in value or "\\" in value:
        return 'must not contain " or \\'
    return None


def number_problem(value: Any) -> str | None:  # noqa: ANN401
    """Why ``value`` cannot be a caller id number (None: it can)."""
    if not isinstance(value, str):
        return f"expected a text, got {type(value).__name__}"
    if not _NUMBER.fullmatch(value):
        return f"must be 1 to {MAX_LENGTH} of A-Z a-z 0-9 + * # . _ -, got {value[:40]!r}"
    return None


_PROBLEMS = {"name": name_problem, "number": number_problem}


def _check_pair(value: Any, path: str, errors: dict[str, list[str]]) -> dict[str, str]:  # noqa: ANN401
    if not isinstance(value, Mapping):
        errors.setdefault(path, []).append(f"expected an object {{name, number}}, "
                                           f"got {type(value).__name__}")
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        if key not in FIELDS:
            errors.setdefault(f"{path}.{key}", []).append("unknown field (name, number)")
            continue
        if item in (None, ""):
            continue
        problem = _PROBLEMS[key](item)
        if problem:
            errors.setdefault(f"{path}.{key}", []).append(problem)
        else:
            out[key] = item
    return out


def check(value: Any, path: str = "caller_id") -> dict[str, dict[str, str]]:  # noqa: ANN401
    """``value`` as stored (``{internal?, external?}``, each ``{name?, number?}``), or
    :class:`CallerIdError`. A flat ``{name, number}`` becomes ``internal``."""
    errors: dict[str, list[str]] = {}
    out: dict[str, dict[str, str]] = {}
    if not isinstance(value, Mapping):
        raise CallerIdError({path: [f"expected an object, got {type(value).__name__}"]})
    if any(key in FIELDS for key in value):
        flat = {k: v for k, v in value.items() if k in FIELDS}
        pair = _check_pair(flat, f"{path}.internal" if set(value) - set(FIELDS) else path,
                           errors)
        if pair:
            out["internal"] = pair
    for key, item in value.items():
        if key in FIELDS:
            continue
        if key not in KINDS:
            errors.setdefault(f"{path}.{key}", []).append(
                "unknown field (internal, external, or a flat name, number)")
            continue
        if item is None:
            continue
        pair = _check_pair(item, f"{path}.{key}", errors)
        if pair:
            out[key] = {**out.get(key, {}), **pair}
    if errors:
        raise CallerIdError(errors)
    return out


def check_options(value: Any, path: str = "caller_id_options") -> dict[str, Any]:  # noqa: ANN401
    """``caller_id_options`` as stored, or :class:`CallerIdError`."""
    if not isinstance(value, Mapping):
        raise CallerIdError({path: [f"expected an object, got {type(value).__name__}"]})
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "outbound_privacy":
            if item not in PRIVACY:
                errors.setdefault(f"{path}.{key}", []).append(
                    f"must be one of {', '.join(PRIVACY)}, got {str(item)[:40]!r}")
            else:
                out[key] = item
        elif key == "lock_external":
            if not isinstance(item, bool):
                errors.setdefault(f"{path}.{key}", []).append(
                    f"expected true or false, got {type(item).__name__}")
            else:
                out[key] = item
        else:
            errors.setdefault(f"{path}.{key}", []).append(
                f"unknown field ({', '.join(OPTION_FIELDS)})")
    if errors:
        raise CallerIdError(errors)
    return out


def merge(current: Any, changes: Mapping[str, Any]) -> dict[str, dict[str, str]]:  # noqa: ANN401
    """``current`` (stored, possibly legacy) with ``changes`` (checked) applied per field; an
    empty value ("" or None) removes the field."""
    out = {kind: dict(pair) for kind, pair in normalize(current).items()}
    for kind, pair in changes.items():
        for key, item in (pair or {}).items():
            if item in (None, ""):
                out.get(kind, {}).pop(key, None)
            else:
                out.setdefault(kind, {})[key] = item
    out = {kind: pair for kind, pair in out.items() if pair}
    return check(out) if out else {}


def normalize(value: Any) -> dict[str, dict[str, str]]:  # noqa: ANN401
    """A stored ``caller_id`` read leniently: ``{kind: {field: text}}`` (a flat one is
    ``internal``). A text stored behind validation's back is kept: the bridge escapes it."""
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, dict[str, str]] = {}
    flat = {k: value[k] for k in FIELDS if k in value}
    sources = [("internal", flat)] + [(kind, value.get(kind)) for kind in KINDS]
    for kind, pair in sources:
        if not isinstance(pair, Mapping):
            continue
        for key in FIELDS:
            item = pair.get(key)
            if isinstance(item, str) and item:
                out.setdefault(kind, {}).setdefault(key, item)
    return out


def normalize_options(value: Any) -> dict[str, Any]:  # noqa: ANN401
    """Stored ``caller_id_options`` read leniently (invalid fields left out)."""
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, Any] = {}
    if value.get("outbound_privacy") in PRIVACY:
        out["outbound_privacy"] = value["outbound_privacy"]
    if isinstance(value.get("lock_external"), bool):
        out["lock_external"] = value["lock_external"]
    return out


class CallerIdKind(Kind):
    """A ``caller_id`` value in a callflow node's data (the reasons name the inner field)."""

    expected = "a caller id {internal?, external?} or {name?, number?}"

    def ok(self, value: Any) -> bool:  # noqa: ANN401
        try:
            check(value)
        except CallerIdError:
            return False
        return True

    def explain(self, value: Any, secret: bool = False) -> Reasons:  # noqa: ANN401
        try:
            check(value)
        except CallerIdError as exc:
            return [f"{path.removeprefix('caller_id').lstrip('.') or 'value'}: "
                    f"{', '.join(reasons)}" for path, reasons in exc.errors.items()]
        return []


class PrivacyKind(Kind):
    """``outbound_privacy`` in a callflow node's data."""

    expected = f"one of {', '.join(PRIVACY)}"

    def ok(self, value: Any) -> bool:  # noqa: ANN401
        return value in PRIVACY


CALLER_ID = CallerIdKind()
OUTBOUND_PRIVACY = PrivacyKind()


class _FieldKind(Kind):
    def __init__(self, problem: Any, expected: str) -> None:  # noqa: ANN401
        self.problem = problem
        self.expected = expected

    def ok(self, value: Any) -> bool:  # noqa: ANN401
        return self.problem(value) is None

    def explain(self, value: Any, secret: bool = False) -> Reasons:  # noqa: ANN401
        return [self.problem(value) or f"expected {self.expected}"]


CALLER_ID_NAME = _FieldKind(name_problem, "a caller id name")
CALLER_ID_NUMBER = _FieldKind(number_problem, "a caller id number")
