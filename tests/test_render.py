"""The XML answers, read the way FreeSWITCH reads them, next to the real captured answers.

``fs_user`` and ``fs_hunt`` follow what FreeSWITCH does with an answer: the directory
lookup (``switch_xml_locate_user``: domain by name, the user by id directly under the
domain or under ``groups/group/users``, its ``params`` and ``variables``) and
``mod_dialplan_xml`` (the context named like the caller's context, extensions in order, a
condition without ``field`` always true, ``continue="true"`` goes on to the next
extension). Both are first checked on FreeSWITCH's own answers from
tests/fixtures/freeswitch/modern, then applied to ours.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from switch_bridge.freeswitch import render
from tests.test_dialstring import fs_expand, fs_run_dial

CALL = {"context": "default", "destination": "1001", "profile": "internal",
        "call_id": "c-1"}
CONTACT = "sip:1001@127.0.0.1:5071;transport=UDP"
BASE_SETS = [("set", "hangup_after_bridge=true"),
             ("set", "failure_causes=NORMAL_CLEARING,ORIGINATOR_CANCEL,CRASH")]


def parse(xml: bytes) -> ET.Element:
    assert isinstance(xml, bytes)
    text = xml.decode("utf-8")
    assert "$" not in text and "<?" not in text and "<!--" not in text
    return ET.fromstring(xml)


def shape(elem: ET.Element) -> tuple:
    return (elem.tag, tuple(sorted(elem.attrib)), tuple(shape(child) for child in elem))


def paths(elem: ET.Element, prefix: str = "") -> set[str]:
    """Every element path of a document (its skeleton, whatever the counts)."""
    here = f"{prefix}/{elem.tag}"
    return {here}.union(*(paths(child, here) for child in elem))


def fs_user(root: ET.Element, realm: str, user: str) -> dict | None:
    section = root.find("section[@name='directory']")
    if section is None:
        return None
    for domain in section.findall("domain"):
        if domain.get("name") != realm:
            continue
        for candidate in [*domain.findall("user"), *domain.findall("groups/group/users/user")]:
            if candidate.get("id") == user:
                return {
                    "params": {p.get("name"): p.get("value")
                               for p in candidate.findall("params/param")},
                    "variables": {v.get("name"): v.get("value")
                                  for v in candidate.findall("variables/variable")},
                    "cacheable": candidate.get("cacheable"),
                }
    return None


def fs_hunt(root: ET.Element, context: str, destination: str) -> list[tuple[str, str | None]]:
    actions: list[tuple[str, str | None]] = []
    found = [c for c in root.findall("section[@name='dialplan']/context")
             if c.get("name") == context]
    for extension in found[0].findall("extension") if found else []:
        matched = False
        for condition in extension.findall("condition"):
            field = condition.get("field")
            if field is not None:
                value = destination if field == "destination_number" else ""
                if not re.search(condition.get("expression", ""), value):
                    break
            matched = True
            actions += [(a.get("application"), a.get("data"))
                        for a in condition.findall("action")]
        if matched and extension.get("continue") != "true":
            break
    return actions


# -- not found -------------------------------------------------------------------------

def test_not_found_has_the_shape_of_freeswitchs_own(fixtures_dir):
    ours = parse(render.not_found())
    theirs = ET.parse(fixtures_dir / "fsdocs_xml_curl_resp_not_found.xml").getroot()
    assert shape(ours) == shape(theirs)
    assert ours.find("section/result").attrib == {"status": "not found"}
    assert ours.find("section").get("name") == "result"


# -- directory -------------------------------------------------------------------------

def test_password_user_reads_like_the_captured_answer(fixtures_dir):
    path = (fixtures_dir / "modern/a_register_unregister"
            / "xmlcurl_01_directory_sip_auth_REGISTER_1000.answer.xml")
    theirs = fs_user(ET.parse(path).getroot(), "127.0.0.1", "1000")
    assert theirs is not None and theirs["params"] == {"password": "secret1000"}
    ours_xml = render.directory_user("127.0.0.1", "1000", method="password",
                                     secret="secret1000",
                                     variables={"Account-ID": "acc1", "Inception": "on-net"})
    ours = fs_user(parse(ours_xml), "127.0.0.1", "1000")
    assert ours == {"params": theirs["params"],
                    "variables": {"ecallmgr_Account-ID": "acc1", "ecallmgr_Inception": "on-net"},
                    "cacheable": None}
    assert fs_user(parse(ours_xml), "127.0.0.1", "1001") is None
    assert fs_user(parse(ours_xml), "example.com", "1000") is None


def test_a1_hash_user_reads_like_the_captured_answer(fixtures_dir):
    path = (fixtures_dir / "modern/d_call_1001_bridge"
            / "xmlcurl_01_directory_sip_auth_REGISTER_1001.answer.xml")
    theirs = fs_user(ET.parse(path).getroot(), "127.0.0.1", "1001")
    digest = theirs["params"]["a1-hash"]
    ours = fs_user(parse(render.directory_user("127.0.0.1", "1001", method="a1-hash",
                                               secret=digest, variables={})),
                   "127.0.0.1", "1001")
    assert ours == {"params": {"a1-hash": digest}, "variables": {}, "cacheable": None}


def test_directory_shape_matches_the_documented_cacheable_answer(fixtures_dir):
    theirs = ET.parse(fixtures_dir / "fsdocs_xml_curl_resp_directory_user_a1hash_cacheable.xml")
    ours = parse(render.directory_user("domain-name", "1002", method="a1-hash",
                                       secret="50046ba744759aa83e045ba0b996e7a9",
                                       variables={"Owner-ID": "o1"}, cacheable_ms=60000))
    assert paths(ours) == paths(theirs.getroot())
    assert sorted(ours.find("section/domain/user").attrib) == \
        sorted(theirs.getroot().find("section/domain/user").attrib) == ["cacheable", "id"]
    user = fs_user(ours, "domain-name", "1002")
    assert user == {"params": {"a1-hash": "50046ba744759aa83e045ba0b996e7a9"},
                    "variables": {"ecallmgr_Owner-ID": "o1"}, "cacheable": "60000"}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": "ip", "secret": "x"}, "Auth-Method"),
    ({"method": "error", "secret": "x"}, "Auth-Method"),
    ({"method": "password", "secret": ""}, "secret"),
    ({"method": "password", "secret": "x", "cacheable_ms": 0}, "cacheable"),
    ({"method": "password", "secret": "x", "cacheable_ms": True}, "cacheable"),
])
def test_directory_refuses_what_freeswitch_cannot_use(kwargs, match):
    with pytest.raises(ValueError, match=match):
        render.directory_user("r", "u", variables={}, **kwargs)


# -- dialplan: the reader, on FreeSWITCH's own answers -------------------------------------

@pytest.mark.parametrize(("case", "destination", "want"), [
    ("d_call_1001_bridge/xmlcurl_03_dialplan_default_1001", "1001",
     [("bridge", "user/1001@127.0.0.1")]),
    ("e_call_9999_busy/xmlcurl_02_dialplan_default_9999", "9999", [("respond", "486 Busy Here")]),
    ("c_call_2000_tone_park/xmlcurl_02_dialplan_default_2000", "2000",
     [("answer", None), ("playback", "tone_stream://%(200,0,440)"), ("park", None)]),
])
def test_the_hunt_model_reads_the_captured_dialplans(fixtures_dir, case, destination, want):
    root = ET.parse(fixtures_dir / "modern" / f"{case}.answer.xml").getroot()
    assert fs_hunt(root, "default", destination) == want
    assert fs_hunt(root, "default", "0000") == []
    assert fs_hunt(root, "public", destination) == []


def _same_skeleton(ours: ET.Element, theirs: ET.Element) -> None:
    """document/section/context/extension/condition/action, as in FreeSWITCH's answers."""
    assert paths(ours) == paths(theirs)
    assert ours.get("type") == theirs.get("type") == "freeswitch/xml"


# -- dialplan: ours ----------------------------------------------------------------------

TWO_ROUTES = {
    "Method": "bridge",
    "Custom-Channel-Vars": {"Account-ID": "acc1"},
    "Routes": [
        {"Invite-Format": "username", "Route": CONTACT, "To-User": "1001",
         "Caller-ID-Name": "Alice", "Caller-ID-Number": "1000"},
        {"Invite-Format": "e164", "Route": "sip:carrier.example.net", "To-DID": "4155550100",
         "Media": "bypass", "SIP-Headers": {"X-Account": "acc1"},
         "Custom-Channel-Vars": {"Carrier": "c1"}},
    ],
}


def test_bridge_with_two_routes(fixtures_dir):
    root = parse(render.dialplan(TWO_ROUTES, CALL))
    theirs = ET.parse(fixtures_dir / "modern/d_call_1001_bridge/"
                      "xmlcurl_03_dialplan_default_1001.answer.xml").getroot()
    _same_skeleton(root, theirs)
    extensions = root.findall("section/context/extension")
    assert [(e.get("name"), e.get("continue")) for e in extensions] == [
        ("route_1", "true"), ("route_2", "true"), ("bridge_failed", None)]
    actions = fs_hunt(root, "default", "1001")
    assert [app for app, _ in actions] == ["set", "set", "set", "bridge"] * 2 + ["respond"]
    assert actions[0:3] == [*BASE_SETS, ("set", "bypass_media=false")]
    assert actions[4:7] == [*BASE_SETS, ("set", "bypass_media=true")]
    assert actions[8] == ("respond", "${bridge_hangup_cause}")
    assert fs_expand(actions[8][1])[1] == ["bridge_hangup_cause"]

    first, second = fs_run_dial(actions[3][1]), fs_run_dial(actions[7][1])
    for parsed in (first, second):
        assert parsed["globals"] == {"ecallmgr_Account-ID": "acc1", "progress_timeout": "6"}
        assert len(parsed["groups"]) == 1 and len(parsed["groups"][0]) == 1
    leg1, leg2 = first["groups"][0][0], second["groups"][0][0]
    assert (leg1["type"], leg1["data"]) == ("sofia", f"internal/{CONTACT}")
    assert leg1["vars"] == {"effective_caller_id_name": "Alice",
                            "effective_caller_id_number": "1000"}
    assert (leg2["type"], leg2["data"]) == \
        ("sofia", "internal/sip:+14155550100@carrier.example.net")
    assert leg2["vars"] == {"sip_h_X-Account": "acc1", "ecallmgr_Carrier": "c1"}


def test_bridge_uses_the_inbound_profile_and_ringback():
    answer = {**TWO_ROUTES, "Routes": TWO_ROUTES["Routes"][:1],
              "Ringback-Media": "%(2000,4000,440,480)",
              "Transfer-Media": "tone_stream://%(1000,0,350)"}
    root = parse(render.dialplan(answer, {**CALL, "profile": "external"}))
    actions = fs_hunt(root, "default", "1001")
    assert actions[3:5] == [("set", "ringback=%(2000,4000,440,480)"),
                            ("set", "transfer_ringback=tone_stream://%(1000,0,350)")]
    assert fs_run_dial(actions[5][1])["groups"][0][0]["data"].startswith("external/sip:1001@")


def test_an_undiallable_route_is_skipped_and_counted():
    answer = {"Method": "bridge", "Routes": [
        {"Invite-Format": "route", "Route": "sip:a@h|sofia/gateway/evil/900"},
        {"Invite-Format": "route", "Route": "sip:2@10.0.0.2"}]}
    before = render.STATS["routes_skipped"]
    actions = fs_hunt(parse(render.dialplan(answer, CALL)), "default", "x")
    assert render.STATS["routes_skipped"] == before + 1
    bridges = [fs_run_dial(data) for app, data in actions if app == "bridge"]
    assert [b["groups"][0][0]["data"] for b in bridges] == ["internal/sip:2@10.0.0.2"]


@pytest.mark.parametrize("answer", [
    {"Method": "bridge"}, {"Method": "bridge", "Routes": []},
    {"Method": "bridge", "Routes": [{"Invite-Format": "route", "Route": "tel:1"}]},
    {"Method": "transfer"}, {},
    {"Method": "park", "Pre-Park": "ring"},
    {"Method": "error", "Route-Error-Code": "abc"},
    {"Method": "error", "Route-Error-Code": 99},
])
def test_answers_that_cannot_be_rendered_raise_value_error(answer):
    with pytest.raises(ValueError):
        render.dialplan(answer, CALL)


def test_park_with_pre_park_answer(fixtures_dir):
    answer = {"Method": "park", "Pre-Park": "answer",
              "Custom-Channel-Vars": {"Account-ID": "acc1", "Authorizing-ID": "dev1"}}
    root = parse(render.dialplan(answer, CALL))
    theirs = ET.parse(fixtures_dir / "modern/c_call_2000_tone_park/"
                      "xmlcurl_02_dialplan_default_2000.answer.xml").getroot()
    _same_skeleton(root, theirs)
    assert fs_hunt(root, "default", "2000") == [
        ("set", "ecallmgr_Account-ID=acc1"), ("set", "ecallmgr_Authorizing-ID=dev1"),
        ("answer", None), ("park", None)]


@pytest.mark.parametrize(("pre_park", "want"), [
    (None, [("park", None)]), ("none", [("park", None)]),
    ("ring_ready", [("ring_ready", None), ("park", None)]),
])
def test_park_pre_park_variants(pre_park, want):
    answer = {"Method": "park", **({"Pre-Park": pre_park} if pre_park else {})}
    assert fs_hunt(parse(render.dialplan(answer, CALL)), "default", "x") == want


def test_error_responds_with_code_and_message(fixtures_dir):
    root = parse(render.dialplan({"Method": "error", "Route-Error-Code": 486,
                                  "Route-Error-Message": "Busy Here"}, CALL))
    theirs = ET.parse(fixtures_dir / "modern/e_call_9999_busy/"
                      "xmlcurl_02_dialplan_default_9999.answer.xml").getroot()
    _same_skeleton(root, theirs)
    assert fs_hunt(root, "default", "9999") == fs_hunt(theirs, "default", "9999") == \
        [("respond", "486 Busy Here")]


def test_error_defaults_and_line_breaks():
    def respond(answer: dict) -> list:
        return fs_hunt(parse(render.dialplan(answer, CALL)), "default", "x")
    assert respond({"Method": "error"}) == [("respond", "500")]
    assert respond({"Method": "error", "Route-Error-Code": "404"}) == [("respond", "404")]
    assert respond({"Method": "error", "Route-Error-Code": 480,
                    "Route-Error-Message": "Temporarily\r\nX-Evil: yes\t"}) == \
        [("respond", "480 Temporarily  X-Evil: yes")]


def test_no_handler_is_604():
    root = parse(render.dialplan_no_handler(CALL))
    assert fs_hunt(root, "default", "x") == [("respond", "604 no available handlers")]
    assert parse(render.dialplan_error(603, "Decline", CALL)) is not None
    with pytest.raises(ValueError):
        render.dialplan_error(700, "x", CALL)


def test_the_context_is_the_callers():
    call = {**CALL, "context": "from-carrier"}
    for xml in (render.dialplan(TWO_ROUTES, call), render.dialplan({"Method": "park"}, call),
                render.dialplan_no_handler(call)):
        root = parse(xml)
        assert [c.get("name") for c in root.findall("section/context")] == ["from-carrier"]
        assert fs_hunt(root, "from-carrier", "1001") != []
        assert fs_hunt(root, "default", "1001") == []


def test_missing_context_and_profile_fall_back_to_freeswitch_defaults():
    root = parse(render.dialplan(TWO_ROUTES, {}))
    actions = fs_hunt(root, "default", "1001")
    assert fs_run_dial(actions[3][1])["groups"][0][0]["data"].startswith("internal/")
