"""E.164 / NPAN / 1NPAN conversion: Whistle 2011's test vectors and Kazoo's rules."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from whistle_tasks.core.numbers import (
    is_1npan,
    is_e164,
    is_npan,
    normalize,
    to_1npan,
    to_e164,
    to_npan,
)

W_VECTORS = ["+11234567890", "11234567890", "1234567890"]


# -- Whistle 2011's eunit vectors --------------------------------------------------------

@pytest.mark.parametrize("number", W_VECTORS)
def test_whistle_vectors_e164(number):
    assert to_e164(number) == "+11234567890"


@pytest.mark.parametrize("number", W_VECTORS)
def test_whistle_vectors_npan(number):
    assert to_npan(number) == "1234567890"


@pytest.mark.parametrize("number", W_VECTORS)
def test_whistle_vectors_1npan(number):
    assert to_1npan(number) == "11234567890"


# -- Kazoo's rules -----------------------------------------------------------------------

@pytest.mark.parametrize(("number", "e164"), [
    # rule 1: NANP, with or without 1 / +1
    ("4158867900", "+14158867900"),
    ("14158867900", "+14158867900"),
    ("2125551234", "+12125551234"),
    # rule 2: international prefixes 011 and 00, at least 5 digits after them
    ("011442079460000", "+442079460000"),
    ("00442079460000", "+442079460000"),
    ("0033123456789", "+33123456789"),
    ("01112345", "+12345"),
    ("0012345", "+12345"),
    # rule 3: 8+ digits led by 2-9 and not NANP-shaped
    ("442079460000", "+442079460000"),
    ("33123456", "+33123456"),
    ("2121234567", "+2121234567"),     # exchange 1xx: not NANP, so rule 3
    ("912345678901", "+912345678901"),
])
def test_kazoo_rules(number, e164):
    assert to_e164(number) == e164


@pytest.mark.parametrize("number", [
    "+442079460000", "+14158867900", "+1234", "+", "+33 1 23",  # already +: left alone
])
def test_plus_numbers_left_alone(number):
    assert to_e164(number) == number


@pytest.mark.parametrize("number", [
    "1000", "2001", "911", "411", "*97", "0", "",     # extensions, N11 and feature codes
    "1234567",         # 7 digits led by 1: no rule
    "2345678",         # 7 digits: rule 3 needs 8+
    "0112345",         # 011 + only 4 digits
    "001234",          # 00 + only 4 digits
    "0612345678",      # a French national number: W's any-10-digits rule is not taken
    "12345678901234",  # 1-led, too long for NANP, not 2-9-led for rule 3
    "sip-user",
])
def test_unconvertible_numbers_unchanged(number):
    assert to_e164(number) == number


def test_first_rule_wins():
    # 10 digits led by 2-9 match both rule 1 and rule 3; rule 1 must win (+1 added).
    assert to_e164("4155550100") == "+14155550100"
    # "00" + 10 NANP-looking digits is international (rule 2), not NANP.
    assert to_e164("004155550100") == "+4155550100"


@pytest.mark.parametrize(("number", "npan", "one_npan"), [
    ("+14158867900", "4158867900", "14158867900"),
    ("14158867900", "4158867900", "14158867900"),
    ("4158867900", "4158867900", "14158867900"),
    ("+442079460000", "+442079460000", "+442079460000"),  # not NANP: unchanged
    ("1000", "1000", "1000"),
    ("2121234567", "2121234567", "2121234567"),           # exchange 1xx: not NANP
])
def test_npan_and_1npan(number, npan, one_npan):
    assert to_npan(number) == npan
    assert to_1npan(number) == one_npan


def test_predicates():
    assert is_e164("+14158867900") and is_e164("+442079460000") and is_e164("+11234567890")
    assert not is_e164("14158867900") and not is_e164("+0123") and not is_e164("+")
    assert not is_e164("+1234567890123456")  # 16 digits: longer than E.164 allows
    assert is_npan("4158867900") and is_npan("1234567890")
    assert not is_npan("14158867900") and not is_npan("+14158867900") and not is_npan("1000")
    assert is_1npan("14158867900") and is_1npan("11234567890")
    assert not is_1npan("4158867900") and not is_1npan("+14158867900")
    assert not is_1npan("1000") and not is_1npan("1234567890")


@pytest.mark.parametrize("fmt", ["e164", "npan", "1npan"])
@pytest.mark.parametrize("number", W_VECTORS + ["4158867900", "011442079460000", "1000"])
def test_normalize_dispatches(number, fmt):
    expected = {"e164": to_e164, "npan": to_npan, "1npan": to_1npan}[fmt](number)
    assert normalize(number, fmt) == expected


@pytest.mark.parametrize("fmt", ["E164", "e.164", "username", "", None])
def test_normalize_rejects_unknown_format(fmt):
    with pytest.raises(ValueError, match="unknown number format"):
        normalize("4158867900", fmt)


@pytest.mark.parametrize("bad", [None, 4158867900, b"4158867900"])
def test_non_string_numbers_are_a_type_error(bad):
    for convert in (to_e164, to_npan, to_1npan, is_e164, is_npan, is_1npan):
        with pytest.raises(TypeError, match="must be a str"):
            convert(bad)


# -- properties --------------------------------------------------------------------------

NANP = st.from_regex(re.compile(r"[2-9][0-9]{2}[2-9][0-9]{6}"), fullmatch=True)
DIGITS = st.from_regex(re.compile(r"\+?[0-9]{0,16}"), fullmatch=True)


@given(NANP, st.sampled_from(["", "1", "+1"]))
def test_nanp_round_trips(npan, prefix):
    number = prefix + npan
    assert to_e164(number) == "+1" + npan
    assert to_npan(number) == npan
    assert to_1npan(number) == "1" + npan
    assert is_npan(to_npan(number)) and is_1npan(to_1npan(number))


@given(DIGITS)
def test_conversions_are_idempotent(number):
    for convert in (to_e164, to_npan, to_1npan):
        once = convert(number)
        assert convert(once) == once


@given(DIGITS)
def test_e164_result_is_plus_led_or_unchanged(number):
    result = to_e164(number)
    assert result == number or (result.startswith("+") and result[1:].isdigit())
