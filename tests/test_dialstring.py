"""Dial strings: formats, variable mapping, and what FreeSWITCH's parsers make of them.

The ``fs_*`` functions are a line-by-line model of the FreeSWITCH code that reads a dial
string (signalwire/freeswitch): ``switch_channel_expand_variables_check``
(src/switch_channel.c), ``switch_separate_string`` + ``cleanup_separated_string`` +
``switch_find_end_paren`` + ``switch_strchr_strict`` (src/switch_utils.c),
``switch_event_create_brackets`` (src/switch_event.c) and the parsing part of
``switch_ivr_originate`` (src/switch_ivr_originate.c). They are written from the C, not
from the encoder, so a round trip through them checks the encoder against FreeSWITCH's
rules. test_render.py and test_render_hostile.py use them too.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch_bridge.freeswitch import dialstring
from switch_bridge.freeswitch.dialstring import (
    api_arg,
    bridge_target,
    dial_string,
    format_vars,
    global_vars,
    leg_vars,
    protect_expansion,
)

MAX_PEERS = 128
QUOTED_ESC_COMMA = "\x01"
UNQUOTED_ESC_COMMA = "\x02"
EXPANDED = "\ue000"  # marks where the model expanded a variable


class ModelError(Exception):
    """FreeSWITCH would fail (or read past the string) on this input."""


# -- switch_channel.c: the expander --------------------------------------------------------

def fs_var_check(s: str) -> bool:
    """switch_string_var_check_const."""
    dol = False
    for ch in s:
        if ch == "$":
            dol = True
        elif dol:
            if ch == "{":
                return True
            if ch != "\\":
                dol = False
    return False


def fs_has_escaped_data(s: str) -> bool:
    """switch_string_has_escaped_data."""
    i = s.find("\\")
    while i != -1 and s[i] == "\\":
        i += 1
        if i < len(s) and s[i] in "\\nst'":
            return True
        i = s.find("\\", i)
    return False


def fs_expand(s: str) -> tuple[str, list[str]]:
    """switch_channel_expand_variables_check: (result, names of what it would expand)."""
    if not s or not (fs_var_check(s) or fs_has_escaped_data(s)):
        return s, []
    out: list[str] = []
    expanded: list[str] = []
    i, n = 0, len(s)
    while i < n:
        nv = False
        if s[i] == "\\":
            nxt = s[i + 1] if i + 1 < n else ""
            if nxt == "$":
                nv = True
                i += 1
                if i + 1 < n and s[i + 1] == "$":
                    i += 1
            elif nxt == "'":
                i += 2
                continue
            elif nxt == "\\":
                out.append("\\")
                i += 2
                continue
        if s[i] == "$" and not nv:
            if i + 1 < n and s[i + 1] == "$":
                i += 1
            if i + 1 < n and s[i + 1] == "{":
                depth, j = 1, i + 2
                while j < n and depth:
                    if s[j] == "{":
                        depth += 1
                    elif s[j] == "}":
                        depth -= 1
                    j += 1
                expanded.append(s[i + 2:j - 1])
                out.append(EXPANDED)
                i = j
                continue
            nv = True
        out.append(s[i])
        i += 1
    return "".join(out), expanded


# -- switch_utils.c: the tokenizer ---------------------------------------------------------

def _unescape_char(ch: str) -> str:
    return {"n": "\n", "r": "\r", "t": "\t", "s": " "}.get(ch, ch)


def fs_cleanup(s: str, delim: str) -> str:
    """cleanup_separated_string."""
    i, n = 0, len(s)
    last_quote = s.rfind("'")  # strchr(ptr + 1, '\'') != NULL  <=>  i < last_quote
    while i < n and s[i] == " ":
        i += 1
    dest: list[str] = []
    end: int | None = None
    inside = False
    while i < n:
        ch = s[i]
        esc = False
        if ch == "\\":
            e = s[i + 1] if i + 1 < n else ""
            if e and (e in "'\"\\" or e == delim or _unescape_char(e) != e):
                i += 1
                dest.append(e if (e in "'\"\\" or e == delim) else _unescape_char(e))
                end = len(dest)
                esc = True
        if not esc:
            if ch == "'" and (inside or i < last_quote):
                inside = not inside
                if inside:
                    end = len(dest)
            else:
                dest.append(ch)
                if ch != " " or inside:
                    end = len(dest)
        i += 1
    return "".join(dest[:end] if end is not None else dest)


def fs_separate(buf: str, delim: str, arraylen: int = 1024) -> list[str]:
    """switch_separate_string with a non-blank delimiter (``^^<delim>`` included)."""
    if buf.startswith("^^") and len(buf) >= 4:
        delim, buf = buf[2], buf[3:]
    starts: list[int] = []
    cuts: list[int] = []
    state, inside, i, n = "start", False, 0, len(buf)
    last_quote = buf.rfind("'")
    while i < n and len(starts) < arraylen:
        if state == "start":
            starts.append(i)
            state = "find"
            continue
        ch = buf[i]
        if ch == "\\":
            if i + 1 >= n:
                raise ModelError("tokenizer reads past the end after a lone backslash")
            i += 1
        elif ch == "'" and (inside or i < last_quote):
            inside = not inside
        elif ch == delim and not inside:
            cuts.append(i)
            state = "start"
        i += 1
    pieces = [buf[start:(cuts[k] if k < len(cuts) else n)] for k, start in enumerate(starts)]
    return [fs_cleanup(piece, delim) for piece in pieces]


def fs_separate_blank(buf: str, arraylen: int = 10) -> list[str]:
    """switch_separate_string(buf, ' ', ..): separate_string_blank_delim + cleanup(.., 0)."""
    if buf.startswith("^^") and len(buf) >= 4:
        return fs_separate(buf, " ", arraylen)
    starts: list[int] = []
    cuts: list[int] = []
    state, inside, i, n = "start", False, 0, len(buf)
    while i < n and len(starts) < arraylen:
        if state == "start":
            starts.append(i)
            state = "skip_initial"
        elif state == "skip_initial":
            if buf[i] == " ":
                i += 1
            else:
                state = "find"
        elif state == "find":
            if buf[i] == "\\":
                i += 1
            elif buf[i] == "'":
                inside = not inside
            elif buf[i] == " " and not inside:
                cuts.append(i)
                state = "skip_ending"
            i += 1
        elif buf[i] == " ":
            i += 1
        else:
            state = "start"
    pieces = [buf[start:(cuts[k] if k < len(cuts) else n)] for k, start in enumerate(starts)]
    return [fs_cleanup(piece, "") for piece in pieces]


def fs_find_end_paren(s: str, start: int, opening: str, closing: str) -> int | None:
    i = start
    while i < len(s) and s[i] == " ":
        i += 1
    if i < len(s) and s[i] == opening:
        depth = 1
        for j in range(i + 1, len(s)):
            if s[j] == opening and opening != closing:
                depth += 1
            elif s[j] == closing:
                depth -= 1
                if not depth:
                    return j
    return None


def fs_strchr_strict(s: str, start: int, find: str, allowed: str) -> int | None:
    for i in range(start, len(s)):
        if s[i] == find:
            return i
        if s[i] not in allowed:
            return None
    return len(s)


# -- switch_event.c / switch_ivr_originate.c -----------------------------------------------

def fs_create_brackets(data: str, a: str, b: str, c: str) -> tuple[list[tuple[str, str]], str]:
    """switch_event_create_brackets on one block: (variables, rest of the string)."""
    end = fs_find_end_paren(data, 0, a, b)
    if end is None:
        raise ModelError(f"unterminated {a}{b} block")
    if fs_strchr_strict(data, end, a, " ") is not None:
        raise ModelError("block chaining (never written by us)")
    vdata, rest = data[1:end], data[end + 1:]
    if fs_strchr_strict(rest, 0, a, " ") is not None:
        raise ModelError("another block follows, or nothing does (reads past the end)")
    if vdata.startswith("^^"):
        c, vdata = vdata[2], vdata[3:]
    pairs: list[tuple[str, str]] = []
    for piece in fs_separate(vdata, c):
        inner = fs_separate(piece, "=", 2)
        if len(inner) == 2:
            pairs.append((inner[0], inner[1]))
    return pairs, rest


def fs_originate(data: str) -> dict:
    """The parse part of switch_ivr_originate: global vars and groups of legs."""
    if ":_:" in data:
        raise ModelError("enterprise originate (:_:)")
    data = data.lstrip(" ")
    nested = b"origination_nested_vars=true" in data.encode("utf-8", "surrogatepass").lower()
    if data.startswith("<"):
        raise ModelError("ultra-global <> block")
    globals_: list[tuple[str, str]] = []
    while data.startswith("{"):
        pairs, data = fs_create_brackets(data, "{", "}", ",")
        globals_ += pairs
    data = data.lstrip(" ")
    groups = []
    for pipe in fs_separate(data, "|", MAX_PEERS):
        chars = list(pipe)
        end: int | None = None
        quoted = alt = False
        for i, ch in enumerate(chars):
            if ch == "[":
                end = fs_find_end_paren("".join(chars), i, "[", "]")
                alt = "".join(chars[i + 1:i + 3]) == "^^"
                quoted = False
            if ch == "'":
                quoted = not quoted
            if end is not None and i < end and ch == "," and (i == 0 or chars[i - 1] != "\\"):
                chars[i] = QUOTED_ESC_COMMA if (quoted or alt) else UNQUOTED_ESC_COMMA
            if i == end:
                end = fs_strchr_strict("".join(chars), i, "[", " ")
        group = []
        for peer in fs_separate("".join(chars), ",", MAX_PEERS):
            chan = peer.lstrip(" ")
            legs: list[tuple[str, str]] = []
            while chan.startswith("["):
                bend = fs_find_end_paren(chan, 0, "[", "]")
                if bend is not None:
                    chan = chan[:bend].replace(QUOTED_ESC_COMMA, ",") + chan[bend:]
                pairs, rest = fs_create_brackets(chan, "[", "]", UNQUOTED_ESC_COMMA)
                legs += pairs
                chan = rest
            chan = chan.lstrip(" ")
            chan_type, _, chan_data = chan.partition("/")
            group.append({"vars": dict(legs), "type": chan_type, "data": chan_data,
                          "pairs": legs})
        groups.append(group)
    return {"globals": dict(globals_), "global_pairs": globals_, "groups": groups,
            "nested": nested}


def fs_run_dial(data: str) -> dict:
    """What a dial string run as application data becomes: expansion, then originate."""
    expanded, names = fs_expand(data)
    assert names == [], f"FreeSWITCH would expand {names!r}"
    return fs_originate(expanded)


# -- the values FreeSWITCH should end up with (the documented lossy rules) ------------------

UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def balanced(text: str, opening: str, closing: str) -> str:
    stack: list[int] = []
    bad: set[int] = set()
    for i, ch in enumerate(text):
        if ch == opening:
            stack.append(i)
        elif ch == closing:
            if stack:
                stack.pop()
            else:
                bad.add(i)
    bad.update(stack)
    return "".join(ch for i, ch in enumerate(text) if i not in bad)


def expected_value(value: str, brackets: str, sip_text: bool = False) -> str:
    value = UNSAFE.sub("", value)
    if sip_text:
        value = value.replace("\r", "").replace("\n", "")
    if brackets == "{}":
        return balanced(value, "{", "}")
    return value.replace("[", "").replace("]", "")


def expected_vars(variables: dict[str, str], brackets: str) -> dict[str, str]:
    out = {}
    for name, value in variables.items():
        clean = expected_value(value, brackets)
        if clean:
            out[name] = clean
    return out


# -- Invite-Format ---------------------------------------------------------------------

CONTACT = "sip:1001@127.0.0.1:5071;transport=UDP"


def test_username_replaces_the_user_part_of_the_registered_contact():
    route = {"Invite-Format": "username", "Route": CONTACT, "To-User": "alice"}
    assert dial_string(route, profile="internal") == \
        "sofia/internal/sip:alice@127.0.0.1:5071;transport=UDP"


def test_username_adds_a_user_part_when_the_contact_has_none():
    route = {"Invite-Format": "username", "Route": "sips:pbx.example.com", "To-User": "1001"}
    assert dial_string(route, profile="external") == "sofia/external/sips:1001@pbx.example.com"


@pytest.mark.parametrize(("fmt", "did", "user"), [
    ("e164", "4155550100", "+14155550100"),
    ("e164", "+14155550100", "+14155550100"),
    ("npan", "+14155550100", "4155550100"),
    ("1npan", "4155550100", "14155550100"),
    ("e164", "011441234567890", "+441234567890"),
])
def test_number_formats_put_the_formatted_did_in_the_user_part(fmt, did, user):
    route = {"Invite-Format": fmt, "Route": "sip:carrier.example.net:5080", "To-DID": did}
    assert dial_string(route, profile="internal") == \
        f"sofia/internal/sip:{user}@carrier.example.net:5080"


@pytest.mark.parametrize("fmt", ["route", "contact"])
def test_route_and_contact_go_out_as_they_are(fmt):
    route = {"Invite-Format": fmt, "Route": CONTACT, "To-User": "ignored"}
    assert dial_string(route, profile="internal") == f"sofia/internal/{CONTACT}"


def test_ipv6_hosts_and_sips_are_kept():
    route = {"Invite-Format": "route", "Route": "sips:1001@[2001:db8::1]:5061"}
    assert dial_string(route, profile="internal") == "sofia/internal/sips:1001@[2001:db8::1]:5061"


@pytest.mark.parametrize("route", [
    {"Invite-Format": "route", "Route": "sofia/gateway/x/900"},
    {"Invite-Format": "route", "Route": "tel:+14155550100"},
    {"Invite-Format": "route", "Route": "sip:1001@host|sofia/gateway/x/900"},
    {"Invite-Format": "route", "Route": "sip:1001@host,sip:2@evil"},
    {"Invite-Format": "route", "Route": "sip:1001@host name"},
    {"Invite-Format": "route", "Route": "sip:{x=1}1001@host"},
    {"Invite-Format": "route", "Route": "sip:1001@host;a=[x]"},
    {"Invite-Format": "route", "Route": "sip:${system(id)}@host"},
    {"Invite-Format": "route", "Route": "sip:1001@host\n"},
    {"Invite-Format": "route", "Route": "sip:1'1@host"},
    {"Invite-Format": "route"},
    {"Invite-Format": "username", "Route": CONTACT, "To-User": "a|b"},
    {"Invite-Format": "username", "Route": CONTACT, "To-User": "a b"},
    {"Invite-Format": "username", "Route": CONTACT},
    {"Invite-Format": "e164", "Route": CONTACT},
    {"Invite-Format": "e164", "Route": CONTACT, "To-DID": "1,2"},
    {"Invite-Format": "carrier", "Route": CONTACT},
])
def test_unusable_endpoints_are_refused(route):
    before = dialstring.STATS["refused_endpoints"]
    with pytest.raises(ValueError):
        dial_string(route, profile="internal")
    assert dialstring.STATS["refused_endpoints"] == before + 1


def test_unusable_profile_is_refused():
    with pytest.raises(ValueError):
        dial_string({"Invite-Format": "route", "Route": CONTACT}, profile="int ernal")


# -- channel variables -------------------------------------------------------------------

def test_leg_vars_map_every_documented_field():
    route = {
        "Invite-Format": "route", "Route": CONTACT,
        "Outgoing-Caller-ID-Name": "Shop", "Outgoing-Caller-ID-Number": "+14155550100",
        "Caller-ID-Name": "Alice", "Caller-ID-Number": "1000",
        "Auth-User": "trunk", "Auth-Password": "s3cret",
        "Codecs": ["PCMU", "G722"], "Progress-Timeout": 8, "Endpoint-Timeout": 20,
        "Endpoint-Progress-Timeout": "5", "Endpoint-Delay": 2, "Timeout": 30,
        "Ignore-Early-Media": True,
        "SIP-Headers": {"X-Account": "abc", "X-Count": 3},
        "Custom-Channel-Vars": {"Account-ID": "a1", "Inception": "on-net", "Flag": False},
    }
    assert leg_vars(route) == {
        "origination_caller_id_name": "Shop", "origination_caller_id_number": "+14155550100",
        "effective_caller_id_name": "Alice", "effective_caller_id_number": "1000",
        "sip_auth_username": "trunk", "sip_auth_password": "s3cret",
        "codec_string": "PCMU,G722", "progress_timeout": "8", "leg_timeout": "20",
        "leg_progress_timeout": "5", "leg_delay_start": "2", "originate_timeout": "30",
        "ignore_early_media": "true", "sip_h_X-Account": "abc", "sip_h_X-Count": "3",
        "ecallmgr_Account-ID": "a1", "ecallmgr_Inception": "on-net", "ecallmgr_Flag": "false",
    }


def test_global_vars_default_progress_timeout_is_6():
    assert global_vars({"Timeout": 25}) == {"originate_timeout": "25", "progress_timeout": "6"}
    assert global_vars({"Progress-Timeout": 3})["progress_timeout"] == "3"
    assert global_vars({"Ignore-Early-Media": "false"})["ignore_early_media"] == "false"


def test_sip_text_loses_cr_and_lf():
    got = leg_vars({"Caller-ID-Name": "Al\r\nX-Evil: 1", "SIP-Headers": {"X-A": "1\n2"}})
    # (a caller-id name also has its ':' percent-encoded: FreeSWITCH URL-decodes it)
    assert got == {"effective_caller_id_name": "AlX-Evil%3A 1", "sip_h_X-A": "12"}


@pytest.mark.parametrize("bad", [
    {"SIP-Headers": {"X-A\r\nVia": "x"}}, {"SIP-Headers": {"X A": "x"}},
    {"SIP-Headers": {"X=A": "x"}}, {"Custom-Channel-Vars": {"a,b": "x"}},
    {"Custom-Channel-Vars": {"a=b": "x"}}, {"Custom-Channel-Vars": {"a b": "x"}},
    {"Custom-Channel-Vars": {"x${y}": "x"}}, {"SIP-Headers": "X-A: 1"},
    {"Custom-Channel-Vars": {"K": {"nested": 1}}},
])
def test_unusable_names_and_shapes_are_refused(bad):
    with pytest.raises(ValueError):
        leg_vars(bad)


def test_format_vars_blocks():
    assert format_vars({}) == ""
    assert format_vars({"a": "1", "b": "2"}) == "{a=1,b=2}"
    assert format_vars({"a": "1", "b": "2"}, "[]") == "[^^!a=1!b=2]"
    assert format_vars({"codec_string": "PCMU,G722"}) == "{codec_string=PCMU\\,G722}"
    assert format_vars({"empty": "", "none": None, "x": "1"}) == "{x=1}"
    with pytest.raises(ValueError):
        format_vars({"a": "1"}, "()")
    with pytest.raises(ValueError):
        format_vars({"^^:a": "1"})


def test_codecs_survive_the_global_block():
    data = bridge_target([{"Invite-Format": "route", "Route": CONTACT}], profile="internal",
                         global_vars=global_vars({"Codecs": ["PCMU", "PCMA", "G722"]}))
    assert fs_run_dial(data)["globals"]["codec_string"] == "PCMU,PCMA,G722"


# -- single vs simultaneous --------------------------------------------------------------

ENDPOINTS = [
    {"Invite-Format": "username", "Route": CONTACT, "To-User": "1001",
     "Caller-ID-Name": "Front, Desk", "SIP-Headers": {"X-Leg": "one"}},
    {"Invite-Format": "route", "Route": "sip:1002@10.0.0.2", "Endpoint-Timeout": 15,
     "Custom-Channel-Vars": {"Owner-ID": "o2"}},
]


def test_single_dials_one_after_the_other():
    data = bridge_target(ENDPOINTS, "single", profile="internal",
                         global_vars={"call_timeout": "30"})
    assert data.startswith("{call_timeout=30}[^^!effective_caller_id_name=")
    parsed = fs_run_dial(data)
    assert parsed["globals"] == {"call_timeout": "30"}
    assert [[leg["vars"] for leg in group] for group in parsed["groups"]] == [
        [{"effective_caller_id_name": "Front, Desk", "sip_h_X-Leg": "one"}],
        [{"leg_timeout": "15", "ecallmgr_Owner-ID": "o2"}],
    ]
    assert [group[0]["data"] for group in parsed["groups"]] == [
        "internal/sip:1001@127.0.0.1:5071;transport=UDP", "internal/sip:1002@10.0.0.2"]


def test_simultaneous_dials_all_at_once():
    data = bridge_target(ENDPOINTS, "simultaneous", profile="internal", global_vars={})
    assert not data.startswith("{")
    parsed = fs_run_dial(data)
    assert len(parsed["groups"]) == 1
    legs = parsed["groups"][0]
    assert [leg["type"] for leg in legs] == ["sofia", "sofia"]
    assert legs[0]["vars"]["effective_caller_id_name"] == "Front, Desk"
    assert legs[1]["vars"] == {"leg_timeout": "15", "ecallmgr_Owner-ID": "o2"}


def test_bridge_target_refuses_bad_method_and_empty_lists():
    with pytest.raises(ValueError):
        bridge_target(ENDPOINTS, "sequential", profile="internal", global_vars={})
    with pytest.raises(ValueError):
        bridge_target([], profile="internal", global_vars={})


# -- the hostile characters, through the model --------------------------------------------

NASTY = ["", " ", "  lead", "trail  ", "a,b", "a|b", "a=b", "a'b", "''", "'", '"q"',
         "\\", "\\\\", "\\'", "\\,", "a\\", "{", "}", "}{", "{a}", "[", "]", "[x]", "^^:a=b",
         "^^!", "!", "x!y", ":_:", "a:_:b", "origination_nested_vars=true",
         "ORIGINATION_NESTED_VARS=TRUE", "${system(rm -rf /)}", "$${hostname}", "$", "$$",
         "$$x", "\\$", "\\${x}", "$\\{x}", "%[a=b]", "<x>", "\n", "a\r\nb", "\t", "\x00",
         "\x01,\x02", "\ud800", "\ufffe", "é😀", "\\s\\n\\t"]


@pytest.mark.parametrize("value", NASTY)
def test_every_nasty_value_round_trips_in_both_blocks(value):
    variables = {"v1": value, "v2": "after", "ecallmgr_K": value + "," + value}
    data = bridge_target([{"Invite-Format": "route", "Route": CONTACT,
                           "Custom-Channel-Vars": {"A": value, "B": "b"}}],
                         profile="internal", global_vars=variables)
    parsed = fs_run_dial(protect_expansion(data))
    assert parsed["globals"] == expected_vars(variables, "{}")
    assert not parsed["nested"]
    [[leg]] = parsed["groups"]
    assert leg["vars"] == expected_vars({"ecallmgr_A": value, "ecallmgr_B": "b"}, "[]")
    assert (leg["type"], leg["data"]) == ("sofia", f"internal/{CONTACT}")


@pytest.mark.parametrize("value", ["true", "TRUE", "true,more", "trueish"])
def test_a_variable_named_like_the_nested_vars_switch_cannot_flip_it(value):
    """``origination_nested_vars=true`` anywhere in the raw string disables FreeSWITCH's
    ``${`` check on variable values; a CCV key can end with that name."""
    ccvs = {"origination_nested_vars": value, "Origination_Nested_Vars": value}
    data = bridge_target([{"Invite-Format": "route", "Route": CONTACT,
                           "Custom-Channel-Vars": ccvs}], profile="internal",
                         global_vars=global_vars({"Custom-Channel-Vars": ccvs}))
    assert b"origination_nested_vars=true" not in data.lower().encode()
    parsed = fs_run_dial(protect_expansion(data))
    assert not parsed["nested"]
    assert parsed["globals"]["ecallmgr_origination_nested_vars"] == value
    assert parsed["groups"][0][0]["vars"]["ecallmgr_Origination_Nested_Vars"] == value


def test_protect_expansion_leaves_inert_strings_alone():
    assert protect_expansion("sofia/internal/sip:1@h") == "sofia/internal/sip:1@h"
    assert protect_expansion("cost $5") == "cost $5"
    assert protect_expansion("a\\,b") == "a\\,b"
    assert protect_expansion("${x}") == "\\${x}"
    assert protect_expansion("a\\sb") == "a\\\\sb"


VALUE = st.text(alphabet=st.sampled_from(list(" ,|=!'\"\\{}[]^:_$%<>\n\tabx")), max_size=24) | \
    st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(glob=st.dictionaries(st.sampled_from(["g1", "g2", "ecallmgr_G"]), VALUE, max_size=3),
       legs=st.lists(st.dictionaries(st.sampled_from(["Account-ID", "K", "x"]), VALUE,
                                     max_size=3), min_size=1, max_size=3),
       names=st.lists(VALUE, min_size=1, max_size=3),
       method=st.sampled_from(["single", "simultaneous"]))
def test_any_values_round_trip(glob, legs, names, method):
    endpoints = [{"Invite-Format": "route", "Route": f"sip:{i}@10.0.0.{i}",
                  "Custom-Channel-Vars": ccvs, "Caller-ID-Name": names[i % len(names)]}
                 for i, ccvs in enumerate(legs)]
    data = bridge_target(endpoints, method, profile="internal", global_vars=glob)
    expanded, names_expanded = fs_expand(protect_expansion(data))
    assert names_expanded == []
    assert expanded == data
    parsed = fs_originate(expanded)
    assert parsed["globals"] == expected_vars(glob, "{}")
    assert not parsed["nested"]
    flat = [leg for group in parsed["groups"] for leg in group]
    assert len(parsed["groups"]) == (len(endpoints) if method == "single" else 1)
    assert len(flat) == len(endpoints)
    for i, (leg, ccvs) in enumerate(zip(flat, legs, strict=True)):
        want = expected_vars({f"ecallmgr_{k}": v for k, v in ccvs.items()}, "[]")
        # a caller-id name is a SIP display name: no '"', '\\' doubled (dialstring.display_name)
        display = names[i % len(names)].replace('"', "").replace("\\", "\\\\")
        for ch, code in (("%", "%25"), ("@", "%40"), ("/", "%2F"), (":", "%3A")):
            display = display.replace(ch, code)
        name = expected_value(display, "[]", sip_text=True)
        if name:
            want["effective_caller_id_name"] = name
        assert leg["vars"] == want
        assert leg["data"] == f"internal/sip:{i}@10.0.0.{i}"


# -- bgapi originate: the API splits its argument on spaces ------------------------------

def test_the_blank_tokenizer_model_splits_like_freeswitch():
    assert fs_separate_blank("sofia/internal/1000 &park()") == ["sofia/internal/1000", "&park()"]
    assert fs_separate_blank("a  'b c'  d\\se") == ["a", "b c", "d e"]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(VALUE, min_size=1, max_size=4))
def test_api_arg_keeps_each_argument_whole(values):
    values = [v for v in values if v] or ["x"]
    line = " ".join(api_arg(v) for v in values) + " &park()"
    assert "\n" not in line and "\r" not in line
    assert fs_separate_blank(line) == [*values, "&park()"]


def test_originate_command_carries_the_dial_string_intact():
    target = bridge_target(ENDPOINTS, "simultaneous", profile="internal",
                           global_vars={"origination_caller_id_name": "Front Desk 'A'"})
    [aleg, exten] = fs_separate_blank(f"{api_arg(target)} &park()")
    assert (aleg, exten) == (target, "&park()")
    parsed = fs_originate(aleg)
    assert parsed["globals"] == {"origination_caller_id_name": "Front Desk 'A'"}
    assert parsed["groups"][0][0]["vars"]["effective_caller_id_name"] == "Front, Desk"
    with pytest.raises(ValueError):
        api_arg("")
