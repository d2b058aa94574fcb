"""Hostile values in every field that reaches the XML: the answer keeps its exact shape.

For each generated answer the output must

- survive FreeSWITCH's preprocessor untouched (``fs_preprocess``: no raw ``$`` at all, no
  line it would drop or run: ``<include>``, ``<?``, ``X-pre-process``, ``<!--#``);
- parse as XML, to exactly the intended elements (the ``<action>`` count and
  applications included), and decode the same with ElementTree and with a model of
  FreeSWITCH's own attribute decoder (``fs_attr_decode``, from ``switch_xml_decode``);
- give every attribute its intended value once the documented lossy rules are applied;
- after FreeSWITCH's expander (``fs_expand``, run once per expansion FreeSWITCH does),
  expand nothing but the ``${originate_disposition}`` we write ourselves, and give the
  dial strings' variables their intended values (``fs_originate``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch_bridge.freeswitch import render
from tests.test_dialstring import (
    UNSAFE,
    expected_value,
    expected_vars,
    fs_expand,
    fs_run_dial,
)

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])
CALL = {"context": "default", "profile": "internal", "destination": "1001", "call_id": "c"}
INJECTION = '"/><action application="bridge" data="sofia/gateway/x/900"/>'
FRAGMENTS = [
    '"', "'", "<", ">", "&", "&amp;", "&#36;", "&#x24;", "${", "$${", "}", "{", "$", "\\",
    "\\$", "\\\\", "\\'", "\n", "\r", "\r\n", "\t", "\x00", "\x01", "\x02", "\x1f", "\x7f",
    ",", "|", "[", "]", "=", "!", "^^:", "^^!", ":_:", " ", "  ", "%[", "]]>", "<![CDATA[",
    "origination_nested_vars=true", "X-PRE-PROCESS", "x-pre-process", '<X-pre-process cmd="exec"',
    "<?xml", "<include>", "</include>", "<!--#", "-->", "${system(rm -rf /)}", "$${hostname}",
    "${originate_disposition}", INJECTION, "\u2028", "\u0085", "\ufffe", "\uffff", "\ud800",
    "\udfff", "é", "😀", "\u00a0", "sip:1@h", "@", ":", ";", "/",
]
PIECE = st.one_of(st.sampled_from(FRAGMENTS),
                  st.text(alphabet=st.characters(exclude_categories=()), max_size=6),
                  st.integers(0xD800, 0xDFFF).map(chr))
SHORT = st.lists(PIECE, max_size=24).map("".join)
LONG = st.builds(lambda frag, size: (frag * (size // len(frag) + 1))[:size],
                 st.sampled_from([f for f in FRAGMENTS if f]), st.integers(1000, 65536))
HOSTILE = st.one_of(SHORT, SHORT, SHORT, SHORT, SHORT, SHORT, SHORT, LONG)
NAME_OK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+*%~-]{0,127}")
HEADER_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+*%~-]{0,119}")
USER_OK = re.compile(r"[A-Za-z0-9\-_.!~*()%&=+;?/#]{1,256}")
GOOD_NAME = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,11}\Z")
MAYBE_NAME = st.one_of(GOOD_NAME, GOOD_NAME, SHORT)


# -- models ----------------------------------------------------------------------------

def fs_preprocess(raw: str) -> None:
    """switch_xml.c preprocess(): nothing in our output may trigger it."""
    assert "$" not in raw, "a raw $ could meet another and form $${...}"
    for line in raw.split("\n"):
        assert "<include>" not in line and "</include>" not in line and "<?" not in line
        assert "x-pre-process" not in line.lower()
        assert "<!--" not in line


_REF = re.compile(r"&#(x[0-9A-Fa-f]+|[0-9]+);")
_ENTITIES = {"lt": "<", "gt": ">", "quot": '"', "apos": "'", "amp": "&"}


def fs_attr_decode(text: str) -> str:
    """switch_xml_decode(s, ent, ' '): line ends, references, whitespace -> space."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "&":
            ref = _REF.match(text, i)
            if ref:
                body = ref.group(1)
                code = int(body[1:], 16) if body.startswith("x") else int(body)
                if code:
                    out.append(chr(code))
                    i = ref.end()
                    continue
            name = next((n for n in _ENTITIES if text.startswith(n + ";", i + 1)), None)
            if name:
                out.append(_ENTITIES[name])
                i += len(name) + 2
                continue
        out.append(" " if ch in " \t\n\v\f\r" else ch)
        i += 1
    return "".join(out)


_TAG = re.compile(r'<([a-z]+)((?: [a-z-]+="[^"]*")*)/?>')
_ATTR = re.compile(r' ([a-z-]+)="([^"]*)"')


def check_document(xml: bytes) -> ET.Element:
    """Preprocessor-safe, well-formed, and read the same by ElementTree and FreeSWITCH."""
    raw = xml.decode("utf-8")
    fs_preprocess(raw)
    root = ET.fromstring(xml)
    theirs = [(m.group(1), [(k, fs_attr_decode(v)) for k, v in _ATTR.findall(m.group(2))])
              for m in _TAG.finditer(raw)]
    ours = [(el.tag, list(el.attrib.items())) for el in root.iter()]
    assert theirs == ours
    return root


def xml_clean(value: str) -> str:
    return UNSAFE.sub("", value)


def actions_of(extension: ET.Element) -> list[tuple[str, str | None]]:
    [condition] = list(extension)
    assert condition.tag == "condition" and not condition.attrib
    assert all(a.tag == "action" and not list(a) for a in condition)
    return [(a.get("application"), a.get("data")) for a in condition]


def run_set(data: str) -> tuple[str, str]:
    """``set``: the executor expands the data, then base_set expands the value again."""
    once, names = fs_expand(data)
    assert names == []
    name, _, value = once.partition("=")
    twice, names = fs_expand(value)
    assert names == []
    return name, twice


def run_plain(data: str) -> str:
    result, names = fs_expand(data)
    assert names == []
    return result


def context_root(xml: bytes, context: str) -> list[ET.Element]:
    root = check_document(xml)
    assert [(s.tag, s.attrib) for s in root] == [("section", {"name": "dialplan"})]
    [ctx] = list(root[0])
    assert ctx.tag == "context"
    assert ctx.attrib == {"name": xml_clean(context) if context else "default"}
    return list(ctx)


# -- directory -------------------------------------------------------------------------

@SETTINGS
@given(realm=HOSTILE, user=HOSTILE, secret=HOSTILE,
       ccvs=st.dictionaries(SHORT, HOSTILE, max_size=4),
       method=st.sampled_from(["password", "a1-hash"]),
       cacheable=st.none() | st.integers(1, 10**9))
def test_directory_user(realm, user, secret, ccvs, method, cacheable):
    if not realm or not user or not secret:
        with pytest.raises(ValueError):
            render.directory_user(realm, user, method=method, secret=secret, variables=ccvs)
        return
    root = check_document(render.directory_user(realm, user, method=method, secret=secret,
                                                variables=ccvs, cacheable_ms=cacheable))
    assert root.attrib == {"type": "freeswitch/xml"}
    [section] = list(root)
    assert section.attrib == {"name": "directory"}
    [domain] = list(section)
    assert (domain.tag, domain.attrib) == ("domain", {"name": xml_clean(realm)})
    [element] = list(domain)
    want_user = {"id": xml_clean(user)}
    if cacheable is not None:
        want_user["cacheable"] = str(cacheable)
    assert (element.tag, element.attrib) == ("user", want_user)
    children = list(element)
    assert [c.tag for c in children] == ["params"] + (["variables"] if ccvs else [])
    assert [(p.tag, p.attrib) for p in children[0]] == \
        [("param", {"name": method, "value": xml_clean(secret)})]
    if ccvs:
        assert [(v.tag, v.attrib) for v in children[1]] == \
            [("variable", {"name": "ecallmgr_" + xml_clean(k), "value": xml_clean(v)})
             for k, v in ccvs.items()]


# -- bridge ----------------------------------------------------------------------------

ROUTE_TEXT = ["Outgoing-Caller-ID-Name", "Outgoing-Caller-ID-Number", "Caller-ID-Name",
              "Caller-ID-Number", "Auth-User", "Auth-Password"]
MAPPING = {"Outgoing-Caller-ID-Name": "origination_caller_id_name",
           "Outgoing-Caller-ID-Number": "origination_caller_id_number",
           "Caller-ID-Name": "effective_caller_id_name",
           "Caller-ID-Number": "effective_caller_id_number",
           "Auth-User": "sip_auth_username", "Auth-Password": "sip_auth_password"}
SIP_TEXT = {"origination_caller_id_name", "origination_caller_id_number",
            "effective_caller_id_name", "effective_caller_id_number", "sip_auth_username"}

ROUTE = st.fixed_dictionaries(
    {"Invite-Format": st.just("username"),
     "Route": st.sampled_from(["sip:1001@127.0.0.1:5071;transport=UDP", "sips:pbx.example.com",
                               "sip:u@[2001:db8::1]:5061"]),
     "To-User": st.one_of(st.from_regex(r"\A\+?[0-9]{3,12}\Z"), SHORT)},
    optional={**{field: HOSTILE for field in ROUTE_TEXT},
              "Codecs": st.lists(SHORT, max_size=3),
              "SIP-Headers": st.dictionaries(MAYBE_NAME, HOSTILE, max_size=3),
              "Custom-Channel-Vars": st.dictionaries(MAYBE_NAME, HOSTILE, max_size=3),
              "Media": st.sampled_from(["bypass", "process", "auto"])})


def route_is_usable(route: dict) -> bool:
    return bool(USER_OK.fullmatch(route["To-User"])) and \
        all(HEADER_OK.fullmatch(h) for h in route.get("SIP-Headers", {})) and \
        all(NAME_OK.fullmatch("ecallmgr_" + k) for k in route.get("Custom-Channel-Vars", {}))


DISPLAY = {"origination_caller_id_name", "effective_caller_id_name"}
NUMBER = {"origination_caller_id_number", "effective_caller_id_number"}


def expected_text(var: str, value: str) -> str:
    """What FreeSWITCH must receive in ``var``: caller-id names are SIP display names (no
    '"', '\\' doubled), numbers a URI user part (percent-encoded outside
    A-Za-z0-9+*._!~-)."""
    if var in DISPLAY:
        value = value.replace('"', "").replace("\\", "\\\\")
        for ch, code in (("%", "%25"), ("@", "%40"), ("/", "%2F"), (":", "%3A")):
            value = value.replace(ch, code)
    if var in NUMBER:
        value = quote(UNSAFE.sub("", value).replace("\r", "").replace("\n", ""), safe="+*!")
    return expected_value(value, "[]", sip_text=var in SIP_TEXT)


def expected_leg(route: dict) -> dict[str, str]:
    want: dict[str, str] = {}
    for field, var in MAPPING.items():
        if field in route:
            want[var] = expected_text(var, route[field])
    if "Codecs" in route:
        want["codec_string"] = expected_value(",".join(route["Codecs"]), "[]")
    for header, value in route.get("SIP-Headers", {}).items():
        want["sip_h_" + header] = expected_value(value, "[]", sip_text=True)
    for key, value in route.get("Custom-Channel-Vars", {}).items():
        want["ecallmgr_" + key] = expected_value(value, "[]")
    return {k: v for k, v in want.items() if v}


@SETTINGS
@given(context=HOSTILE, profile=st.sampled_from(["internal", "external", "sipinterface_1"]),
       ccvs=st.dictionaries(GOOD_NAME, HOSTILE, max_size=3),
       routes=st.lists(ROUTE, min_size=1, max_size=3),
       ringback=st.none() | HOSTILE, transfer=st.none() | HOSTILE)
def test_bridge(context, profile, ccvs, routes, ringback, transfer):
    answer = {"Method": "bridge", "Routes": routes, "Custom-Channel-Vars": ccvs}
    if ringback is not None:
        answer["Ringback-Media"] = ringback
    if transfer is not None:
        answer["Transfer-Media"] = transfer
    call = {**CALL, "context": context, "profile": profile}
    usable = [i for i, route in enumerate(routes, 1) if route_is_usable(route)]
    if not usable:
        with pytest.raises(ValueError):
            render.dialplan(answer, call)
        return
    extensions = context_root(render.dialplan(answer, call), context)
    assert [(e.tag, e.attrib) for e in extensions] == \
        [("extension", {"name": f"route_{i}", "continue": "true"}) for i in usable] + \
        [("extension", {"name": "bridge_failed"})]
    media = [(var, value) for var, value in (("ringback", ringback),
                                             ("transfer_ringback", transfer)) if value]
    want_globals = expected_vars({**{f"ecallmgr_{k}": v for k, v in ccvs.items()},
                                  "progress_timeout": "6"}, "{}")
    for index, extension in zip(usable, extensions, strict=False):
        route = routes[index - 1]
        actions = actions_of(extension)
        assert [app for app, _ in actions] == ["set"] * (3 + len(media)) + ["bridge"]
        bypass = "true" if route.get("Media") == "bypass" else "false"
        assert [run_set(data) for _, data in actions[:3]] == [
            ("hangup_after_bridge", "true"),
            ("failure_causes", "NORMAL_CLEARING,ORIGINATOR_CANCEL,CRASH"),
            ("bypass_media", bypass)]
        assert [run_set(data) for _, data in actions[3:-1]] == \
            [(var, xml_clean(value)) for var, value in media]
        parsed = fs_run_dial(actions[-1][1])
        assert not parsed["nested"]
        assert parsed["globals"] == want_globals
        [[leg]] = parsed["groups"]
        assert leg["type"] == "sofia"
        assert leg["data"].startswith(f"{profile}/")
        assert leg["vars"] == expected_leg(route)
    assert actions_of(extensions[-1]) == [("hangup", "${originate_disposition}")]
    assert fs_expand("${originate_disposition}")[1] == ["originate_disposition"]


# -- park and error --------------------------------------------------------------------

@SETTINGS
@given(context=HOSTILE, ccvs=st.dictionaries(MAYBE_NAME, HOSTILE, max_size=4),
       ringback=st.none() | HOSTILE,
       pre_park=st.sampled_from([None, "none", "ring_ready", "answer"]))
def test_park(context, ccvs, ringback, pre_park):
    answer = {"Method": "park", "Custom-Channel-Vars": ccvs}
    if ringback is not None:
        answer["Ringback-Media"] = ringback
    if pre_park is not None:
        answer["Pre-Park"] = pre_park
    call = {**CALL, "context": context}
    if not all(NAME_OK.fullmatch("ecallmgr_" + k) for k in ccvs):
        with pytest.raises(ValueError):
            render.dialplan(answer, call)
        return
    [extension] = context_root(render.dialplan(answer, call), context)
    assert extension.attrib == {"name": "park"}
    actions = actions_of(extension)
    sets = [run_set(data) for app, data in actions if app == "set"]
    want = [(f"ecallmgr_{k}", xml_clean(v)) for k, v in ccvs.items()]
    if ringback:
        want.append(("ringback", xml_clean(ringback)))
    assert sets == want
    tail = [app for app, _ in actions if app != "set"]
    assert tail == ([pre_park] if pre_park in ("ring_ready", "answer") else []) + ["park"]
    assert all(data is None for app, data in actions if app != "set")


@SETTINGS
@given(context=HOSTILE, code=st.integers(100, 699) | st.integers(100, 699).map(str),
       message=HOSTILE)
def test_error(context, code, message):
    answer = {"Method": "error", "Route-Error-Code": code, "Route-Error-Message": message}
    [extension] = context_root(render.dialplan(answer, {**CALL, "context": context}), context)
    [(app, data)] = actions_of(extension)
    reason = re.sub(r"[\r\n\t]", " ", xml_clean(message)).strip(" ")
    assert app == "respond"
    assert run_plain(data) == (f"{code} {reason}" if reason else str(code))


# -- the cases from the issue, spelled out ---------------------------------------------

@pytest.mark.parametrize("value", [INJECTION, "$${hostname}", "${system(rm -rf /)}",
                                   '<X-PRE-PROCESS cmd="exec" data="rm -rf /"/>',
                                   "$${hostname}${system(id)}\\${x}"])
def test_every_field_carries_the_issue_values_as_text(value):
    route = {"Invite-Format": "username", "Route": "sip:1001@127.0.0.1", "To-User": "1001",
             **{field: value for field in ROUTE_TEXT},
             "SIP-Headers": {"X-Name": value}, "Custom-Channel-Vars": {"Name": value}}
    bridge = render.dialplan({"Method": "bridge", "Routes": [route], "Ringback-Media": value,
                              "Custom-Channel-Vars": {"Name": value}},
                             {**CALL, "context": value})
    extensions = context_root(bridge, value)
    actions = [a for e in extensions for a in actions_of(e)]
    assert [app for app, _ in actions] == ["set", "set", "set", "set", "bridge", "hangup"]
    assert run_set(actions[3][1]) == ("ringback", value)
    parsed = fs_run_dial(actions[4][1])
    assert parsed["globals"]["ecallmgr_Name"] == value
    leg = parsed["groups"][0][0]["vars"]
    assert {var: leg[var] for var in MAPPING.values()} == \
        {var: expected_text(var, value) for var in MAPPING.values()}
    assert leg["sip_h_X-Name"] == leg["ecallmgr_Name"] == expected_value(value, "[]")
    assert parsed["groups"][0][0]["data"] == "internal/sip:1001@127.0.0.1"

    park = render.dialplan({"Method": "park", "Custom-Channel-Vars": {"Name": value}}, CALL)
    [extension] = context_root(park, "default")
    assert actions_of(extension)[-1] == ("park", None)
    assert run_set(actions_of(extension)[0][1]) == ("ecallmgr_Name", value)

    error = render.dialplan({"Method": "error", "Route-Error-Code": 486,
                             "Route-Error-Message": value}, CALL)
    [extension] = context_root(error, "default")
    [(app, data)] = actions_of(extension)
    assert (app, run_plain(data)) == ("respond", f"486 {value}")

    directory = check_document(render.directory_user(value, value, method="password",
                                                     secret=value, variables={"Name": value}))
    assert [el.tag for el in directory.iter()] == [
        "document", "section", "domain", "user", "params", "param", "variables", "variable"]
    assert {v for el in directory.iter() for k, v in el.attrib.items()
            if k in ("name", "id", "value") and el.tag != "section"} >= {value}


def test_the_injection_stays_one_attribute():
    xml = render.dialplan({"Method": "error", "Route-Error-Code": 403,
                           "Route-Error-Message": INJECTION}, CALL)
    assert xml.count(b"<action ") == 1
    assert b"sofia/gateway/x/900" in xml and b'data="sofia' not in xml
    root = check_document(xml)
    assert [a.get("application") for a in root.iter("action")] == ["respond"]


def test_dropped_characters_are_counted():
    before = render.STATS["xml_chars_dropped"]
    xml = render.directory_user("r\x00", "u\ud800", method="password", secret="s\x01\ufffe",
                                variables={})
    assert render.STATS["xml_chars_dropped"] == before + 4
    user = check_document(xml).find("section/domain/user")
    assert user.get("id") == "u" and user.find("params/param").get("value") == "s"


DROPPED = ["\x00", "\x01", "\x02", "\x1f", "\ud800", "\udfff", "\ufffe", "\uffff"]


@pytest.mark.parametrize("gone", DROPPED)
def test_a_dropped_character_cannot_join_a_trigger(gone):
    """Removing a character must happen before the escapes are chosen: ``$<gone>{x}`` is
    inert as written, but would expand if the XML writer removed ``<gone>`` afterwards."""
    values = [f"${gone}{{x}}", f"$${gone}{{hostname}}", f"$\\{gone}{{x}}", f"\\{gone}'",
              f":{gone}_:", f"x{gone}-pre-process", f"origination_nested_vars={gone}true",
              f"a{gone}\nb{gone}\r{gone}\t"]
    for value in values:
        clean = value.replace(gone, "")
        park = render.dialplan({"Method": "park", "Ringback-Media": value,
                                "Custom-Channel-Vars": {"V": value}}, CALL)
        [extension] = context_root(park, "default")
        assert [run_set(d) for a, d in actions_of(extension) if a == "set"] == \
            [("ecallmgr_V", clean), ("ringback", clean)]
        error = render.dialplan({"Method": "error", "Route-Error-Code": 480,
                                 "Route-Error-Message": value}, CALL)
        [(_, data)] = actions_of(context_root(error, "default")[0])
        assert run_plain(data) == "480 " + re.sub(r"[\r\n\t]", " ", clean).strip(" ")
        route = {"Invite-Format": "route", "Route": "sip:1@10.0.0.1", "Caller-ID-Name": value,
                 "Custom-Channel-Vars": {"V": value}}
        bridge = render.dialplan({"Method": "bridge", "Routes": [route],
                                  "Custom-Channel-Vars": {"V": value}}, CALL)
        actions = actions_of(context_root(bridge, "default")[0])
        parsed = fs_run_dial(actions[-1][1])
        assert parsed["globals"]["ecallmgr_V"] == expected_value(clean, "{}")
        assert parsed["groups"][0][0]["vars"]["ecallmgr_V"] == expected_value(clean, "[]")
        assert not parsed["nested"]
