"""schemas.route: route_req / route_resp (with route objects) / route_win (dialplan)."""

from __future__ import annotations

import pytest

import schemas
from schemas.route import ROUTE

REQ = {
    "From": "1000@example.com", "To": "2000@example.com", "Request": "2000@example.com",
    "Call-ID": "c-1", "Caller-ID-Name": "Alice", "Caller-ID-Number": "1000",
    "Custom-Channel-Vars": {"Account-ID": "a" * 32, "Authorizing-ID": "d" * 32},
    "Custom-SIP-Headers": {"X-Foo": "bar"}, "Orig-IP": "10.0.0.5", "Orig-Port": 5060,
    "From-Network-Addr": "10.0.0.5", "Media": "process", "Codecs": ["PCMU", "PCMA"],
    "Max-Call-Length": "3600", "Resource-Type": "audio", "Switch-Hostname": "fs1",
    "Switch-Nodename": "freeswitch@fs1", "User-Agent": "Yealink", "Context": "context_2",
    "Call-Direction": "inbound", "Destination-Number": "2000",
}

FULL_ROUTE = {
    "Invite-Format": "route", "Route": "sip:2000@10.0.0.9", "To-User": "2000",
    "To-Realm": "example.com", "To-DID": "+14155550100", "Proxy-Via": "sip:10.0.0.1",
    "Media": "auto", "Auth-User": "u", "Auth-Password": "p", "Codecs": ["PCMU"],
    "Progress-Timeout": "6", "Caller-ID-Name": "Alice", "Caller-ID-Number": "1000",
    "Caller-ID-Type": "rpid", "Weight-Cost": 1, "Weight-Location": "2", "Rate": "0.01",
    "Rate-Increment": 60, "Rate-Minimum": 60, "Surcharge": 0, "SIP-Headers": {"X-A": "b"},
    "Custom-Channel-Vars": {"Inception": "off-net"}, "Outgoing-Caller-ID-Name": "Bob",
    "Outgoing-Caller-ID-Number": "2000", "Endpoint-Timeout": 20,
    "Endpoint-Progress-Timeout": "5", "Endpoint-Delay": 0, "Timeout": 30,
    "Ignore-Early-Media": "true",
}


def raised(func, *args) -> schemas.MessageError:
    with pytest.raises(schemas.MessageError) as info:
        func(*args)
    return info.value


def test_route_req_valid_and_looked_up():
    msg = schemas.build("route_req", REQ, server_id="bridge-1")
    assert schemas.validate(msg) is msg
    assert (msg["Event-Category"], msg["Event-Name"]) == ("dialplan", "route_req")
    assert schemas.lookup("dialplan", "route_req").name == "route_req"


@pytest.mark.parametrize("media, ok", [("process", True), ("proxy", True), ("bypass", True),
                                       ("auto", False)])
def test_route_req_media_values(media, ok):
    msg = {**schemas.build("route_req", REQ), "Media": media}
    if ok:
        schemas.validate(msg)
    else:
        assert "Media: 'auto' is not one of ['process', 'proxy', 'bypass']" in \
            str(raised(schemas.validate, msg))


def test_route_req_refusals_all_at_once():
    msg = {**schemas.build("route_req", REQ), "Resource-Type": "fax", "Codecs": "PCMU",
           "Orig-Port": "x"}
    del msg["Request"]
    err = raised(schemas.validate, msg)
    assert err.message_name == "route_req"
    assert set(err.errors) == {"Request", "Resource-Type", "Codecs", "Orig-Port"}
    assert "Resource-Type: 'fax' is not one of ['audio', 'video', 'sms', 'mms', 'chat']" \
        in str(err)


def test_route_resp_bridge_with_full_route_survives_building():
    msg = schemas.build("route_resp", {"Method": "bridge", "Routes": [FULL_ROUTE],
                                       "Pre-Park": "ring_ready", "Server-ID": "whapp-q"})
    assert msg["Routes"] == [FULL_ROUTE]
    assert msg["Routes"][0] is not FULL_ROUTE  # a copy
    assert msg["Server-ID"] == "whapp-q"
    assert "Server-ID" in schemas.get("route_resp").optional


def test_route_objects_drop_unknown_keys_when_built():
    msg = schemas.build("route_resp", {"Method": "bridge", "Routes": [
        {**FULL_ROUTE, "Secret-Sauce": 1, "Bypass-Media": True}]})
    assert "Secret-Sauce" not in msg["Routes"][0]
    assert "Bypass-Media" not in msg["Routes"][0]  # an endpoint field, not a route field
    assert msg["Routes"][0]["Outgoing-Caller-ID-Name"] == "Bob"


def test_route_object_errors_name_their_path():
    routes = [FULL_ROUTE, {"To-User": "2000"}, {"Invite-Format": "sms", "Media": "proxy",
                                                "Caller-ID-Type": "ani"}, "sip:x"]
    err = raised(schemas.build, "route_resp", {"Method": "bridge", "Routes": routes})
    assert err.message_name == "route_resp"
    assert set(err.errors) == {"Routes.1.Invite-Format", "Routes.2.Invite-Format",
                               "Routes.2.Media", "Routes.2.Caller-ID-Type", "Routes.3"}
    assert "Routes.1.Invite-Format: missing" in str(err)
    assert "Routes.2.Media: 'proxy' is not one of ['process', 'bypass', 'auto']" in str(err)
    assert err.errors["Routes.3"] == ["expected a route object, got string"]


def test_route_object_types_and_secret():
    assert ROUTE.errors({**FULL_ROUTE, "Auth-Password": 1234, "Rate": "cheap"}) == {
        "Auth-Password": ["expected a string, got integer"],
        "Rate": ["expected a non-negative number or a decimal string, got string 'cheap'"]}
    for fmt in ("username", "e164", "npan", "1npan", "route", "contact"):
        assert ROUTE.fast_ok({"Invite-Format": fmt})


def test_route_resp_park_and_error():
    park = schemas.build("route_resp", {"Method": "park", "Pre-Park": "answer"})
    assert park["Method"] == "park"
    for code in (604, "604"):
        msg = schemas.build("route_resp", {"Method": "error", "Route-Error-Code": code,
                                           "Route-Error-Message": "no available handlers"})
        assert msg["Route-Error-Code"] == code
    err = raised(schemas.build, "route_resp", {"Method": "forward", "Pre-Park": "ring",
                                               "Routes": {"Invite-Format": "route"}})
    assert set(err.errors) == {"Method", "Pre-Park", "Routes"}
    assert "Routes: expected a list of route objects, got object" in str(err)


def test_route_win():
    msg = schemas.build("route_win", {"Call-ID": "c-1", "Control-Queue": "ctl-1",
                                      "Custom-Channel-Vars": {"A": 1}, "Switch-Hostname": "fs"})
    assert schemas.lookup("dialplan", "route_win").validate(msg) is msg
    err = raised(schemas.build, "route_win", {"Call-ID": "c-1"})
    assert err.errors == {"Control-Queue": ["missing"]}
