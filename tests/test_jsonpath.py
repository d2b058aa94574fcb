"""JSON paths (the seed's wh_json): get_value, set_value, delete_key, get_first_defined."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from whistle_tasks.core.jsonpath import delete_key, get_first_defined, get_value, set_value


def doc():
    return {
        "realm": "example.com",
        "sip": {"username": "1000", "password": "secret", "ip.addr": "10.0.0.1"},
        "routes": [{"uri": "sip:a@b"}, {"uri": "sip:c@d", "weight": 0}],
        "caller_id": None,
        "flags": [],
        "a.b": "dotted key",
    }


# -- get_value ---------------------------------------------------------------------------

def test_get_single_key_and_nested_path():
    d = doc()
    assert get_value("realm", d) == "example.com"
    assert get_value(["sip", "username"], d) == "1000"
    assert get_value(("sip", "password"), d) == "secret"


def test_dots_are_part_of_a_key_not_a_path():
    d = doc()
    assert get_value("a.b", d) == "dotted key"
    assert get_value(["sip", "ip.addr"], d) == "10.0.0.1"
    assert get_value("sip.username", d, "none") == "none"


def test_integers_index_arrays_including_negative():
    d = doc()
    assert get_value(["routes", 0, "uri"], d) == "sip:a@b"
    assert get_value(["routes", 1, "uri"], d) == "sip:c@d"
    assert get_value(["routes", -1, "uri"], d) == "sip:c@d"
    assert get_value(["routes", -2, "uri"], d) == "sip:a@b"


def test_missing_steps_give_the_default():
    d = doc()
    assert get_value("nope", d) is None
    assert get_value("nope", d, 42) == 42
    assert get_value(["sip", "nope"], d, "x") == "x"
    assert get_value(["routes", 2, "uri"], d, "x") == "x"
    assert get_value(["routes", -3], d, "x") == "x"
    assert get_value(["flags", 0], d, "x") == "x"


def test_wrong_typed_steps_give_the_default_not_an_exception():
    d = doc()
    assert get_value(["realm", "x"], d, "dflt") == "dflt"          # key into a string
    assert get_value(["realm", 0], d, "dflt") == "dflt"            # index into a string
    assert get_value(["sip", 0], d, "dflt") == "dflt"              # index into an object
    assert get_value(["routes", "0"], d, "dflt") == "dflt"         # key into an array
    assert get_value(["routes", True], d, "dflt") == "dflt"        # a bool is no index
    assert get_value(["sip", ["unhashable"]], d, "dflt") == "dflt"
    assert get_value("x", None, "dflt") == "dflt"
    assert get_value("x", "not json", "dflt") == "dflt"
    assert get_value(0, [7], "dflt") == 7                          # a top-level array


def test_present_null_is_returned_not_defaulted():
    assert get_value("caller_id", doc(), "dflt") is None
    assert get_value(["routes", 1, "weight"], doc(), "dflt") == 0


def test_empty_path_is_the_object_itself():
    d = doc()
    assert get_value([], d) is d


# -- get_first_defined -------------------------------------------------------------------

def test_get_first_defined_skips_missing_and_null():
    d = doc()
    assert get_first_defined(["nope", "caller_id", ["sip", "username"], "realm"], d) == "1000"
    assert get_first_defined([["routes", 5], ["routes", 1, "weight"]], d) == 0
    assert get_first_defined(["nope", "caller_id"], d, "dflt") == "dflt"
    assert get_first_defined([], d, "dflt") == "dflt"


# -- set_value ---------------------------------------------------------------------------

def test_set_value_creates_missing_objects_and_returns_obj():
    d = {}
    out = set_value(["a", "b", "c"], 1, d)
    assert out is d
    assert d == {"a": {"b": {"c": 1}}}
    set_value(["a", "b", "d"], 2, d)
    set_value("top", "x", d)
    assert d == {"a": {"b": {"c": 1, "d": 2}}, "top": "x"}


def test_set_value_replaces_a_wrong_typed_value_before_a_key_step():
    d = {"sip": "not an object", "list": [1, 2], "n": None}
    set_value(["sip", "username"], "1000", d)
    set_value(["list", "key"], "v", d)
    set_value(["n", "deep", "er"], 1, d)
    assert d == {"sip": {"username": "1000"}, "list": {"key": "v"}, "n": {"deep": {"er": 1}}}


def test_set_value_into_arrays():
    d = doc()
    set_value(["routes", 0, "uri"], "sip:x@y", d)
    set_value(["routes", -1, "weight"], 5, d)
    set_value(["routes", 2], {"uri": "sip:new@z"}, d)    # index == len appends
    set_value(["flags", 0, "name"], "f", d)             # append creates an object
    assert d["routes"] == [{"uri": "sip:x@y"}, {"uri": "sip:c@d", "weight": 5},
                           {"uri": "sip:new@z"}]
    assert d["flags"] == [{"name": "f"}]


def test_set_value_bad_writes_raise_precisely():
    d = doc()
    with pytest.raises(IndexError, match=r"step 1 \(5\) is out of range for an array of 2"):
        set_value(["routes", 5], "x", d)
    with pytest.raises(TypeError, match=r"step 1 \(0\) indexes an array, but the value there "
                                        r"is a dict"):
        set_value(["sip", 0], "x", d)
    with pytest.raises(TypeError, match=r"step 1 \(0\) indexes an array, but .* NoneType"):
        set_value(["nothing", 0], "x", d)    # arrays are never invented
    with pytest.raises(TypeError, match=r"step 0 \('a'\) is a key, but the value there is a "
                                        r"str"):
        set_value("a", 1, "string")
    with pytest.raises(TypeError, match=r"step 0 \('a'\) is a key, but .* list"):
        set_value("a", 1, [])
    with pytest.raises(ValueError, match="non-empty path"):
        set_value([], 1, d)
    assert d == doc()  # nothing written by the failures above


def test_set_then_get_round_trip():
    d = {}
    set_value(["Custom-Channel-Vars", "Account-ID"], "abc", d)
    assert get_value(["Custom-Channel-Vars", "Account-ID"], d) == "abc"


# -- delete_key --------------------------------------------------------------------------

def test_delete_leaves_emptied_parents_by_default():
    d = {"a": {"b": {"c": 1}}, "z": 0}
    out = delete_key(["a", "b", "c"], d)
    assert out is d
    assert d == {"a": {"b": {}}, "z": 0}


def test_delete_with_prune_removes_emptied_parents():
    d = {"a": {"b": {"c": 1}}, "z": 0}
    delete_key(["a", "b", "c"], d, prune=True)
    assert d == {"z": 0}


def test_prune_stops_at_the_first_non_empty_parent():
    d = {"a": {"b": {"c": 1}, "keep": True}}
    delete_key(["a", "b", "c"], d, prune=True)
    assert d == {"a": {"keep": True}}


def test_prune_through_arrays():
    d = {"list": [{"only": 1}], "x": 1}
    delete_key(["list", 0, "only"], d, prune=True)
    assert d == {"x": 1}
    d = {"list": [{"only": 1}, {"other": 2}]}
    delete_key(["list", 0, "only"], d, prune=True)
    assert d == {"list": [{"other": 2}]}


def test_delete_array_element_and_single_key():
    d = doc()
    delete_key(["routes", 0], d)
    assert d["routes"] == [{"uri": "sip:c@d", "weight": 0}]
    delete_key("realm", d)
    assert "realm" not in d


def test_delete_missing_or_wrong_typed_path_changes_nothing():
    d = doc()
    for path in ["nope", ["sip", "nope"], ["realm", "x"], ["routes", 9], ["routes", "x"],
                 ["sip", 0], [], ["nope", "deeper", "still"]]:
        delete_key(path, d, prune=True)
    assert d == doc()


# -- properties --------------------------------------------------------------------------

KEYS = st.lists(st.text(max_size=5), min_size=1, max_size=5)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=10)


@given(KEYS, JSON, st.dictionaries(st.text(max_size=5), JSON, max_size=3))
def test_set_then_get_returns_the_value(path, value, obj):
    set_value(path, value, obj)
    assert get_value(path, obj, object()) == value


@given(KEYS, JSON)
def test_set_then_delete_with_prune_leaves_an_empty_object(path, value):
    obj = {}
    set_value(path, value, obj)
    delete_key(path, obj, prune=True)
    assert obj == {}


@given(st.lists(st.text(max_size=3) | st.integers(-3, 3), max_size=4), JSON)
def test_reads_and_deletes_never_raise_and_reads_never_mutate(path, obj):
    before = copy.deepcopy(obj)
    sentinel = object()
    value = get_value(path, obj, sentinel)
    assert obj == before
    if isinstance(obj, dict | list):
        delete_key(path, obj, prune=True)
        if value is sentinel or not path:
            assert obj == before   # nothing there (or no path): nothing deleted
        else:
            assert get_value(path, obj, sentinel) != value or obj != before
