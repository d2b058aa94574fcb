"""schemas.authn: authn_req / authn_resp / authn_err (Event-Category directory)."""

from __future__ import annotations

import json

import pytest

import schemas

REQ = {
    "Auth-Realm": "example.com", "Auth-User": "1000", "From": "sip:1000@example.com",
    "To": "sip:1000@example.com", "Auth-Nonce": "65652c8b", "Auth-Response": "45d1b32b",
    "Call-ID": "1-12501@127.0.0.1", "Contact": "<sip:1000@127.0.0.1:5070>", "Expires": "3600",
    "Method": "REGISTER", "Orig-IP": "127.0.0.1", "Orig-Port": "5070",
    "Switch-Hostname": "fs1", "User-Agent": "sipp", "Custom-SIP-Headers": {"X-Test": "1"},
}


def raised(func, *args) -> schemas.MessageError:
    with pytest.raises(schemas.MessageError) as info:
        func(*args)
    return info.value


def test_full_authn_req_is_valid():
    msg = schemas.build("authn_req", REQ, server_id="bridge-1")
    assert schemas.validate(msg) is msg
    assert {k: msg[k] for k in REQ} == REQ
    assert schemas.lookup("directory", "authn_req") is schemas.get("authn_req")


def test_authn_req_from_real_freeswitch_sip_auth_requests(fixtures_dir):
    """The form fields FreeSWITCH posts for a digest challenge fit authn_req as they are."""
    seen = 0
    for path in sorted((fixtures_dir / "modern").glob("*/xmlcurl_requests.jsonl")):
        for line in path.read_text().splitlines():
            form = json.loads(line)["form"]
            if form.get("action") != "sip_auth":
                continue
            msg = schemas.build("authn_req", {
                "Auth-Realm": form["sip_auth_realm"], "Auth-User": form["sip_auth_username"],
                "From": f"{form['sip_from_user']}@{form['sip_from_host']}",
                "To": f"{form['sip_to_user']}@{form['sip_to_host']}",
                "Auth-Nonce": form.get("sip_auth_nonce"),
                "Auth-Response": form.get("sip_auth_response"),
                "Method": form.get("sip_auth_method"), "Call-ID": form.get("sip_call_id"),
                "Orig-IP": form.get("ip"), "Orig-Port": form.get("client_port"),
                "User-Agent": form.get("sip_user_agent"), "Switch-Hostname": form["hostname"],
            })
            assert msg["Method"] in ("REGISTER", "INVITE", "SUBSCRIBE")
            seen += 1
    assert seen >= 2


def test_missing_required_names_message_and_field():
    msg = schemas.build("authn_req", REQ)
    del msg["To"]
    err = raised(schemas.validate, msg)
    assert err.message_name == "authn_req"
    assert err.errors == {"To": ["missing"]}
    assert str(err) == "authn_req: To: missing"


def test_disallowed_method_and_wrong_types():
    msg = schemas.build("authn_req", REQ)
    err = raised(schemas.validate, {**msg, "Method": "FOO"})
    assert str(err).startswith("authn_req: Method: 'FOO' is not one of ['REGISTER', ")
    err = raised(schemas.validate, {**msg, "Orig-Port": "50x0"})
    assert list(err.errors) == ["Orig-Port"]
    err = raised(schemas.validate, {**msg, "Custom-SIP-Headers": {"X-A": {"nested": 1}}})
    assert list(err.errors) == ["Custom-SIP-Headers.X-A"]
    err = raised(schemas.validate, {**msg, "Auth-User": 1000})
    assert err.errors == {"Auth-User": ["expected a string, got integer 1000"]}


def test_every_bad_field_at_once():
    bad = {**schemas.build("authn_req", REQ), "Method": "FOO", "Expires": -1, "Orig-IP": None,
           "Auth-Realm": None, "From": ["x"]}
    err = raised(schemas.validate, bad)
    assert set(err.errors) == {"Method", "Expires", "Auth-Realm", "From"}
    for field in err.errors:
        assert f"{field}: " in str(err)


def test_builder_drops_unknown_keys():
    msg = schemas.build("authn_req", {**REQ, "sip_auth_qop": "auth", "Password": "x"})
    assert "sip_auth_qop" not in msg and "Password" not in msg


@pytest.mark.parametrize("method", ["password", "ip", "a1-hash", "error"])
def test_authn_resp_auth_methods(method):
    msg = schemas.build("authn_resp", {
        "Auth-Method": method, "Auth-Password": "secret", "Expires": 300,
        "Suppress-Unregister-Notifications": "false", "Register-Overwrite-Notify": True,
        "Custom-Channel-Vars": {"Username": "1000", "Realm": "example.com",
                                "Account-ID": "a" * 32, "Authorizing-ID": "d" * 32,
                                "Inception": "on-net"},
        "Access-Group": "g", "Tenant-ID": "t", "Auth-Username": "1000",
    })
    assert msg["Auth-Method"] == method and msg["Custom-Channel-Vars"]["Inception"] == "on-net"


def test_authn_resp_refusals():
    good = schemas.build("authn_resp", {"Auth-Method": "password", "Auth-Password": "pw"})
    err = raised(schemas.validate, {**good, "Auth-Method": "digest",
                                    "Suppress-Unregister-Notifications": "yes",
                                    "Custom-Channel-Vars": "Username=1000"})
    assert set(err.errors) == {"Auth-Method", "Suppress-Unregister-Notifications",
                               "Custom-Channel-Vars"}
    assert "pw" not in str(err)
    err = raised(schemas.build, "authn_resp", {"Auth-Method": "password"})
    assert err.errors == {"Auth-Password": ["missing"]}


def test_authn_err_needs_nothing_but_headers():
    msg = schemas.build("authn_err", {"Defer-Response": True, "Auth-Password": "dropped"})
    assert msg["Event-Name"] == "authn_err" and msg["Event-Category"] == "directory"
    assert "Auth-Password" not in msg
    assert schemas.get("authn_err").required == ()
