"""schemas.call_event: call_event (every FreeSWITCH event name we publish) and the CDR."""

from __future__ import annotations

import json

import pytest

import schemas
from schemas.call_event import EVENT_NAMES


def raised(func, *args) -> schemas.MessageError:
    with pytest.raises(schemas.MessageError) as info:
        func(*args)
    return info.value


@pytest.mark.parametrize("event_name", EVENT_NAMES)
def test_every_event_name_is_a_call_event(event_name):
    msg = schemas.build("call_event", {"Event-Name": event_name, "Call-ID": "c-1"})
    assert (msg["Event-Category"], msg["Event-Name"]) == ("call_event", event_name)
    assert schemas.lookup("call_event", event_name).name == "call_event"
    assert schemas.validate(msg) is msg


def test_event_names_include_the_synthetic_execute_error():
    assert "CHANNEL_EXECUTE_ERROR" in EVENT_NAMES
    assert schemas.get("call_event").event_name == frozenset(EVENT_NAMES)
    msg = schemas.build("call_event", {"Event-Name": "CHANNEL_EXECUTE_ERROR", "Call-ID": "c",
                                       "Application-Name": "play", "Error-Message": "no file"})
    assert msg["Error-Message"] == "no file"


def test_refusals():
    err = raised(schemas.build, "call_event", {"Call-ID": "c-1"})
    assert err.errors == {"Event-Name": ["missing"]}
    err = raised(schemas.validate, {**schemas.build("call_event", {
        "Event-Name": "DTMF", "Call-ID": "c"}), "Event-Name": "CHANNEL_PARK"})
    assert err.message_name == "unknown" and "'CHANNEL_PARK'" in str(err)
    err = raised(schemas.validate_as, "call_event", {
        **schemas.build("call_event", {"Event-Name": "DTMF", "Call-ID": "c"}),
        "Event-Name": "CHANNEL_PARK", "DTMF-Duration": "long", "Call-ID": None})
    assert err.message_name == "call_event"
    assert set(err.errors) == {"Event-Name", "DTMF-Duration", "Call-ID"}


def _json_events(path):
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


def _first(value):
    return value[0] if isinstance(value, list) else value  # repeated headers are lists


def test_call_events_from_a_real_call(fixtures_dir):
    """Events of a real call, mapped the obvious way, are valid call_events."""
    path = fixtures_dir / "modern" / "c_call_2000_tone_park" / "esl_c_json.txt"
    if not path.exists():
        pytest.skip("capture c_call_2000_tone_park absent")
    mapping = {"Unique-ID": "Call-ID", "Event-Date-Timestamp": "Timestamp",
               "Channel-Call-State": "Channel-Call-State", "Channel-State": "Channel-State",
               "Call-Direction": "Call-Direction", "Caller-Caller-ID-Name": "Caller-ID-Name",
               "Caller-Caller-ID-Number": "Caller-ID-Number", "Application": "Application-Name",
               "Application-Data": "Application-Data",
               "Application-Response": "Application-Response", "Hangup-Cause": "Hangup-Cause",
               "DTMF-Digit": "DTMF-Digit", "DTMF-Duration": "DTMF-Duration",
               "variable_duration": "Duration-Seconds", "variable_billsec": "Billing-Seconds",
               "FreeSWITCH-Hostname": "Switch-Hostname"}
    names = set()
    for event in _json_events(path):
        if event.get("Event-Name") not in EVENT_NAMES:
            continue
        data = {ours: _first(event[theirs]) for theirs, ours in mapping.items() if theirs in event}
        msg = schemas.build("call_event", {**data, "Event-Name": event["Event-Name"]})
        names.add(msg["Event-Name"])
    assert {"CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_EXECUTE"} <= names


def test_cdr():
    msg = schemas.build("cdr", {"Call-ID": "c-1", "Duration-Seconds": "12",
                                "Billing-Seconds": 10, "Hangup-Cause": "NORMAL_CLEARING",
                                "Custom-Channel-Vars": {"Account-ID": "a"}})
    assert (msg["Event-Category"], msg["Event-Name"]) == ("call_detail", "cdr")
    assert schemas.lookup("call_detail", "cdr").name == "cdr"
    err = raised(schemas.validate, {**msg, "Billing-Seconds": "ten"})
    assert err.message_name == "cdr" and list(err.errors) == ["Billing-Seconds"]
