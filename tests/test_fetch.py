"""switch_bridge.freeswitch.lookups: mod_xml_curl request bodies → authn_req / route_req.

On every real body: the modern captures (``xmlcurl_*.body``, byte-exact POST bodies) and
the real bodies quoted in bob1118's comments; the older fsdocs dumps are already decoded
(PHP / colon dumps), so they are read into forms and go through the translators only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from switch_bridge.freeswitch import lookups as fetch
from switch_bridge.freeswitch.lookups import FetchError
from tests.esl_standin import fs_url_encode

NODE = "bridge@test"
SERVER_ID = "bridge.replies.1"


def modern_bodies(fixtures_dir: Path) -> list[Path]:
    bodies = sorted((fixtures_dir / "modern").glob("*/xmlcurl_*.body"))
    assert len(bodies) == 14
    return bodies


def body_of(fixtures_dir: Path, case: str, name: str) -> bytes:
    return (fixtures_dir / "modern" / case / f"{name}.body").read_bytes()


def quoted_bodies(fixtures_dir: Path) -> list[str]:
    """The real request bodies bob1118 quoted in Go comments (``// data: [...]``)."""
    found = []
    for path in sorted(fixtures_dir.glob("bob1118_*.txt")):
        for line in path.read_text().splitlines():
            match = re.fullmatch(r"// (?:data: \[)?(hostname=.*?)\]?", line)
            if match:
                found.append(match.group(1))
    return found


def dump_form(path: Path) -> dict[str, str]:
    """An fsdocs dump (``[k] => v``, ``k : v``, ``k :::: v``, ``["k"]=> "v"``) as a form."""
    form: dict[str, str] = {}
    for line in path.read_text().splitlines():
        for pattern in (r'\s*\["(.+?)"\]=>\s*"(.*)"', r"\[(.+?)\] => ?(.*)",
                        r"(\S+) :::: ?(.*)", r"(\S+) : ?(.*)"):
            match = re.fullmatch(pattern, line)
            if match:
                form.setdefault(match.group(1), match.group(2))
                break
    assert form
    return form


def form_body(pairs: list[tuple[str, str]]) -> bytes:
    """A body encoded as FreeSWITCH encodes it (``switch_url_encode``: space %20, + kept)."""
    return "&".join(f"{fs_url_encode(k)}={fs_url_encode(v)}" for k, v in pairs).encode()


# --------------------------------------------------------------------------- parse_form


def test_every_modern_body_parses_as_the_capture_decoded_it(fixtures_dir):
    for path in modern_bodies(fixtures_dir):
        raw = path.read_bytes()
        form = fetch.parse_form(raw)
        assert form["section"] in ("directory", "dialplan")
        assert len(form) == raw.count(b"&") + 1  # no key repeated, none lost
        decoded = [json.loads(line) for line in
                   (path.parent / "xmlcurl_requests.jsonl").read_text().splitlines()]
        expected = only([d["form"] for d in decoded if d["file"] == path.stem])
        assert form == expected
        assert list(form) == list(expected)  # wire order kept


def only(items: list) -> object:
    assert len(items) == 1, items
    return items[0]


def test_every_quoted_real_body_parses(fixtures_dir):
    bodies = quoted_bodies(fixtures_dir)
    assert len(bodies) >= 45
    sections = {fetch.parse_form(b.encode())["section"] for b in bodies}
    assert sections == {"configuration", "directory"}


def test_values_are_unquoted_never_unquote_plus(fixtures_dir):
    form = fetch.parse_form(body_of(fixtures_dir, "a_register_unregister",
                                    "xmlcurl_01_directory_sip_auth_REGISTER_1000"))
    assert form["Event-Date-GMT"] == "Thu, 26 Nov 2026 10:10:15 GMT"
    assert form["FreeSWITCH-IPv6"] == "fd00::2"
    assert form["sip_call_id"] == "1-12501@127.0.0.1"
    encoded = fetch.parse_form(b"section=directory&sip_auth_username=%2B14155550100&x=a+b")
    literal = fetch.parse_form(b"section=directory&sip_auth_username=+14155550100")
    assert encoded["sip_auth_username"] == literal["sip_auth_username"] == "+14155550100"
    assert encoded["x"] == "a+b" != unquote_plus("a+b")
    assert fetch.parse_form(b"a%2Bb=c%20d+e")["a+b"] == "c d+e"  # names too


def test_form_rules():
    assert fetch.parse_form(b"a=1&b=&c==x&a=2") == {"a": "1", "b": "", "c": "=x"}
    assert fetch.parse_form(b"&a=1&&b=2&") == {"a": "1", "b": "2"}  # empty pairs skipped
    assert fetch.parse_form(b"a=1&b=2\r\n") == {"a": "1", "b": "2"}  # a client's last newline
    assert fetch.parse_form(b"a=%0A%00x") == {"a": "\n\x00x"}
    assert fetch.parse_form(b"a=%zz%4") == {"a": "%zz%4"}  # a broken escape stays text
    assert fetch.parse_form(b"n=Zo%C3%AB") == {"n": "Zoë"}
    # not UTF-8, escaped or raw: replaced, the rest of the lookup goes on
    assert fetch.parse_form(b"n=Zo%EB&u=1000") == {"n": "Zo\ufffd", "u": "1000"}
    assert fetch.parse_form(b"n=Zo\xeb&u=1000") == {"n": "Zo\ufffd", "u": "1000"}
    assert fetch.parse_form("n=Zoë") == {"n": "Zoë"}
    assert fetch.parse_form(bytearray(b"a=1")) == fetch.parse_form(memoryview(b"a=1")) == \
        {"a": "1"}


@pytest.mark.parametrize(("body", "message"), [
    (b"", "empty form body"),
    (b" \r\n", "empty form body"),
    (b"&&&", "no name=value pair"),
    (b"section=directory&user", "form pair 2 has no '=': 'user'"),
    (b'{"section": "directory"}', "form pair 1 has no '='"),
    (b"a=1&=2", "form pair 2 has an empty name: '=2'"),
    (b"a=" + b"x" * fetch.MAX_FORM_BYTES, "over the 1048576-byte limit"),
    (b"a=1&" + b"y" * 100, "form pair 2 has no '=': 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy'..."),
])
def test_malformed_bodies_are_refused_precisely(body, message):
    with pytest.raises(FetchError) as info:
        fetch.parse_form(body)
    assert message in str(info.value)
    assert len(str(info.value)) < 120  # a log line, never the whole body
    assert isinstance(info.value, ValueError)


def test_a_body_of_the_wrong_type_is_refused():
    with pytest.raises(FetchError, match="must be bytes, not dict"):
        fetch.parse_form({"a": "1"})


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_give_a_form_or_fetch_error(body):
    try:
        form = fetch.parse_form(body)
    except FetchError:
        return
    assert form and all(isinstance(k, str) and k and isinstance(v, str) for k, v in form.items())


@settings(max_examples=300)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=40)),
                min_size=1, max_size=12))
def test_freeswitch_encoding_round_trips(pairs):
    """Any names and values, encoded as FreeSWITCH does, come back; first of a name wins."""
    expected: dict[str, str] = {}
    for name, value in pairs:
        expected.setdefault(name, value)
    assert fetch.parse_form(form_body(pairs)) == expected


# --------------------------------------------------------------------------- directory


@pytest.mark.parametrize(("name", "kind"), [
    ("fsdocs_xml_curl_req_directory_action_message_count_2009_php_dump.txt", "message-count"),
    ("fsdocs_xml_curl_req_directory_purpose_gateways_2009_php_dump.txt", "gateways"),
    ("fsdocs_xml_curl_req_directory_purpose_gateways_2012_colon_dump.txt", "gateways"),
    ("fsdocs_xml_curl_req_directory_purpose_network_list_2012_colon_dump.txt", "network-list"),
    ("fsdocs_xml_curl_req_directory_reverse_auth_lookup_php_var_dump.txt",
     "reverse-auth-lookup"),
    ("fsdocs_xml_curl_req_directory_sip_auth_REGISTER_2009_php_dump.txt", "sip_auth"),
])
def test_directory_kind_of_the_fsdocs_dumps(fixtures_dir, name, kind):
    assert fetch.directory_kind(dump_form(fixtures_dir / name)) == kind


def test_directory_kinds_of_real_bodies(fixtures_dir):
    kinds = []
    for path in modern_bodies(fixtures_dir):
        form = fetch.parse_form(path.read_bytes())
        if form["section"] == "directory":
            kind = fetch.directory_kind(form)
            assert f"_directory_{kind}_" in path.stem  # the capture named its kind
            kinds.append(kind)
    assert set(kinds) == {"sip_auth", "user_call"}
    quoted = [fetch.parse_form(b.encode()) for b in quoted_bodies(fixtures_dir)]
    kinds = [fetch.directory_kind(f) for f in quoted if f["section"] == "directory"]
    assert sorted(set(kinds)) == ["gateways", "message-count", "network-list", "sip_auth"]
    assert set(fetch.DIRECTORY_KINDS) >= set(kinds)
    assert fetch.directory_kind({"section": "directory", "action": "voicemail-lookup"}) == \
        "other"
    assert fetch.directory_kind({"section": "directory"}) == "other"


def test_user_call_is_not_an_authn_req(fixtures_dir):
    form = fetch.parse_form(body_of(fixtures_dir, "d_call_1001_bridge",
                                    "xmlcurl_04_directory_user_call_1001"))
    assert fetch.directory_kind(form) == "user_call"
    with pytest.raises(FetchError, match="directory fetch is 'user_call', not a sip_auth"):
        fetch.authn_req(form, server_id=SERVER_ID, node=NODE)


@pytest.mark.parametrize(("case", "name", "method", "to_user", "port"), [
    ("a_register_unregister", "xmlcurl_01_directory_sip_auth_REGISTER_1000", "REGISTER",
     "1000", 5070),
    ("d_call_1001_bridge", "xmlcurl_01_directory_sip_auth_REGISTER_1001", "REGISTER",
     "1001", 5071),
    ("c_call_2000_tone_park", "xmlcurl_01_directory_sip_auth_INVITE_1000", "INVITE",
     "2000", 5070),
    ("e_call_9999_busy", "xmlcurl_01_directory_sip_auth_INVITE_1000", "INVITE", "9999", 5070),
])
def test_sip_auth_bodies_become_authn_req(fixtures_dir, case, name, method, to_user, port):
    form = fetch.parse_form(body_of(fixtures_dir, case, name))
    msg = fetch.authn_req(form, server_id=SERVER_ID, node=NODE)
    assert schemas.validate(msg) is msg
    assert (msg["Event-Category"], msg["Event-Name"]) == ("directory", "authn_req")
    assert (msg["Server-ID"], msg["Node"]) == (SERVER_ID, NODE)
    user = form["sip_auth_username"]
    assert (msg["Auth-Realm"], msg["Auth-User"]) == ("127.0.0.1", user)
    assert msg["From"] == f"{user}@127.0.0.1"
    assert msg["To"] == f"{to_user}@127.0.0.1"
    assert msg["Contact"] == f"{user}@127.0.0.1"
    assert msg["Method"] == method
    assert msg["Auth-Nonce"] == form["sip_auth_nonce"]
    assert msg["Auth-Response"] == form["sip_auth_response"]
    assert msg["Call-ID"] == form["sip_call_id"] and "@" in msg["Call-ID"]
    assert (msg["Orig-IP"], msg["Orig-Port"]) == ("127.0.0.1", port)
    assert (msg["Switch-Hostname"], msg["User-Agent"]) == ("vm", "sipp-capture")
    assert "Expires" not in msg  # FreeSWITCH does not send one


def test_authn_req_of_quoted_and_dumped_bodies(fixtures_dir):
    quoted = [fetch.parse_form(b.encode()) for b in quoted_bodies(fixtures_dir)]
    auths = [f for f in quoted if fetch.directory_kind(f) == "sip_auth"]
    methods = []
    for form in auths:
        msg = fetch.authn_req(form, server_id=SERVER_ID, node=NODE)
        schemas.validate(msg)
        assert (msg["Auth-User"], msg["Auth-Realm"]) == ("1000", "10.10.10.25")
        methods.append(msg["Method"])
    assert sorted(methods) == ["INVITE", "REGISTER", "REGISTER", "SUBSCRIBE"]
    dumped = dump_form(fixtures_dir /
                       "fsdocs_xml_curl_req_directory_sip_auth_REGISTER_2009_php_dump.txt")
    msg = fetch.authn_req(dumped, server_id=None, node=NODE)
    schemas.validate(msg)
    assert "Server-ID" not in msg
    assert msg["User-Agent"] == "PolycomSoundPointIP-SPIP_320-UA/3.1.0.0084"
    assert (msg["To"], msg["Contact"], msg["Orig-IP"]) == \
        ("1004@domain1.awesomevoipdomain.faketld", "1004@192.168.1.100", "192.168.1.100")


def test_authn_req_plus_user_and_fallbacks():
    for raw in (b"%2B14155550100", b"+14155550100"):
        form = fetch.parse_form(b"section=directory&action=sip_auth&sip_auth_username=" + raw
                                + b"&sip_auth_realm=Example.COM&sip_auth_method=register"
                                + b"&client_port=50x0&expires=600")
        msg = fetch.authn_req(form, server_id=SERVER_ID, node=NODE)
        schemas.validate(msg)
        assert msg["Auth-User"] == "+14155550100"
        assert msg["Auth-Realm"] == "Example.COM"  # as sent: the registrar lower-cases
        assert msg["From"] == msg["To"] == "+14155550100@Example.COM"
        assert msg["Method"] == "REGISTER"
        assert msg["Expires"] == 600
        assert "Orig-Port" not in msg  # not a number: left out, not made invalid
    form = {"action": "sip_auth", "user": "1000", "domain": "d.com", "sip_auth_method": "FOO"}
    msg = fetch.authn_req(form, server_id=SERVER_ID, node=NODE)
    assert (msg["Auth-User"], msg["Auth-Realm"]) == ("1000", "d.com")
    assert "Method" not in msg
    with pytest.raises(FetchError, match="without sip_auth_realm or domain"):
        fetch.authn_req({"action": "sip_auth", "user": "1000"}, server_id=None, node=NODE)
    with pytest.raises(FetchError, match="without sip_auth_username or user"):
        fetch.authn_req({"action": "sip_auth", "domain": "d"}, server_id=None, node=NODE)


# --------------------------------------------------------------------------- dialplan


@pytest.mark.parametrize(("case", "name", "dest"), [
    ("c_call_2000_tone_park", "xmlcurl_02_dialplan_default_2000", "2000"),
    ("d_call_1001_bridge", "xmlcurl_03_dialplan_default_1001", "1001"),
    ("e_call_9999_busy", "xmlcurl_02_dialplan_default_9999", "9999"),
    ("f_esl_bgapi_sendmsg", "xmlcurl_02_dialplan_default_2000", "2000"),
])
def test_sip_dialplan_bodies_become_route_req(fixtures_dir, case, name, dest):
    form = fetch.parse_form(body_of(fixtures_dir, case, name))
    msg = fetch.route_req(form, server_id=SERVER_ID, node=NODE)
    assert schemas.validate(msg) is msg
    assert (msg["Event-Category"], msg["Event-Name"]) == ("dialplan", "route_req")
    assert msg["Call-ID"] == form["Unique-ID"]
    assert msg["Request"] == msg["To"] == f"{dest}@127.0.0.1"
    assert msg["From"] == "1000@127.0.0.1"
    assert msg["Destination-Number"] == dest
    assert (msg["Caller-ID-Name"], msg["Caller-ID-Number"]) == ("1000", "1000")
    assert (msg["Orig-IP"], msg["Orig-Port"], msg["From-Network-Addr"]) == \
        ("127.0.0.1", 5070, "127.0.0.1")
    assert (msg["User-Agent"], msg["Context"], msg["Call-Direction"]) == \
        ("sipp-capture", "default", "inbound")
    assert (msg["Switch-Hostname"], msg["Switch-Nodename"]) == ("vm", "vm")
    assert msg["Resource-Type"] == "audio"
    assert "Custom-Channel-Vars" not in msg and "Custom-SIP-Headers" not in msg
    assert fetch.call_context(form) == {"context": "default", "destination": dest,
                                        "profile": "internal", "call_id": form["Unique-ID"],
                                        "node": "vm"}


def test_loopback_dialplan_body(fixtures_dir):
    """A loopback leg carries no SIP request: the realm falls back to DEFAULT_REALM."""
    form = fetch.parse_form(body_of(fixtures_dir, "f_esl_bgapi_sendmsg",
                                    "xmlcurl_03_dialplan_default_2000"))
    assert form["Channel-Name"] == "loopback/2000-b"
    msg = fetch.route_req(form, server_id=SERVER_ID, node=NODE, switch_nodename="freeswitch@vm")
    schemas.validate(msg)
    assert msg["Request"] == msg["To"] == f"2000@{fetch.DEFAULT_REALM}"
    assert msg["From"] == f"0000000000@{fetch.DEFAULT_REALM}"
    assert msg["Switch-Nodename"] == "freeswitch@vm"
    assert "Caller-ID-Name" not in msg and "Orig-IP" not in msg
    # the channel's own Realm (set by a whapp on the originating leg) wins over the default
    with_realm = {**form, "variable_ecallmgr_Realm": "example.com",
                  "variable_ecallmgr_Account-ID": "acc"}
    msg = fetch.route_req(with_realm, server_id=SERVER_ID, node=NODE)
    assert msg["Request"] == "2000@example.com"
    assert msg["Custom-Channel-Vars"] == {"Realm": "example.com", "Account-ID": "acc"}
    assert fetch.call_context(form)["profile"] == fetch.DEFAULT_PROFILE


def test_route_req_custom_vars_and_sip_headers(fixtures_dir):
    raw = body_of(fixtures_dir, "c_call_2000_tone_park", "xmlcurl_02_dialplan_default_2000")
    extra = form_body([("variable_ecallmgr_Account-ID", "a" * 32),
                       ("variable_ecallmgr_Inception", "on-net"),
                       ("variable_ecallmgr_Caller Name", "Zoë + co"),
                       ("variable_sip_h_X-Tenant", "t 1"),
                       ("variable_sip_h_X-Gone", "_undef_"),
                       ("variable_sip_req_host", "ignored: repeated names keep the first")])
    form = fetch.parse_form(raw + b"&" + extra)
    msg = fetch.route_req(form, server_id=SERVER_ID, node=NODE)
    schemas.validate(msg)
    assert msg["Custom-Channel-Vars"] == {"Account-ID": "a" * 32, "Inception": "on-net",
                                          "Caller Name": "Zoë + co"}
    assert msg["Custom-SIP-Headers"] == {"X-Tenant": "t 1"}
    assert msg["Request"] == "2000@127.0.0.1"


def test_route_req_hunt_wins_and_request_host_falls_back():
    form = {"Unique-ID": "u", "Caller-Destination-Number": "100", "Hunt-Destination-Number":
            "+14155550100", "variable_sip_to_user": "100", "variable_sip_to_host": "to.example",
            "Caller-Context": "default", "Hunt-Context": "from-trunk"}
    msg = fetch.route_req(form, server_id=SERVER_ID, node=NODE)
    schemas.validate(msg)
    assert msg["Request"] == "+14155550100@to.example"  # no sip_req_host: the To's domain
    assert msg["To"] == "100@to.example"
    assert msg["From"] == "unknown@to.example"
    assert (msg["Destination-Number"], msg["Context"]) == ("+14155550100", "from-trunk")
    ctx = fetch.call_context(form)
    assert (ctx["context"], ctx["destination"], ctx["node"]) == \
        ("from-trunk", "+14155550100", None)


def test_route_req_refusals():
    with pytest.raises(FetchError, match="without Unique-ID"):
        fetch.route_req({"Caller-Destination-Number": "1"}, server_id=None, node=NODE)
    with pytest.raises(FetchError, match="without Hunt-Destination-Number"):
        fetch.route_req({"Unique-ID": "u", "Caller-Destination-Number": "_undef_"},
                        server_id=None, node=NODE)
    assert fetch.call_context({}) == {"context": "default", "destination": None,
                                      "profile": "internal", "call_id": None, "node": None}


def test_dialplan_dump_of_2008(fixtures_dir):
    form = dump_form(fixtures_dir / "fsdocs_xml_curl_req_dialplan_2008_snom360_4colon_dump.txt")
    msg = fetch.route_req(form, server_id=SERVER_ID, node=NODE)
    schemas.validate(msg)
    assert msg["Request"] == "9999@192.168.0.9"
    assert msg["From"] == "800@192.168.0.9"
    assert (msg["Caller-ID-Name"], msg["User-Agent"]) == ("Work", "snom360/7.1.33")
    assert msg["Custom-SIP-Headers"] == {"P-Key-Flags": 'resolution="31x13", keys="4"'}
    assert (msg["Switch-Hostname"], msg["Orig-Port"]) == ("frog", 2048)
