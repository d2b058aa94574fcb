"""schemas.registration: reg_success, reg_query(_resp/_error), reg_flush (directory)."""

from __future__ import annotations

import json

import pytest

import schemas
from schemas.registration import REG_FIELDS

GOOD = {"Contact": "sip:1000@127.0.0.1:5070", "Event-Timestamp": 63900000000, "Expires": 3600,
        "Realm": "example.com", "Username": "1000"}


def raised(func, *args) -> schemas.MessageError:
    with pytest.raises(schemas.MessageError) as info:
        func(*args)
    return info.value


def _json_events(path):
    """The text/event-json bodies of an ESL capture (framed by Content-Length)."""
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        end = data.index(b"\n\n", pos)
        headers = dict(line.split(": ", 1) for line in data[pos:end].decode().split("\n"))
        length = int(headers.get("Content-Length", 0))
        body = data[end + 2:end + 2 + length]
        pos = end + 2 + length
        if headers.get("Content-Type") == "text/event-json":
            yield json.loads(body)


def test_reg_success_from_real_sofia_register(fixtures_dir):
    """docs/api.md's rule: each field from the event header of its lower-case name, else the
    exact name, plus Event-Timestamp. The result is a valid reg_success."""
    spec = schemas.get("reg_success")
    events = [e for p in sorted((fixtures_dir / "modern").glob("*/esl_*_json.txt"))
              for e in _json_events(p) if e.get("Event-Subclass") == "sofia::register"]
    assert events
    for event in events:
        data = {}
        for field in spec.required + spec.optional:
            value = event.get(field.lower(), event.get(field))
            if value is not None:
                data[field] = value
        data["Event-Timestamp"] = event["Event-Date-Timestamp"]
        msg = schemas.build("reg_success", data)
        assert msg["Expires"] == event["expires"] and msg["Network-Port"].isdigit()
        assert msg["FreeSWITCH-Hostname"] == event["FreeSWITCH-Hostname"]


def test_reg_success_deregistration_and_refusals():
    assert schemas.build("reg_success", {**GOOD, "Expires": "0"})["Expires"] == "0"
    msg = schemas.build("reg_success", GOOD)
    del msg["Contact"]
    err = raised(schemas.validate, {**msg, "Expires": "never", "Network-Port": -5060})
    assert err.message_name == "reg_success"
    assert set(err.errors) == {"Contact", "Expires", "Network-Port"}


def test_reg_query_fields_are_registration_field_names():
    msg = schemas.build("reg_query", {"Realm": "example.com", "Username": "1000",
                                      "Fields": ["Contact", "Expires"], "Count-Only": "false"})
    assert schemas.lookup("directory", "reg_query").validate(msg) is msg
    err = raised(schemas.validate, {**msg, "Fields": ["Contact", "Password"],
                                    "Count-Only": "no"})
    assert set(err.errors) == {"Fields.1", "Count-Only"}
    assert "Fields.1: 'Password' is not one of ['Contact'," in str(err)
    assert set(REG_FIELDS) >= {"Contact", "Original-Contact", "Source-Port"}


def test_reg_query_resp_carries_registration_objects():
    msg = schemas.build("reg_query_resp", {"Fields": [GOOD, {"Contact": "sip:x", "Junk": 1}],
                                           "Count": "2"})
    assert msg["Fields"][1] == {"Contact": "sip:x"}  # unknown keys dropped when built
    err = raised(schemas.validate, {**msg, "Fields": [GOOD, {"Expires": "soon"}, 7],
                                    "Count": "two"})
    assert set(err.errors) == {"Fields.1.Expires", "Fields.2", "Count"}


def test_reg_query_error_and_flush():
    assert schemas.build("reg_query_error", {})["Event-Name"] == "reg_query_error"
    msg = schemas.build("reg_flush", {"Realm": "example.com", "Username": "1000"})
    assert msg["Event-Category"] == "directory"
    err = raised(schemas.build, "reg_flush", {"Username": "1000"})
    assert str(err) == "reg_flush: Realm: missing"
