"""The whole-callflow check (schemas/callflow.py): every problem, named by its path."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from schemas import callflow as cf
from schemas.base import obj
from whistle_tasks.whapps.callflow import registry
from whistle_tasks.whapps.callflow.modules import temporal

registry.load_all()
MODULES = registry.specs()


def check(doc: Any, **kwargs: Any) -> dict[str, list[str]]:
    return cf.check(doc, MODULES, **kwargs)


def menu(children: dict[str, Any]) -> dict[str, Any]:
    return {"module": "menu", "data": {"greeting": "ivr/main.wav"}, "children": children}


GOOD = {"name": "main", "numbers": ["5000", "+14155550100"], "patterns": [r"^\+1(\d{10})$"],
        "flow": menu({
            "1": {"module": "ring_group",
                  "data": {"strategy": "sequential",
                           "members": [{"type": "device", "id": "1001", "timeout": 15},
                                       {"type": "user", "id": "alice", "delay": 5}]},
                  "children": {"no_answer": {"module": "play", "data": {"media": "x.wav"}}}},
            "2": {"module": "temporal_route",
                  "data": {"rules": [{"name": "open", "days": ["monday", "friday"],
                                      "start": "08:00", "end": "18:00"},
                                     {"name": "xmas", "dates": ["12-25"]}]},
                  "children": {"open": {"module": "user", "data": {"username": "bob"}},
                               "xmas": {"module": "hangup"},
                               "_": {"module": "respond", "data": {"code": 480}}}},
            "#": {"module": "conference", "data": {"name": "room1", "pin": "1234"}},
            "timeout": {"module": "transfer", "data": {"number": "6000"}},
            "_": {"module": "hangup"}})}


def test_a_good_callflow_has_no_problem() -> None:
    assert check(GOOD) == {}
    assert cf.validate(GOOD, MODULES) is GOOD


def test_every_error_is_named_by_its_path() -> None:
    doc = {"numbers": ["5000", "50a0", "5000"], "patterns": ["(unclosed"], "colour": "red",
           "flow": menu({
               "1": {"module": "device", "data": {"username": "1001", "timeout": "soon"}},
               "9x": {"module": "play", "data": {"media": "a.wav", "volume": 3}},
               "2": {"module": "dance"},
               "3": {"module": "play", "data": {}, "childs": {}},
               "4": {"module": "play", "data": {"media": "a.wav"},
                     "children": {"busy": {"module": "hangup"}}},
               "5": "not a node"})}
    errors = check(doc)
    assert errors["numbers.1"][0].startswith("expected a number")
    assert errors["numbers.2"] == ["5000 is listed twice"]
    assert "not a regular expression" in errors["patterns.0"][0]
    assert errors["colour"][0].startswith("unknown field")
    assert errors["flow.children.1.data.timeout"] == [
        "expected an integer from 1 to 600, got string 'soon'"]
    assert errors["flow.children.9x"] == [
        "'menu' never returns '9x' (it returns: a DTMF entry (0-9 * #), timeout, invalid, _)"]
    assert errors["flow.children.9x.data.volume"][0].startswith("unknown field")
    assert errors["flow.children.2.module"][0].startswith("unknown module string 'dance'")
    assert errors["flow.children.3.data.media"] == ["missing"]
    assert errors["flow.children.3.childs"][0].startswith("unknown field")
    assert errors["flow.children.4.children.busy"][0].startswith("'play' never returns 'busy'")
    assert errors["flow.children.5"][0].startswith("expected a node")
    with pytest.raises(cf.CallflowError) as caught:
        cf.validate(doc, MODULES)
    assert "flow.children.1.data.timeout: expected an integer" in str(caught.value)


def test_nested_objects_and_rules_across_fields() -> None:
    doc = {"numbers": ["1"], "flow": {"module": "ring_group", "data": {"members": [
        {"type": "fax", "id": "1"}, {"type": "device", "id": "2", "colour": "x"}]}}}
    errors = check(doc)
    assert errors["flow.data.members.0.type"][0].startswith("'fax' is not one of")
    assert errors["flow.data.members.1.colour"][0].startswith("unknown field")
    assert check({"numbers": ["1"], "flow": {"module": "ring_group", "data": {}}}) == {
        "flow.data.members": ["give members, a group, or both"]}
    rules = {"numbers": ["1"], "flow": {"module": "temporal_route", "data": {"rules": [
        {"name": "a", "start": "08:00"}, {"name": "a", "days": ["funday"]},
        {"name": "b", "dates": ["2024-02-30"], "start": "25:00", "end": "26:00"}]}}}
    errors = check(rules)
    assert errors["flow.data.rules.1.days.0"][0].startswith("'funday' is not one of")
    assert "a date YYYY-MM-DD or MM-DD" in errors["flow.data.rules.2.dates.0"][0]
    assert "a time HH:MM" in errors["flow.data.rules.2.start"][0]
    forward = {"numbers": ["1"], "flow": {"module": "forward", "data": {
        "uri": "sip:a@b", "gateway": "gw.example.com"}}}
    assert check(forward) == {"flow.data.gateway": ["give exactly one of uri, gateway"]}


def test_temporal_children_are_its_rule_names() -> None:
    doc = {"numbers": ["1"], "flow": {"module": "temporal_route", "data": {"rules": [
        {"name": "day", "start": "08:00", "end": "18:00"}]},
        "children": {"day": {"module": "hangup"}, "night": {"module": "hangup"}}}}
    assert check(doc) == {"flow.children.night": [
        "'temporal_route' never returns 'night' (it returns: day, _)"]}


def test_depth_and_size_limits() -> None:
    node: dict[str, Any] = {"module": "play", "data": {"media": "a.wav"}}
    for _ in range(cf.MAX_DEPTH):
        node = {"module": "play", "data": {"media": "a.wav"}, "children": {"_": node}}
    errors = check({"numbers": ["1"], "flow": node})
    deep = "flow" + ".children._" * cf.MAX_DEPTH
    assert errors == {deep: [f"deeper than {cf.MAX_DEPTH} levels"]}


def test_a_transfer_back_without_waiting_is_an_endless_loop() -> None:
    loop = {"numbers": ["5000"], "flow": {"module": "play", "data": {"media": "a.wav"},
                                          "children": {"_": {"module": "transfer",
                                                             "data": {"number": "5000"}}}}}
    assert check(loop) == {"flow.children._.data.number": [
        "transfers back to 5000 without ever waiting for the caller: an endless loop"]}
    # through a menu: the caller chooses each time, so it is a menu, not a loop
    assert check({"numbers": ["5000"], "flow": menu(
        {"9": {"module": "transfer", "data": {"number": "5000"}}})}) == {}
    # across callflows: 5000 → 6000 → 5000
    other = {"numbers": ["6000"], "flow": {"module": "transfer", "data": {"number": "5000"}}}

    def resolve(number: str) -> tuple[str, dict[str, Any]] | None:
        return {"6000": ("cf-6000", other), "5000": ("cf-5000", {})}.get(number)

    first = {"numbers": ["5000"], "flow": {"module": "transfer", "data": {"number": "6000"}}}
    assert check(first, resolve=resolve, doc_id="cf-5000") == {"flow.data.number": [
        "transfers back to 6000 → 5000 without ever waiting for the caller: an endless loop"]}


def test_operator_modules_declare_their_data_and_outcomes() -> None:
    @registry.module("test_greet", data=obj("greet data", required=("media",)),
                     outcomes=("played",))
    def greet(call: Any, data: dict, context: Any) -> str:  # noqa: ARG001
        return "played"

    specs = registry.specs()
    doc = {"numbers": ["1"], "flow": {"module": "test_greet", "data": {"media": "a.wav"},
                                      "children": {"played": {"module": "hangup"},
                                                   "skipped": {"module": "hangup"}}}}
    assert cf.check(doc, specs) == {"flow.children.skipped": [
        "'test_greet' never returns 'skipped' (it returns: played, _)"]}
    with pytest.raises(ValueError, match="registered twice"):
        registry.module("test_greet", data=obj("x"), outcomes=())(lambda c, d, x: None)


def test_not_a_callflow() -> None:
    assert check([1, 2]) == {"_schema": ["expected a JSON object, got list"]}
    assert check({"numbers": [], "flow": {"module": "hangup"}}) == {
        "numbers": ["a callflow needs at least one number or pattern"]}
    assert check({"numbers": ["1"]}) == {"flow": ["missing"]}


@pytest.mark.parametrize(("when", "chosen"), [
    ("2024-06-03T09:30", "open"),       # a Monday, in the morning
    ("2024-06-03T18:00", "night"),      # 18:00 is no longer open
    ("2024-06-04T03:00", "night"),      # over midnight
    ("2024-06-08T12:00", "_"),          # a Saturday afternoon
    ("2024-12-25T10:00", "xmas"),       # a Wednesday, but Christmas first
])
def test_temporal_rules(when: str, chosen: str) -> None:
    rules = [{"name": "xmas", "dates": ["12-25"]},
             {"name": "open", "days": ["monday", "tuesday", "wednesday", "thursday",
                                       "friday"], "start": "08:00", "end": "18:00"},
             {"name": "night", "start": "18:00", "end": "08:00"}]
    night = dict(rules[2], days=list(cf.WEEKDAYS[:5]))
    assert temporal.choose([rules[0], rules[1], night], dt.datetime.fromisoformat(when)) == \
        chosen
