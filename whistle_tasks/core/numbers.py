"""Phone-number formats: E.164, NPAN and 1NPAN, by Kazoo's rules.

Numbers are plain strings of digits with an optional leading ``+`` (no ``tel:``/``sip:``
prefixes, no spaces or dashes: callers pass the user part as it came).

E.164 (Kazoo's default ``e164_converters``, first match wins; a number that already starts
with ``+`` is left alone)::

    ^(\\+?1)?([2-9][0-9]{2}[2-9][0-9]{6})$   ->  "+1" + the 10 NANP digits
    ^011(\\d{5,})$ | ^00(\\d{5,})$           ->  "+" + the digits after the prefix
    ^[2-9]\\d{7,}$                           ->  "+" + the number

Anything else (``1000``, ``*97``, ``911``) comes back unchanged: extensions and feature
codes must survive normalisation.

NPAN is the 10-digit NANP number (NPA + NXX + XXXX) and 1NPAN is ``1`` + NPAN; both are
taken from the first rule and a number that is not NANP-shaped comes back unchanged.

How Whistle's 2011 test vectors fit in
--------------------------------------
Whistle's own ``whistle_util`` (2011) converted by length only, and its tests use
``+11234567890``, ``11234567890`` and ``1234567890`` (all → ``+11234567890`` /
``1234567890`` / ``11234567890``). That area code, ``123``, starts with ``1``, which the
NANP never assigns and Kazoo's ``[2-9]`` rejects, so Kazoo leaves those three unchanged.

We keep both: Kazoo's rules are applied first, untouched, and only a number that *no*
Kazoo rule converts gets one more, narrow, look: if it is ``1``-led 10 digits, optionally
preceded by ``1`` or ``+1`` (``^(\\+?1)?(1\\d{9})$``), it is taken as the NANP number
Whistle 2011 took it for. No Kazoo result changes (the fallback only sees Kazoo's
no-match cases), and the fallback is not widened to every 10-digit string as Whistle's was:
a ``0``-led 10-digit string is a national number in much of the world (``0612345678`` is a
French mobile) and turning it into ``+1...`` would misroute it; and a ``2``-``9``-led
string is already handled by Kazoo's third rule.
"""

from __future__ import annotations

import re

FORMATS = ("e164", "npan", "1npan")

_NANP = re.compile(r"^(\+?1)?([2-9][0-9]{2}[2-9][0-9]{6})$")
_INTERNATIONAL = re.compile(r"^011(\d{5,})$|^00(\d{5,})$")
_LONG = re.compile(r"^[2-9]\d{7,}$")
# Whistle 2011's shape that Kazoo rejects: a 10-digit number whose area code starts with 1.
_W_NANP = re.compile(r"^(\+?1)?(1\d{9})$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def _require_str(number: object) -> None:
    if not isinstance(number, str):
        raise TypeError(f"a number must be a str, not {type(number).__name__}: {number!r}")


def _npan_digits(number: str) -> str | None:
    """The 10 NANP digits of ``number`` (Kazoo's rule, then Whistle's), or None."""
    _require_str(number)
    match = _NANP.match(number) or _W_NANP.match(number)
    return match.group(2) if match else None


def to_e164(number: str) -> str:
    """``number`` in E.164 (``+`` and country code), or unchanged when no rule applies."""
    _require_str(number)
    if number.startswith("+"):
        return number
    match = _NANP.match(number)
    if match:
        return "+1" + match.group(2)
    match = _INTERNATIONAL.match(number)
    if match:
        return "+" + (match.group(1) or match.group(2))
    if _LONG.match(number):
        return "+" + number
    match = _W_NANP.match(number)
    if match:
        return "+1" + match.group(2)
    return number


def to_npan(number: str) -> str:
    """The 10-digit NANP number (``2125551234``), or ``number`` unchanged if not NANP."""
    digits = _npan_digits(number)
    return number if digits is None else digits


def to_1npan(number: str) -> str:
    """``1`` + the NANP number (``12125551234``), or ``number`` unchanged if not NANP."""
    digits = _npan_digits(number)
    return number if digits is None else "1" + digits


def is_e164(number: str) -> bool:
    """``+`` then 2 to 15 digits, the first not 0 (ITU-T E.164's shape)."""
    _require_str(number)
    return _E164.match(number) is not None


def is_npan(number: str) -> bool:
    """Exactly a 10-digit NANP number (no ``1`` or ``+1`` in front)."""
    return _npan_digits(number) == number


def is_1npan(number: str) -> bool:
    """Exactly ``1`` + a 10-digit NANP number (no ``+``)."""
    _require_str(number)
    return number.startswith("1") and _npan_digits(number) == number[1:]


_CONVERTERS = {"e164": to_e164, "npan": to_npan, "1npan": to_1npan}


def normalize(number: str, fmt: str) -> str:
    """``number`` in format ``fmt`` (``e164``, ``npan`` or ``1npan``).

    Raises ``ValueError`` for any other format: a device's ``invite_format`` comes from a
    document, and a typo there must be reported, not silently routed as-is.
    """
    try:
        convert = _CONVERTERS[fmt]
    except (KeyError, TypeError):
        raise ValueError(f"unknown number format {fmt!r}; expected one of {FORMATS}") from None
    return convert(number)
