"""schemas.error: the generic error (any Event-Name) and the call-control (dialplan) error."""

from __future__ import annotations

import pytest

import schemas


def raised(func, *args) -> schemas.MessageError:
    with pytest.raises(schemas.MessageError) as info:
        func(*args)
    return info.value


def test_generic_error_defaults_its_event_name_and_accepts_any():
    msg = schemas.build("error", {"Error-Message": "no handler", "Request": "authn_req",
                                  "Call-ID": "c-1"})
    assert (msg["Event-Category"], msg["Event-Name"]) == ("error", "error")
    named = schemas.build("error", {"Error-Message": "x", "Event-Name": "authn_error"})
    assert named["Event-Name"] == "authn_error"
    assert schemas.validate(named) is named
    assert schemas.get("error").event_name is None
    # the request itself may ride along
    assert schemas.build("error", {"Error-Message": "x", "Request": {"Event-Name": "a"}})


def test_generic_error_refusals():
    err = raised(schemas.build, "error", {"Request": ["a"]})
    assert err.message_name == "error"
    assert set(err.errors) == {"Error-Message", "Request"}


def test_dialplan_error():
    msg = schemas.build("dialplan_error", {"Error-Message": "play: no such file",
                                           "Call-ID": "c-1"})
    assert (msg["Event-Category"], msg["Event-Name"]) == ("error", "dialplan")
    assert schemas.lookup("error", "dialplan").name == "dialplan_error"
    err = raised(schemas.validate, {**msg, "Error-Message": None})
    assert err.message_name == "dialplan_error" and err.errors == {"Error-Message": ["missing"]}
