"""schemas.base: the error class, builder, validator, registry and the fast path."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema

import schemas
from schemas import command, route
from schemas.base import DEFAULT_APP_VERSION, ROOT, MessageSpec, ObjectSpec, flatten_errors

AUTHN = {"Auth-Realm": "example.com", "Auth-User": "1000", "From": "sip:1000@example.com",
         "To": "sip:1000@example.com"}


def raised(func, *args, **kwargs) -> schemas.MessageError:
    with pytest.raises(schemas.MessageError) as info:
        func(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------- registry


def test_every_family_is_registered():
    expected = {
        "authn_req", "authn_resp", "authn_err", "route_req", "route_resp", "route_win",
        "reg_success", "reg_sync", "reg_query", "reg_query_resp", "reg_query_error", "reg_flush",
        "call_event", "cdr", "originate_req", "originate_resp", "originate_error",
        "resource_error", "error", "dialplan_error", "doc_created", "doc_edited", "doc_deleted",
        "answer", "hangup", "park", "progress", "play", "tones", "record",
        "play_and_collect_digits", "say", "sleep", "respond", "set", "bridge", "queue", "noop",
        "call_hangup_req", "call_transfer_req", "call_manage_resp",
        "store", "mwi_update", "mwi_query", "voicemail_new", "conference", "valet_park",
    }
    assert set(schemas.names()) == expected
    assert len(schemas.names()) == len(expected)  # no duplicates


def test_specs_expose_their_declaration():
    spec = schemas.get("authn_resp")
    assert isinstance(spec, MessageSpec)
    assert spec.name == "authn_resp"
    assert spec.category == "directory" and spec.event_name == "authn_resp"
    assert spec.required == ("Auth-Method", "Auth-Password")
    assert "Custom-Channel-Vars" in spec.optional
    assert spec.values["Auth-Method"] == ("password", "ip", "a1-hash", "error")
    assert spec.values["Event-Category"] == ("directory",)
    assert isinstance(spec.schema, Schema)
    # default headers are fields of every message, in front
    assert spec.fields[:5] == schemas.DEFAULT_REQUIRED
    assert set(schemas.DEFAULT_OPTIONAL) <= set(spec.fields)


@pytest.mark.parametrize("name", schemas.names())
def test_every_declaration_is_consistent(name):
    spec = schemas.get(name)
    assert spec.name == name
    assert all(isinstance(f, str) for f in spec.required + spec.optional)
    assert set(spec.values) <= set(spec.fields)
    assert set(spec.schema.fields) == set(spec.fields)
    for field in schemas.DEFAULT_REQUIRED:
        assert spec.schema.fields[field].required
    # lookup by its own event name(s) finds it again
    for event_name in spec.event_names() or ("anything",):
        assert schemas.lookup(spec.category, event_name, spec.application_name) is spec


def test_lookup_by_category_and_name():
    assert schemas.lookup("directory", "authn_req").name == "authn_req"
    assert schemas.lookup("dialplan", "route_win").name == "route_win"
    assert schemas.lookup("call_event", "CHANNEL_ANSWER").name == "call_event"
    assert schemas.lookup("call", "command", "bridge").name == "bridge"
    assert schemas.lookup("error", "dialplan").name == "dialplan_error"
    assert schemas.lookup("error", "authn_req").name == "error"  # any other name


def test_lookup_unknown_names_the_problem():
    err = raised(schemas.lookup, "directory", "authn_nope")
    assert isinstance(err, KeyError) and isinstance(err, schemas.UnknownMessage)
    assert "Event-Name" in err.errors and "'authn_nope'" in str(err)
    err = raised(schemas.lookup, "nope", "authn_req")
    assert list(err.errors) == ["Event-Category"]
    err = raised(schemas.lookup, "call", "command", "dance")
    assert err.message_name == "command"
    assert "Application-Name: 'dance' is not one of" in str(err)
    err = raised(schemas.lookup, "call", "command")
    assert err.errors == {"Application-Name": ["missing"]}
    with pytest.raises(KeyError):
        schemas.get("no_such_message")


# ---------------------------------------------------------------- validate


def test_validate_returns_the_message_itself_with_extra_keys():
    msg = schemas.build("authn_req", AUTHN)
    msg["X-Extra"] = {"anything": [1, 2]}
    before = dict(msg)
    assert schemas.validate(msg) is msg
    assert msg == before
    assert schemas.validate_as("authn_req", msg) is msg


@pytest.mark.parametrize("bad", [None, [], "authn_req", 42, ("a", "b")])
def test_non_objects_raise_message_error(bad):
    for func in (schemas.validate, lambda m: schemas.validate_as("route_req", m),
                 lambda m: schemas.build("route_req", m)):
        err = raised(func, bad)
        assert "expected a JSON object" in str(err)


def test_unknown_or_missing_event_headers():
    err = raised(schemas.validate, {"Event-Name": "authn_req"})
    assert err.message_name == "unknown"
    assert err.errors == {"Event-Category": ["missing"]}
    err = raised(schemas.validate, {"Event-Category": ["directory"], "Event-Name": 5})
    assert set(err.errors) == {"Event-Category", "Event-Name"}
    err = raised(schemas.validate, {"Event-Category": "directory", "Event-Name": "nope"})
    assert "Event-Name: 'nope' is not one of" in str(err)


def test_one_error_lists_every_bad_field():
    msg = schemas.build("authn_req", AUTHN)
    del msg["Auth-Realm"], msg["Msg-ID"]
    msg.update({"Method": "FOO", "Expires": "soon", "Custom-SIP-Headers": {"X-A": [1]},
                "Orig-Port": True})
    err = raised(schemas.validate, msg)
    assert err.message_name == "authn_req"
    assert set(err.errors) == {"Auth-Realm", "Msg-ID", "Method", "Expires",
                               "Custom-SIP-Headers.X-A", "Orig-Port"}
    text = str(err)
    assert text.startswith("authn_req: ")
    assert "Auth-Realm: missing" in text and "Msg-ID: missing" in text
    assert re.search(r"Method: 'FOO' is not one of \['REGISTER', 'INVITE'", text)
    assert "Expires: expected a non-negative integer or a string of digits, got string 'soon'" \
        in text
    assert "Orig-Port: expected" in text and "got boolean" in text


def test_null_counts_as_missing_for_required_and_absent_for_optional():
    msg = schemas.build("authn_req", AUTHN)
    assert schemas.validate({**msg, "Method": None, "Expires": None}) is not None
    err = raised(schemas.validate, {**msg, "Auth-User": None})
    assert err.errors == {"Auth-User": ["missing"]}


def test_default_header_kinds_are_checked():
    msg = schemas.build("authn_err", {}, defer_response="true")
    assert msg["Defer-Response"] == "true"
    err = raised(schemas.validate, {**msg, "Defer-Response": "maybe", "Server-ID": 7})
    assert set(err.errors) == {"Defer-Response", "Server-ID"}


def test_secret_values_never_appear_in_errors():
    resp = schemas.build("authn_resp", {"Auth-Method": "password", "Auth-Password": "s3cret"})
    err = raised(schemas.validate, {**resp, "Auth-Password": 123456789})
    assert "123456789" not in str(err)
    assert err.errors == {"Auth-Password": ["expected a string, got integer"]}


def test_message_error_survives_pickling():
    err = raised(schemas.validate_as, "authn_req", {"Auth-Realm": 1})
    again = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes (Celery pickles errors)
    assert type(again) is schemas.MessageError
    assert again.message_name == err.message_name and again.errors == err.errors
    assert str(again) == str(err)


def test_flatten_errors_paths():
    nested = {"Routes": {0: {"Invite-Format": ["missing"]}, 2: ["expected an object"]},
              ROOT: ["bad"]}
    assert flatten_errors(nested) == {"Routes.0.Invite-Format": ["missing"],
                                      "Routes.2": ["expected an object"], ROOT: ["bad"]}


# ---------------------------------------------------------------- build


def test_build_fills_default_headers():
    from whistle_tasks.core.config import settings

    msg = schemas.build("authn_req", AUTHN)
    assert re.fullmatch(r"[0-9a-f]{32}", msg["Msg-ID"])
    assert msg["App-Name"] == "whistle"
    assert msg["App-Version"] == DEFAULT_APP_VERSION == "0.1.0"
    assert msg["Node"] == settings.node
    assert msg["Event-Category"] == "directory" and msg["Event-Name"] == "authn_req"
    assert schemas.build("authn_req", AUTHN)["Msg-ID"] != msg["Msg-ID"]


def test_build_headers_keywords_win_and_given_msg_id_is_kept():
    msg = schemas.build("authn_req", {**AUTHN, "Msg-ID": "m-1", "App-Name": "data"},
                        app_name="registrar", app_version="9.9", node="n1@host",
                        server_id="bridge-q", **{"Call-ID": "c-1"})
    assert msg["Msg-ID"] == "m-1"
    assert (msg["App-Name"], msg["App-Version"], msg["Node"]) == ("registrar", "9.9", "n1@host")
    assert msg["Server-ID"] == "bridge-q" and msg["Call-ID"] == "c-1"


def test_build_drops_unknown_keys_and_nulls_without_touching_input():
    data = {**AUTHN, "Junk": 1, "auth-realm": "lower", "Method": None,
            "Event-Name": "route_req", "Event-Category": "dialplan"}
    frozen = dict(data)
    msg = schemas.build("authn_req", data)
    assert data == frozen
    assert "Junk" not in msg and "auth-realm" not in msg and "Method" not in msg
    assert (msg["Event-Category"], msg["Event-Name"]) == ("directory", "authn_req")
    assert msg is not data


def test_build_unknown_keyword_is_a_programming_error():
    with pytest.raises(TypeError, match="unknown header keyword 'serverid'"):
        schemas.build("authn_req", AUTHN, serverid="x")


def test_build_validates():
    err = raised(schemas.build, "authn_resp", {"Auth-Method": "magic"})
    assert err.message_name == "authn_resp"
    assert set(err.errors) == {"Auth-Method", "Auth-Password"}


# ---------------------------------------------------------------- properties

#: Minimal valid data of every message type (the builder adds the default headers).
_ENDPOINT = {"Invite-Format": "route", "Route": "sip:1000@example.com"}
SAMPLES: dict[str, dict] = {
    "authn_req": AUTHN,
    "authn_resp": {"Auth-Method": "password", "Auth-Password": "pw"},
    "authn_err": {},
    "route_req": {"From": "a@b", "To": "c@d", "Request": "c@d", "Call-ID": "c1"},
    "route_resp": {"Method": "bridge", "Routes": [{"Invite-Format": "username",
                                                   "To-User": "1000"}]},
    "route_win": {"Call-ID": "c1", "Control-Queue": "q1"},
    "reg_success": {"Contact": "sip:1000@h", "Event-Timestamp": "1", "Expires": "60",
                    "Realm": "r", "Username": "u"},
    "reg_sync": {"FreeSWITCH-Hostname": "fs1", "Event-Timestamp": 1, "Registrations": [
        {"Contact": "sip:1000@h", "Event-Timestamp": 1, "Expires": 60, "Realm": "r",
         "Username": "u"}]},
    "reg_query": {"Realm": "r", "Fields": ["Contact"]},
    "reg_query_resp": {"Fields": [{"Contact": "sip:1000@h"}]},
    "reg_query_error": {},
    "reg_flush": {"Realm": "r"},
    "call_event": {"Event-Name": "CHANNEL_ANSWER", "Call-ID": "c1"},
    "cdr": {"Call-ID": "c1"},
    "originate_req": {"Application-Name": "park", "Endpoints": [_ENDPOINT]},
    "originate_resp": {"Call-ID": "c1"},
    "originate_error": {}, "resource_error": {},
    "error": {"Error-Message": "no"}, "dialplan_error": {"Error-Message": "no"},
    "doc_created": {"Type": "device", "ID": "d1"}, "doc_edited": {"Type": "device", "ID": "d1"},
    "doc_deleted": {"Type": "device", "ID": "d1"},
    "answer": {"Call-ID": "c1"}, "hangup": {"Call-ID": "c1"}, "park": {"Call-ID": "c1"},
    "progress": {"Call-ID": "c1"}, "noop": {"Call-ID": "c1"},
    "play": {"Call-ID": "c1", "Media-Name": "m"},
    "tones": {"Call-ID": "c1", "Tones": [{"Frequencies": [440], "Duration-ON": 100,
                                          "Duration-OFF": 100}]},
    "record": {"Call-ID": "c1", "Media-Name": "m"},
    "play_and_collect_digits": {"Call-ID": "c1", "Minimum-Digits": 1, "Maximum-Digits": 4,
                                "Timeout": 5000, "Terminators": ["#"], "Media-Name": "m",
                                "Media-Tries": 3, "Failed-Media-Name": "f",
                                "Digits-Regex": "\\d+"},
    "say": {"Call-ID": "c1", "Language": "en", "Type": "number", "Method": "pronounced",
            "Say-Text": "42"},
    "sleep": {"Call-ID": "c1", "Time": 100},
    "respond": {"Call-ID": "c1", "Response-Code": "486"},
    "set": {"Call-ID": "c1", "Custom-Channel-Vars": {}, "Custom-Call-Vars": {}},
    "bridge": {"Call-ID": "c1", "Endpoints": [_ENDPOINT]},
    "store": {"Call-ID": "c1", "Media-Name": "m.wav", "Media-Transfer-Destination": "http://h/"},
    "conference": {"Call-ID": "c1", "Conference-ID": "a-room"},
    "valet_park": {"Call-ID": "c1", "Lot": "a-default", "Slot": "701"},
    "mwi_update": {"To": "1000@r", "Messages-New": 1, "Messages-Saved": "0"},
    "mwi_query": {"Username": "1000", "Realm": "r"},
    "voicemail_new": {"Account-ID": "a1", "Voicemail-Box": "b1", "Voicemail-Name": "m1"},
    "queue": {"Call-ID": "c1", "Commands": [{"Application-Name": "answer"},
                                            {"Application-Name": "play", "Media-Name": "m"}]},
    "call_hangup_req": {"Call-ID": "c1"},
    "call_transfer_req": {"Call-ID": "c1", "Transfer-To": "2000"},
    "call_manage_resp": {"Call-ID": "c1", "Result": "ok"},
}


def test_samples_cover_and_build_every_type():
    assert set(SAMPLES) == set(schemas.names())
    for name, data in SAMPLES.items():
        msg = schemas.build(name, data)
        assert schemas.validate(msg) is msg
        assert schemas.get(name).fast_ok(msg)


_NAMES = sorted({f for n in schemas.names() for f in schemas.get(n).fields}
                | set(route.ROUTE.fields) | set(command.ENDPOINT.fields)
                | set(command.TONE.fields) | {"X-Unknown", "", "auth-realm"})
_CATEGORY_NAMES = [(schemas.get(n).category, e, schemas.get(n).application_name)
                   for n in schemas.names() for e in (schemas.get(n).event_names() or ("x",))]

_scalars = (st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True)
            | st.sampled_from(["", "true", "false", "3600", "-1", "0.5", "none", "#*",
                               "username", "bridge", "park", "REGISTER", "answer", "x"])
            | st.text(max_size=8))
_keys = st.sampled_from(_NAMES) | st.text(max_size=6)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_keys, inner, max_size=4), max_leaves=12)


@st.composite
def messages(draw):
    """Random dicts: from noise, or a valid message with a few fields mutated or deleted."""
    if draw(st.booleans()):
        msg = draw(st.dictionaries(_keys, _json, max_size=10))
        if draw(st.booleans()):
            category, event_name, app = draw(st.sampled_from(_CATEGORY_NAMES))
            msg.update({"Event-Category": category, "Event-Name": event_name})
            if app is not None:
                msg["Application-Name"] = app
        return msg
    name = draw(st.sampled_from(sorted(SAMPLES)))
    msg = schemas.build(name, SAMPLES[name])
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(msg)) | _keys)
        if draw(st.booleans()):
            msg.pop(key, None)
        else:
            msg[key] = draw(_json)
    return msg


_PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPS
@given(messages())
def test_random_messages_raise_nothing_but_message_error(msg):
    try:
        assert schemas.validate(msg) is msg
    except schemas.MessageError as err:
        assert err.errors and str(err)


@_PROPS
@given(st.sampled_from(sorted(schemas.names())), messages())
def test_random_data_build_and_validate_as_raise_nothing_but_message_error(name, data):
    for func in (schemas.validate_as, schemas.build):
        try:
            out = func(name, data)
        except schemas.MessageError as err:
            assert err.errors and err.message_name
        else:
            assert schemas.validate_as(name, out) is out


@_PROPS
@given(messages())
def test_fast_path_agrees_with_marshmallow(msg):
    for name in (msg.get("Application-Name"), msg.get("Event-Name"), "call_event", "bridge"):
        if isinstance(name, str) and name in SAMPLES:
            spec = schemas.get(name)
            assert spec.fast_ok(msg) == (spec.schema.validate(msg) == {})


@_PROPS
@given(st.sampled_from([route.ROUTE, command.ENDPOINT, command.TONE]),
       st.dictionaries(_keys, _json, max_size=8), st.booleans())
def test_fast_path_agrees_with_marshmallow_for_nested_objects(spec: ObjectSpec, obj, seed):
    if seed:  # start from a valid object, so both verdicts are exercised
        obj = {**{"Invite-Format": "route", "Frequencies": [1], "Duration-ON": 1,
                  "Duration-OFF": 1}, **obj}
    assert spec.fast_ok(obj) == (spec.explain(obj) == {})
