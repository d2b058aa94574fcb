"""Lenient conversions: the right value for good input, the default (never an exception)
for bad input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from whistle_tasks.core.convert import to_bool, to_float, to_int, to_list, to_str

D = object()  # a default no conversion can produce by accident


@pytest.mark.parametrize(("value", "expected"), [
    (42, 42), (-7, -7), ("3600", 3600), (" 3600 ", 3600), (b"120", 120), ("+5", 5),
    ("-5", -5), (4.4, 4), (4.6, 5), ("4.6", 5), ("1e3", 1000), (bytearray(b"9"), 9),
])
def test_to_int(value, expected):
    assert to_int(value, D) == expected
    assert type(to_int(value, D)) is int


@pytest.mark.parametrize("value", [
    None, "", "   ", "abc", "12abc", "0x10", "1_000", "٣", True, False, math.nan, math.inf,
    "nan", "inf", "1e400", [1], {"a": 1}, object(), b"\xff\xfe",
])
def test_to_int_bad_input_gives_default(value):
    assert to_int(value, D) is D
    assert to_int(value) is None


@pytest.mark.parametrize(("value", "expected"), [
    (1.5, 1.5), (2, 2.0), ("2.5", 2.5), (b" -0.25 ", -0.25), ("1e-3", 0.001), ("7", 7.0),
])
def test_to_float(value, expected):
    assert to_float(value, D) == expected
    assert type(to_float(value, D)) is float


@pytest.mark.parametrize("value", [
    None, "", "x", "nan", "-inf", math.nan, True, "1_0.5", [1.0], b"\x00",
])
def test_to_float_bad_input_gives_default(value):
    assert to_float(value, D) is D


@pytest.mark.parametrize("value", ["true", "TRUE", " True ", "yes", "Yes", "on", "ON", "1",
                                   b"true", True, 1])
def test_to_bool_true(value):
    assert to_bool(value, D) is True


@pytest.mark.parametrize("value", ["false", "False", "no", "NO", "off", "Off", "0", b"no",
                                   False, 0])
def test_to_bool_false(value):
    assert to_bool(value, D) is False


@pytest.mark.parametrize("value", [None, "", "maybe", "2", "y", "t", 2, -1, 1.0, [], "truee"])
def test_to_bool_anything_else_gives_default(value):
    assert to_bool(value, D) is D
    assert to_bool(value) is None


@pytest.mark.parametrize(("value", "expected"), [
    ("abc", "abc"), (b"caf\xc3\xa9", "café"), (b"bad \xff byte", "bad \ufffd byte"),
    (12, "12"), (1.5, "1.5"), (True, "true"), (False, "false"), (bytearray(b"x"), "x"),
])
def test_to_str(value, expected):
    assert to_str(value, D) == expected


def test_to_str_none_and_broken_str_give_default():
    class Broken:
        def __str__(self):
            raise RuntimeError("no")

    assert to_str(None, D) is D
    assert to_str(None) is None
    assert to_str(Broken(), D) is D


def test_to_list():
    same = [1, 2]
    assert to_list(same) is same
    assert to_list((1, 2)) == [1, 2]
    assert sorted(to_list({3, 1})) == [1, 3]
    assert to_list(x for x in "ab") == ["a", "b"]
    assert to_list("abc") == ["abc"]
    assert to_list(b"abc") == [b"abc"]
    assert to_list({"k": 1}) == [{"k": 1}]
    assert to_list(5) == [5]
    assert to_list(None, D) is D
    assert to_list(None) is None


def test_to_list_failing_iterator_gives_default():
    def boom():
        yield 1
        raise RuntimeError("broken iterator")

    assert to_list(boom(), D) is D


@given(st.integers())
def test_int_text_round_trips(number):
    assert to_int(str(number)) == number
    assert to_int(str(number).encode()) == number


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_round_trips(number):
    assert to_float(repr(number)) == number


@given(st.one_of(st.text(), st.binary(), st.integers(), st.floats(), st.none(), st.booleans(),
                 st.lists(st.integers())))
def test_converters_never_raise_and_return_their_type_or_the_default(value):
    for convert, kind in ((to_int, int), (to_float, float), (to_bool, bool), (to_str, str),
                          (to_list, list)):
        result = convert(value, D)
        assert result is D or type(result) is kind
