"""Lenient conversions of values that come from outside (headers, form fields, documents).

FreeSWITCH sends every value as a string (``"true"``, ``"3600"``), CouchDB documents
written by hand carry numbers as strings, and AMQP messages carry both. These helpers turn
such a value into the type wanted, or return ``default`` when it cannot be done: they
never raise on bad input, so a handler reads ``to_int(msg.get("Expires"), 3600)`` and
goes on. Callers that must report bad input compare the result with the default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _text(value: object) -> str | None:
    """``value`` as stripped text if it is a str or bytes, else None."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace").strip()
    if isinstance(value, str):
        return value.strip()
    return None


def _numeric_text(value: object) -> str | None:
    """Stripped ASCII text without ``_`` (Python's int()/float() accept ``1_000`` and
    non-ASCII digits, which no header or document of ours means as a number)."""
    text = _text(value)
    if not text or not text.isascii() or "_" in text:
        return None
    return text


def to_int(value: object, default: Any = None) -> Any:
    """An int from an int, a float (rounded) or decimal text (``" 42 "``, ``"4.6"`` → 5).

    Rounds floats as Whistle's ``to_integer`` did. ``True``/``False``, NaN, infinities
    and anything unparsable give ``default``.
    """
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value) if math.isfinite(value) else default
    text = _numeric_text(value)
    if text is None:
        return default
    try:
        return int(text, 10)
    except ValueError:
        pass
    number = to_float(text)
    return default if number is None else round(number)


def to_float(value: object, default: Any = None) -> Any:
    """A finite float from a number or decimal text; else ``default`` (NaN/inf included)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = _numeric_text(value)
        if text is None:
            return default
        try:
            number = float(text)
        except ValueError:
            return default
    return number if math.isfinite(number) else default


def to_bool(value: object, default: Any = None) -> Any:
    """``True``/``False`` from a bool, 0/1, or true/false/yes/no/on/off/1/0 (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {0: False, 1: True}.get(value, default)
    text = _text(value)
    if text is None:
        return default
    text = text.lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return default


def to_str(value: object, default: Any = None) -> Any:
    """Text: bytes decoded as UTF-8 (bad bytes become U+FFFD), booleans as JSON's
    ``true``/``false``, other values by ``str()``; ``None`` gives ``default``."""
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not escape a converter
        return default


def to_list(value: object, default: Any = None) -> Any:
    """A list: a list as is, a tuple/set/other iterable as its items, a scalar wrapped.

    Text (str/bytes) and objects (dicts) count as scalars, not as iterables of their
    characters or keys: ``to_list("a")`` is ``["a"]``. ``None`` gives ``default``.
    """
    if value is None:
        return default
    if isinstance(value, list):
        return value
    if isinstance(value, str | bytes | bytearray | dict):
        return [value]
    if isinstance(value, Iterable):
        try:
            return list(value)
        except Exception:  # noqa: BLE001 - a failing iterator must not escape a converter
            return default
    return [value]
