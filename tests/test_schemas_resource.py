"""schemas.resource: originate_req / originate_resp / originate_error / resource_error."""

from __future__ import annotations

import pytest

import schemas

ENDPOINT = {"Invite-Format": "username", "To-User": "1000", "To-Realm": "example.com",
            "Endpoint-Timeout": 20}


def raised(func, *args) -> schemas.MessageError:
    with pytest.raises(schemas.MessageError) as info:
        func(*args)
    return info.value


@pytest.mark.parametrize("app, data", [("park", None), ("bridge", {"Endpoints": [ENDPOINT]}),
                                       ("transfer", "2000")])
def test_originate_req(app, data):
    msg = schemas.build("originate_req", {
        "Application-Name": app, "Application-Data": data, "Endpoints": [ENDPOINT],
        "Custom-Channel-Vars": {"Account-ID": "a"}, "Originate-Immediate": True,
        "Timeout": "30", "Dial-Endpoint-Method": "single", "Ignore-Early-Media": "true",
        "Outgoing-Caller-ID-Number": "1000"}, server_id="whapp-q")
    assert (msg["Event-Category"], msg["Event-Name"]) == ("resource", "originate_req")
    assert msg["Application-Name"] == app  # not a command: kept as given
    assert schemas.validate(msg) is msg
    assert schemas.lookup("resource", "originate_req").name == "originate_req"


def test_originate_req_refusals():
    err = raised(schemas.build, "originate_req", {"Application-Name": "dance"})
    assert err.message_name == "originate_req"
    assert set(err.errors) == {"Application-Name", "Endpoints"}
    assert "Application-Name: 'dance' is not one of ['park', 'bridge', 'transfer']" in str(err)
    err = raised(schemas.build, "originate_req", {
        "Application-Name": "park", "Endpoints": [{"To-User": "1000"}], "Timeout": "-1",
        "Application-Data": 7})
    assert set(err.errors) == {"Endpoints.0.Invite-Format", "Timeout", "Application-Data"}


def test_originate_resp_and_errors():
    msg = schemas.build("originate_resp", {"Call-ID": "c-9", "Control-Queue": "ctl-9",
                                           "Channel-Call-State": "ACTIVE"})
    assert schemas.validate(msg) is msg
    assert raised(schemas.build, "originate_resp", {}).errors == {"Call-ID": ["missing"]}
    for name in ("originate_error", "resource_error"):
        msg = schemas.build(name, {"Failure-Message": "USER_BUSY", "Failure-Code": "486",
                                   "Failed-Attempts": "1"})
        assert schemas.lookup("resource", name).validate(msg) is msg
        err = raised(schemas.validate, {**msg, "Failed-Attempts": "once"})
        assert err.message_name == name and list(err.errors) == ["Failed-Attempts"]
