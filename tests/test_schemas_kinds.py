"""schemas.kinds: what each kind of wire value accepts, and how it says no."""

from __future__ import annotations

import math

import pytest

from schemas.kinds import (
    BOOLEAN,
    INTEGER,
    NUMBER,
    SCALARS,
    SIGNED_INTEGER,
    TERMINATORS,
    TEXT,
    OneOf,
    either,
    json_type,
    list_of,
    show,
)


@pytest.mark.parametrize("kind, good, bad", [
    (TEXT, ["", "x", "ünïcode"], [None, 1, b"x", ["x"]]),
    (INTEGER, [0, 5, "0", "3600", 10**12], [-1, "-1", "", "12a", "٣", True, 5.0, "5.0", None]),
    (SIGNED_INTEGER, [-7, "-7", "3", 0], ["--1", "", "1-", True, 1.5]),
    (NUMBER, [0, 1.5, "0.01", "12", 10**16], [-0.5, "1.", ".5", "1e3", math.nan, math.inf,
                                              False, "x"]),
    (BOOLEAN, [True, False, "true", "false"], ["True", "yes", 1, 0, None, "1"]),
    (SCALARS, [{}, {"a": "b", "n": 1, "f": 0.5, "t": True}],
     [{"a": None}, {"a": [1]}, {"a": {"b": 1}}, {1: "x"}, [], "a=b", {"f": math.nan}]),
    (TERMINATORS, [["#"], ["1", "*", "#"], "#*", "", "none", []],
     [["##"], ["a"], "a#", [1], None, 5]),
    (list_of(TEXT), [[], ["PCMU", "PCMA"], ("G722",)], ["PCMU", [1], None]),
    (OneOf(TEXT, ("a", "b")), ["a", "b"], ["c", "", 1, None]),
    (either(TEXT, SCALARS), ["x", {"a": 1}], [1, [], {"a": []}]),
])
def test_kinds_accept_and_refuse(kind, good, bad):
    for value in good:
        assert kind.ok(value), value
    for value in bad:
        assert not kind.ok(value), value
        assert kind.explain(value), value  # every refusal has a reason


def test_explanations_are_precise():
    assert INTEGER.explain("12a") == [
        "expected a non-negative integer or a string of digits, got string '12a'"]
    assert OneOf(TEXT, ("a", "b")).explain("c") == ["'c' is not one of ['a', 'b']"]
    assert OneOf(TEXT, ("a", "b")).explain(3) == ["expected a string, got integer 3"]
    assert SCALARS.explain({"ok": "x", "bad": [1]}) == {
        "bad": ["expected a scalar (string, number or boolean), got list"]}
    assert list_of(INTEGER).explain([1, "x", 3]) == {
        1: ["expected a non-negative integer or a string of digits, got string 'x'"]}
    assert TERMINATORS.explain(["#", "x"]) == {1: ["'x' is not a DTMF key (0123456789*#)"]}


def test_show_is_short_and_hides_secrets():
    assert show("secret", secret=True) == "string"
    assert len(show("x" * 500)) < 60
    assert json_type({}) == "object" and json_type(()) == "list" and json_type(None) == "null"


def test_prune_copies_containers():
    value = {"a": "b"}
    assert SCALARS.prune(value) == value and SCALARS.prune(value) is not value
    items = ["PCMU"]
    assert list_of(TEXT).prune(items) == items and list_of(TEXT).prune(items) is not items
