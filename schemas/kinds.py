"""Kinds of wire values: what one field of an API message may hold.

A kind answers two questions. ``ok(value)`` is the whole truth of "is this value
acceptable" and is written to be cheap, because the validator's fast path calls it for
every field of every message on the hot path. ``explain(value)`` is only called once a
value was refused and says why, in words a person can act on (``expected a string of
digits or a non-negative integer, got string '12a'``), or, for lists and objects, a dict
of the bad positions (``{0: {"Invite-Format": ["missing"]}}``), which the error class
flattens into paths (``Routes.0.Invite-Format``).

``prune(value)`` is the builder's half: it copies the value and, for nested declared
objects, keeps only their declared fields (as the builder does at the top level).

The kinds match the wire, not Python: FreeSWITCH hands every value over as a string, so a
numeric field takes an integer or a string of digits, and a boolean takes ``true``/``false``
or the strings ``"true"``/``"false"``.

:class:`WireField` wraps a kind into a marshmallow field, so every declaration compiles
into an ordinary marshmallow schema whose verdict is, by construction, the kind's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from marshmallow import ValidationError, fields

#: Reasons for one field: a list of sentences, or nested errors keyed by index / field.
Reasons = list[str] | dict[Any, Any]

_SHOW_MAX = 40


def json_type(value: object) -> str:
    """The JSON name of a value's type (what a sender of JSON would call it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def show(value: object, secret: bool = False) -> str:
    """``string '12a'`` / ``integer -1`` / ``list``: a refused value, short and log-safe.

    A secret field (a password) shows only its type, never its value.
    """
    kind = json_type(value)
    if secret or not isinstance(value, str | int | float) or isinstance(value, bool):
        return kind
    text = repr(value)
    if len(text) > _SHOW_MAX:
        text = text[: _SHOW_MAX - 4] + "...'"
    return f"{kind} {text}"


class Kind:
    """One kind of wire value. Subclasses set ``expected`` and implement ``ok``."""

    expected = "a value"

    def ok(self, value: Any) -> bool:
        raise NotImplementedError

    def explain(self, value: Any, secret: bool = False) -> Reasons:
        return [f"expected {self.expected}, got {show(value, secret)}"]

    def prune(self, value: Any) -> Any:
        return value

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.expected}>"


class Text(Kind):
    expected = "a string"

    def ok(self, value: Any) -> bool:
        return isinstance(value, str)


class Integer(Kind):
    """A whole number: an int (not a bool) or a string of ASCII digits (``"3600"``)."""

    def __init__(self, signed: bool = False) -> None:
        self.signed = signed
        self.expected = ("an integer or a string of digits" if signed
                         else "a non-negative integer or a string of digits")
        self._pattern = re.compile(r"-?[0-9]+" if signed else r"[0-9]+")

    def ok(self, value: Any) -> bool:
        if isinstance(value, str):
            if value.isascii() and value.isdigit():
                return True
            return self.signed and self._pattern.fullmatch(value) is not None
        if isinstance(value, int) and not isinstance(value, bool):
            return self.signed or value >= 0
        return False


class Number(Kind):
    """A non-negative amount (a rate, a timestamp): int/float or a decimal string."""

    expected = "a non-negative number or a decimal string"
    _pattern = re.compile(r"[0-9]+(\.[0-9]+)?")

    def ok(self, value: Any) -> bool:
        if isinstance(value, str):
            return self._pattern.fullmatch(value) is not None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return math.isfinite(value) and value >= 0
        return False


class Boolean(Kind):
    expected = "true or false (a boolean or the string 'true'/'false')"

    def ok(self, value: Any) -> bool:
        return value is True or value is False or value == "true" or value == "false"


def _is_scalar(value: object) -> bool:
    if isinstance(value, str | bool | int):
        return True
    return isinstance(value, float) and math.isfinite(value)


class Scalars(Kind):
    """An object whose values are scalars (channel variables, SIP headers)."""

    expected = "an object of scalar values"

    def ok(self, value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        for key, item in value.items():
            if not isinstance(key, str) or not _is_scalar(item):
                return False
        return True

    def explain(self, value: Any, secret: bool = False) -> Reasons:
        if not isinstance(value, dict):
            return super().explain(value, secret)
        bad: dict[Any, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                bad[str(key)] = [f"key is not a string (got {json_type(key)})"]
            elif not _is_scalar(item):
                bad[key] = [f"expected a scalar (string, number or boolean), "
                            f"got {show(item, secret)}"]
        return bad

    def prune(self, value: Any) -> Any:
        return dict(value) if isinstance(value, dict) else value


class AnyObject(Kind):
    expected = "an object"

    def ok(self, value: Any) -> bool:
        return isinstance(value, dict)

    def prune(self, value: Any) -> Any:
        return dict(value) if isinstance(value, dict) else value


class OneOf(Kind):
    """A value of ``kind`` that is also one of ``allowed`` (the kapi ``VALUES``)."""

    def __init__(self, kind: Kind, allowed: Iterable[str]) -> None:
        self.kind = kind
        self.allowed = tuple(allowed)
        self._set = frozenset(self.allowed)
        self.expected = f"one of {list(self.allowed)}"

    def ok(self, value: Any) -> bool:
        return self.kind.ok(value) and value in self._set

    def explain(self, value: Any, secret: bool = False) -> Reasons:
        if not self.kind.ok(value):
            return self.kind.explain(value, secret)
        return [f"{value!r} is not one of {list(self.allowed)}"]


class ListOf(Kind):
    """A list whose every element is of one (scalar) kind: ``Codecs``, ``Frequencies``."""

    def __init__(self, item: Kind) -> None:
        self.item = item
        self.expected = f"a list of {item.expected.removeprefix('a ').removeprefix('an ')}"

    def ok(self, value: Any) -> bool:
        if not isinstance(value, list | tuple):
            return False
        item_ok = self.item.ok
        return all(item_ok(x) for x in value)

    def explain(self, value: Any, secret: bool = False) -> Reasons:
        if not isinstance(value, list | tuple):
            return super().explain(value, secret)
        return {i: self.item.explain(x, secret)
                for i, x in enumerate(value) if not self.item.ok(x)}

    def prune(self, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        return [self.item.prune(x) for x in value]


class Either(Kind):
    """A value of any one of several kinds (``Application-Data``: text or an object)."""

    def __init__(self, *kinds: Kind) -> None:
        self.kinds = kinds
        self.expected = " or ".join(k.expected for k in kinds)

    def ok(self, value: Any) -> bool:
        return any(k.ok(value) for k in self.kinds)

    def prune(self, value: Any) -> Any:
        for kind in self.kinds:
            if kind.ok(value):
                return kind.prune(value)
        return value


DTMF_KEYS = "0123456789*#"


class Terminators(Kind):
    """DTMF keys that stop a prompt: a list (``["#", "*"]``), a string (``"#*"``) or none.

    As Kazoo's ``terminators_v``: a list of single keys, or the empty string / ``none``.
    A string of keys is also taken, because FreeSWITCH writes terminators that way.
    """

    expected = "a list of DTMF keys (0-9 * #), a string of them, or 'none'"
    _keys = frozenset(DTMF_KEYS)

    def ok(self, value: Any) -> bool:
        keys = self._keys
        if isinstance(value, str):
            return value == "none" or all(c in keys for c in value)
        if isinstance(value, list | tuple):
            return all(isinstance(t, str) and t in keys for t in value)
        return False

    def explain(self, value: Any, secret: bool = False) -> Reasons:
        if isinstance(value, list | tuple):
            return {i: [f"{t!r} is not a DTMF key ({DTMF_KEYS})" if isinstance(t, str)
                        else f"expected a DTMF key, got {json_type(t)}"]
                    for i, t in enumerate(value) if not (isinstance(t, str) and t in self._keys)}
        return super().explain(value, secret)

    def prune(self, value: Any) -> Any:
        return list(value) if isinstance(value, list | tuple) else value


class ObjectLike(Protocol):
    """What a nested list needs of a declared object (see :class:`schemas.base.ObjectSpec`)."""

    name: str

    def fast_ok(self, obj: dict) -> bool: ...

    def explain(self, obj: dict) -> dict: ...

    def prune(self, obj: Mapping) -> dict: ...


class NestedList(Kind):
    """A list of declared objects (``Routes``, ``Endpoints``, ``Tones``, ``Fields``)."""

    def __init__(self, spec: ObjectLike) -> None:
        self.spec = spec
        self.expected = f"a list of {spec.name} objects"

    def ok(self, value: Any) -> bool:
        if not isinstance(value, list | tuple):
            return False
        fast_ok = self.spec.fast_ok
        return all(isinstance(x, dict) and fast_ok(x) for x in value)

    def explain(self, value: Any, secret: bool = False) -> Reasons:
        if not isinstance(value, list | tuple):
            return super().explain(value, secret)
        bad: dict[Any, Any] = {}
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                bad[i] = [f"expected a {self.spec.name} object, got {json_type(item)}"]
            else:
                errors = self.spec.explain(item)
                if errors:
                    bad[i] = errors
        return bad

    def prune(self, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        return [self.spec.prune(x) if isinstance(x, Mapping) else x for x in value]


class Dispatched(Kind):
    """A list of objects each declared by its own discriminator (``Commands`` of a queue).

    ``resolve(element)`` picks the declaration of one element (``None`` when its
    discriminator is absent or unknown); ``unresolved(element)`` explains why not.
    """

    def __init__(self, expected: str, resolve: Callable[[dict], ObjectLike | None],
                 unresolved: Callable[[dict], dict]) -> None:
        self.expected = expected
        self._resolve = resolve
        self._unresolved = unresolved

    def ok(self, value: Any) -> bool:
        if not isinstance(value, list | tuple):
            return False
        for item in value:
            if not isinstance(item, dict):
                return False
            spec = self._resolve(item)
            if spec is None or not spec.fast_ok(item):
                return False
        return True

    def explain(self, value: Any, secret: bool = False) -> Reasons:
        if not isinstance(value, list | tuple):
            return super().explain(value, secret)
        bad: dict[Any, Any] = {}
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                bad[i] = [f"expected an object, got {json_type(item)}"]
                continue
            spec = self._resolve(item)
            errors = self._unresolved(item) if spec is None else spec.explain(item)
            if errors:
                bad[i] = errors
        return bad

    def prune(self, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        out = []
        for item in value:
            spec = self._resolve(item) if isinstance(item, dict) else None
            out.append(spec.prune(item) if spec is not None else item)
        return out


# The kinds declarations use (instances are stateless and shared).
TEXT = Text()
INTEGER = Integer()
SIGNED_INTEGER = Integer(signed=True)
NUMBER = Number()
BOOLEAN = Boolean()
SCALARS = Scalars()
OBJECT = AnyObject()
TERMINATORS = Terminators()


def list_of(item: Kind) -> ListOf:
    return ListOf(item)


def nested_list(spec: ObjectLike) -> NestedList:
    return NestedList(spec)


def either(*kinds: Kind) -> Either:
    return Either(*kinds)


class WireField(fields.Field):
    """A marshmallow field whose verdict is its kind's ``ok`` and whose errors are ``explain``.

    Loading returns the value untouched: Whistle messages keep their wire form.
    """

    def __init__(self, kind: Kind, *, secret: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.secret = secret

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> Any:
        if self.kind.ok(value):
            return value
        raise ValidationError(self.kind.explain(value, self.secret) or ["invalid"])
