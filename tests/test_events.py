"""switch_bridge.freeswitch.translate: FreeSWITCH events → call_event / reg_success, on the
real captures.

Every event of every modern capture (plain and JSON) goes through the translators; the
crafted events are real capture events re-encoded (``tests/esl_standin``) with the
headers a case needs, so they travel the same wire format and parser as the real ones.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import schemas
from schemas import contracts
from schemas.keys import call_event_key, reg_success_key
from switch_bridge.freeswitch import translate as events
from switch_bridge.freeswitch.esl.protocol import (
    UNDEF,
    Event,
    FrameParser,
    parse_event,
    parse_plain_body,
)
from switch_bridge.freeswitch.esl.protocol import events as events_command
from tests.esl_standin import encode_event
from whistle_tasks.data.registrations import clean_contact

CASES = ("a_register_unregister", "b_register_expire", "c_call_2000_tone_park",
         "d_call_1001_bridge", "e_call_9999_busy", "f_esl_bgapi_sendmsg")
NODE = "bridge@test"
SENDMSG_UUID = "c0ffee00-0000-4000-8000-0000000000e1"
JOB_UUID = "c0ffee00-0000-4000-8000-00000000000f"


def capture(fixtures_dir: Path, case: str, fmt: str) -> list[Event]:
    path = fixtures_dir / "modern" / case / f"esl_{case[0]}_{fmt}.txt"
    frames = FrameParser().feed(path.read_bytes())
    return [e for e in map(parse_event, frames) if e is not None]


def only(items: list) -> object:
    assert len(items) == 1, items
    return items[0]


def reencode(event: Event, changes: dict[str, str | None], fmt: str = "plain") -> Event:
    """``event`` with headers changed (None removes), through the wire and the parser."""
    pairs = [(n, v) for n, v in event.items() if n not in changes]
    pairs += [(n, v) for n, v in changes.items() if v is not None]
    frames = FrameParser().feed(encode_event(pairs, event.body or None, fmt))
    return parse_event(only(frames))


def payload(msg: dict) -> dict:
    """A message without the headers that differ on every build."""
    return {k: v for k, v in msg.items() if k != "Msg-ID"}


def all_values(obj: object) -> list:
    if isinstance(obj, dict):
        return [v for value in obj.values() for v in all_values(value)]
    return [obj]


@pytest.fixture(scope="module")
def captures(fixtures_dir: Path) -> dict[tuple[str, str], list[Event]]:
    return {(case, fmt): capture(fixtures_dir, case, fmt)
            for case in CASES for fmt in ("plain", "json")}


# --------------------------------------------------------------------------- call events


@pytest.mark.parametrize("fmt", ["plain", "json"])
@pytest.mark.parametrize("case", CASES)
def test_every_event_of_every_capture(captures, case, fmt):
    forwarded = set()
    for event in captures[case, fmt]:
        result = events.call_event(event, node=NODE)
        if event.name not in events.CALL_EVENTS:
            assert result is None, event
            continue
        key, msg = result
        forwarded.add(event.name)
        assert schemas.validate(msg) is msg
        assert key == call_event_key(event.name, event.uuid)
        assert (msg["Event-Category"], msg["Event-Name"]) == ("call_event", event.name)
        assert msg["Call-ID"] == event.get("Unique-ID")
        assert msg["Node"] == NODE and msg["App-Name"] == "whistle-bridge"
        assert len(msg["Msg-ID"]) == 32
        assert msg["Timestamp"] == int(event["Event-Date-Timestamp"]) / 1e6
        assert msg["Switch-Hostname"] == "vm"
        assert UNDEF not in all_values(msg) and "_none_" not in all_values(msg)
    if case[0] in "cdef":
        assert forwarded >= {"CHANNEL_CREATE", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE",
                             "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"}
    else:
        assert not forwarded


@pytest.mark.parametrize("case", CASES)
def test_plain_and_json_give_the_same_messages(captures, case):
    plain = {e["Event-Sequence"]: e for e in captures[case, "plain"]}
    json_ = {e["Event-Sequence"]: e for e in captures[case, "json"]}
    assert plain.keys() == json_.keys()
    compared = 0
    for seq, event in plain.items():
        for translate in (events.call_event, events.reg_success, events.deregistration):
            a, b = translate(event, node=NODE), translate(json_[seq], node=NODE)
            if a is None:
                assert b is None
                continue
            if translate is events.call_event:
                assert a[0] == b[0]
                a, b = a[1], b[1]
            assert payload(a) == payload(b)
            compared += 1
    assert compared


def test_channel_fields_of_a_call(captures):
    evs = captures["c_call_2000_tone_park", "plain"]
    create = only([e for e in evs if e.name == "CHANNEL_CREATE"])
    _, msg = events.call_event(create, node=NODE)
    assert msg["Call-ID"] == create.uuid
    assert msg["Call-Direction"] == "inbound"
    assert msg["Caller-ID-Name"] == msg["Caller-ID-Number"] == "1000"
    assert msg["Channel-State"] == create["Channel-State"]
    assert msg["Channel-Call-State"] == create["Channel-Call-State"]
    assert "Application-Response" not in msg and "Hangup-Cause" not in msg


def test_playback_completes_with_file_played(captures):
    evs = captures["c_call_2000_tone_park", "plain"]
    complete = [events.call_event(e, node=NODE)[1] for e in evs
                if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application") == "playback"]
    msg = only(complete)
    assert msg["Application-Response"] == "FILE PLAYED"
    assert msg["Application-Data"] == "tone_stream://%(200,0,440)"
    assert msg["Application-Name"] == "tones"  # a playback of a tone stream is the tones command


def test_none_and_undef_responses_leave_the_field_out(captures):
    evs = captures["c_call_2000_tone_park", "plain"]
    answer = only([e for e in evs if e.name == "CHANNEL_EXECUTE_COMPLETE"
                   and e.get("Application") == "answer"])
    assert answer["Application-Response"] == "_none_"
    msg = events.call_event(answer, node=NODE)[1]
    assert msg["Application-Name"] == "answer"
    assert "Application-Response" not in msg and "Application-Data" not in msg
    undef = reencode(answer, {"Application-Response": UNDEF, "Caller-Caller-ID-Name": UNDEF})
    msg = events.call_event(undef, node=NODE)[1]
    assert "Application-Response" not in msg and "Caller-ID-Name" not in msg


def test_sendmsg_execution_carries_its_application_uuid(captures):
    """The call_event schema has no Application-UUID: the bridge reads it from the event."""
    assert "Application-UUID" not in schemas.get("call_event").fields
    for fmt in ("plain", "json"):
        evs = captures["f_esl_bgapi_sendmsg", fmt]
        ours = [e for e in evs if events.application_uuid(e) == SENDMSG_UUID]
        assert [e.name for e in ours] == ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"]
        msg = events.call_event(ours[1], node=NODE)[1]
        assert msg["Application-Response"] == "FILE PLAYED"
        assert msg["Application-Data"] == "tone_stream://%(500,0,880)"
        assert "Application-UUID" not in msg
    other = [e for e in captures["f_esl_bgapi_sendmsg", "plain"]
             if e.name == "CHANNEL_EXECUTE_COMPLETE"
             and events.application_uuid(e) not in (None, SENDMSG_UUID)]
    assert other  # FreeSWITCH gives every execution a random one


@pytest.mark.parametrize(("case", "cause", "code"), [
    ("c_call_2000_tone_park", "NORMAL_CLEARING", "sip:200"),
    ("e_call_9999_busy", "USER_BUSY", None),
])
def test_hangup_complete_with_repeated_hangup_cause(captures, case, cause, code):
    for fmt in ("plain", "json"):
        event = only([e for e in captures[case, fmt] if e.name == "CHANNEL_HANGUP_COMPLETE"])
        assert event.get_all("Hangup-Cause") == [cause, cause]
        msg = events.call_event(event, node=NODE)[1]
        assert msg["Hangup-Cause"] == cause
        assert msg.get("Hangup-Code") == code
        assert msg["Duration-Seconds"] == int(event["variable_duration"])
        assert msg["Billing-Seconds"] == int(event["variable_billsec"])
        assert msg["Ringing-Seconds"] == int(event["variable_progresssec"])
        assert msg["Disposition"] == event["variable_endpoint_disposition"]


def test_bridge_events_name_the_other_leg(captures):
    evs = captures["d_call_1001_bridge", "plain"]
    bridge = only([e for e in evs if e.name == "CHANNEL_BRIDGE"])
    msg = events.call_event(bridge, node=NODE)[1]
    assert msg["Other-Leg-Call-ID"] == bridge["Bridge-B-Unique-ID"] != msg["Call-ID"]
    assert msg["Other-Leg-Destination-Number"] == "1001"
    assert msg["Callee-ID-Number"] == "1001"
    # without Other-Leg-Unique-ID, the Bridge-A/B pair still names the other leg
    bare = reencode(bridge, {"Other-Leg-Unique-ID": None})
    assert events.call_event(bare, node=NODE)[1]["Other-Leg-Call-ID"] == \
        bridge["Bridge-B-Unique-ID"]
    complete = only([e for e in evs if e.name == "CHANNEL_EXECUTE_COMPLETE"])
    msg = events.call_event(complete, node=NODE)[1]
    assert (msg["Application-Name"], msg["Application-Response"]) == ("bridge", "SUCCESS")
    assert complete["Application-Response"] == "_none_"


def test_application_response_special_cases(captures):
    evs = captures["c_call_2000_tone_park", "plain"]
    base = only([e for e in evs if e.name == "CHANNEL_EXECUTE_COMPLETE"
                 and e.get("Application") == "playback"])

    def response(fmt: str = "plain", **changes: str | None) -> dict:
        event = reencode(base, {k.replace("_", "-") if k[0].isupper() else k: v
                                for k, v in changes.items()}, fmt)
        return events.call_event(event, node=NODE)[1]

    for fmt in ("plain", "json"):
        msg = response(fmt, Application="play_and_get_digits",
                       Application_Data="1 4 3 5000 # file.wav bad.wav collected_digits \\d+",
                       variable_collected_digits="1234")
        assert msg["Application-Name"] == "play_and_collect_digits"
        assert msg["Application-Response"] == "1234"
    msg = response(Application="play_and_get_digits", variable_collected_digits=UNDEF)
    assert msg["Application-Response"] == ""
    msg = response(Application="bridge", variable_originate_disposition="USER_BUSY")
    assert msg["Application-Response"] == "USER_BUSY"
    msg = response(Application="record", Application_Data="/var/spool/rec/a.wav 20 500 5")
    assert (msg["Application-Name"], msg["Application-Response"]) == \
        ("record", "/var/spool/rec/a.wav")
    msg = response(Application="record", Application_Data="/var/spool/x.wav 20",
                   Record_File_Path="/var/rec/x.wav")
    assert msg["Application-Response"] == "/var/rec/x.wav"
    msg = response(Application="playback", Application_Data="/media/hello.wav")
    assert (msg["Application-Name"], msg["Application-Response"]) == ("play", "FILE PLAYED")
    msg = response(Application="pre_answer", Application_Data=None)
    assert msg["Application-Name"] == "progress"
    msg = response(Application="conference", Application_Data="room@default")
    assert msg["Application-Name"] == "conference"
    # the special cases are for completions only
    execute = reencode(base, {"Event-Name": "CHANNEL_EXECUTE", "Application": "bridge",
                              "variable_originate_disposition": "SUCCESS",
                              "Application-Response": None})
    assert "Application-Response" not in events.call_event(execute, node=NODE)[1]


def test_custom_channel_vars(captures):
    evs = captures["d_call_1001_bridge", "json"]
    hangup = [e for e in evs if e.name == "CHANNEL_HANGUP_COMPLETE"][-1]
    assert not [n for n, _ in hangup.items() if n.startswith("variable_ecallmgr_")]
    assert "Custom-Channel-Vars" not in events.call_event(hangup, node=NODE)[1]
    ccv = {"variable_ecallmgr_Account-ID": "a" * 32, "variable_ecallmgr_Realm": "example.com",
           "variable_ecallmgr_Caller Name": "Zoë & co",  # survives the URL encoding
           "variable_ecallmgr_Gone": UNDEF, "variable_ecallmgr_": "no name",
           "ecallmgr_Not-A-Variable": "x"}
    for fmt in ("plain", "json"):
        msg = events.call_event(reencode(hangup, ccv, fmt), node=NODE)[1]
        assert msg["Custom-Channel-Vars"] == {"Account-ID": "a" * 32, "Realm": "example.com",
                                              "Caller Name": "Zoë & co"}
        schemas.validate(msg)


def test_dtmf_and_tone_events():
    evs = []
    for fmt in ("plain", "json"):
        pairs = [("Event-Name", "DTMF"), ("Unique-ID", "u-1"), ("DTMF-Digit", "#"),
                 ("DTMF-Duration", "2000"), ("Event-Date-Timestamp", "1795687934302591")]
        evs.append(parse_event(only(FrameParser().feed(encode_event(pairs, None, fmt)))))
    for event in evs:
        key, msg = events.call_event(event, node=NODE)
        assert key == "call.DTMF.u-1"
        assert (msg["DTMF-Digit"], msg["DTMF-Duration"]) == ("#", 2000)
        assert msg["Timestamp"] == 1795687934.302591
    tone = Event([("Event-Name", "DETECTED_TONE"), ("Unique-ID", "u-1"),
                  ("Detected-Tone", "FAX"), ("DTMF-Duration", "-5")])
    msg = events.call_event(tone, node=NODE)[1]
    assert msg["Detected-Tone"] == "FAX"
    assert "DTMF-Duration" not in msg and "Timestamp" not in msg  # nothing invalid is copied
    schemas.validate(msg)


def test_call_event_without_unique_id_is_an_error():
    with pytest.raises(events.EventError, match="CHANNEL_ANSWER without Unique-ID"):
        events.call_event(Event([("Event-Name", "CHANNEL_ANSWER")]), node=NODE)
    assert events.call_event(Event([("Event-Name", "CHANNEL_PARK")]), node=NODE) is None


@given(st.text(min_size=1, max_size=60), st.sampled_from(events.CALL_EVENTS))
def test_routing_key_is_call_event_key(call_id, name):
    event = Event([("Event-Name", name), ("Unique-ID", call_id)])
    if call_id == UNDEF:
        return
    key, msg = events.call_event(event, node=NODE)
    assert key == call_event_key(name, call_id)
    assert msg["Call-ID"] == call_id


# --------------------------------------------------------------------------- registrations


@pytest.mark.parametrize("fmt", ["plain", "json"])
@pytest.mark.parametrize(("case", "expires", "port"), [
    ("a_register_unregister", 3600, 5070), ("b_register_expire", 20, 5070),
    ("d_call_1001_bridge", 3600, 5071),
])
def test_sofia_register_is_a_reg_success(captures, case, expires, port, fmt):
    regs = [(e, m) for e in captures[case, fmt] if (m := events.reg_success(e, node=NODE))]
    event, msg = only(regs)
    assert event.subclass == "sofia::register"
    assert schemas.validate(msg) is msg
    assert msg["Event-Name"] == "reg_success" and msg["Node"] == NODE
    user = "1001" if case[0] == "d" else "1000"
    assert (msg["Realm"], msg["Username"]) == ("127.0.0.1", user)
    assert msg["Contact"] == msg["Original-Contact"] == \
        f'"" <sip:{user}@127.0.0.1:{port};transport=UDP>'
    assert msg["Expires"] == expires
    assert msg["Event-Timestamp"] == int(event["Event-Date-Timestamp"]) / 1e6
    assert msg["Status"] == "Registered(UDP)"
    assert (msg["Network-IP"], msg["Network-Port"]) == ("127.0.0.1", port)
    assert msg["FreeSWITCH-Hostname"] == "vm" and msg["Profile-Name"] == "internal"
    assert msg["Call-ID"] == event["call-id"]
    assert contracts.REG_SUCCESS.key(msg) == reg_success_key("127.0.0.1", user)
    assert events.deregistration(event, node=NODE) is None
    assert events.call_event(event, node=NODE) is None


@pytest.mark.parametrize("case", CASES)
def test_pre_register_and_register_attempt_are_not_registrations(captures, case):
    attempts = [e for e in captures[case, "plain"]
                if e.subclass in ("sofia::pre_register", "sofia::register_attempt")]
    assert attempts
    for event in attempts:
        assert events.reg_success(event, node=NODE) is None
        assert events.deregistration(event, node=NODE) is None
    if case[0] in "cdef":  # INVITE digest auth: from-user is the called number
        assert {e["from-user"] for e in attempts} & {"2000", "1001", "9999"}
        assert all(e["status"] == "Registered(UDP)" for e in attempts)


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_unregister_is_a_deregistration(captures, fmt):
    evs = captures["a_register_unregister", fmt]
    registered = only([m for e in evs if (m := events.reg_success(e, node=NODE))])
    event, msg = only([(e, m) for e in evs if (m := events.deregistration(e, node=NODE))])
    assert event.subclass == "sofia::unregister" and "status" not in event
    assert schemas.validate(msg) is msg
    assert msg["Expires"] == 0
    assert (msg["Realm"], msg["Username"]) == ("127.0.0.1", "1000")
    assert "Status" not in msg
    # the registrar removes the binding by its cleaned contact: the same one
    assert clean_contact(msg["Contact"]) == clean_contact(registered["Contact"]) == \
        "sip:1000@127.0.0.1:5070;transport=UDP"
    assert contracts.REG_SUCCESS.key(msg) == contracts.REG_SUCCESS.key(registered)


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_expire_is_a_deregistration(captures, fmt):
    evs = captures["b_register_expire", fmt]
    registered = only([m for e in evs if (m := events.reg_success(e, node=NODE))])
    event, msg = only([(e, m) for e in evs if (m := events.deregistration(e, node=NODE))])
    assert event.subclass == "sofia::expire"
    assert "from-user" not in event and event["user"] == "1000" and event["host"] == "127.0.0.1"
    assert int(event["expires"]) > 1_700_000_000  # absolute: not copied as a duration
    assert schemas.validate(msg) is msg
    assert msg["Expires"] == 0
    assert (msg["Realm"], msg["Username"]) == ("127.0.0.1", "1000")
    assert clean_contact(msg["Contact"]) == clean_contact(registered["Contact"])
    assert msg["Event-Timestamp"] > registered["Event-Timestamp"] + 80  # 20 s + margin + sweep


def test_expire_without_realm_and_username_uses_host_and_user(captures):
    evs = captures["b_register_expire", "plain"]
    expire = only([e for e in evs if e.subclass == "sofia::expire"])
    bare = reencode(expire, {"realm": None, "username": None, "contact": None,
                             "user": "+14155550100", "host": "example.com"})
    msg = events.deregistration(bare, node=NODE)
    assert (msg["Username"], msg["Realm"], msg["Expires"]) == ("+14155550100", "example.com", 0)
    assert msg["Contact"] == ""  # the registrar then drops every binding of the user
    schemas.validate(msg)
    assert contracts.REG_SUCCESS.key(msg) == "registration.success.example%2Ecom.%2B14155550100"


def test_register_fallbacks_and_errors(captures):
    evs = captures["a_register_unregister", "plain"]
    register = only([e for e in evs if e.subclass == "sofia::register"])
    msg = events.reg_success(reencode(register, {"realm": None, "username": None,
                                                 "from-host": "Example.COM"}), node=NODE)
    assert (msg["Realm"], msg["Username"]) == ("Example.COM", "1000")
    assert contracts.REG_SUCCESS.key(msg) == reg_success_key("example.com", "1000")
    with pytest.raises(events.EventError, match="without contact"):
        events.reg_success(reencode(register, {"contact": None}), node=NODE)
    with pytest.raises(events.EventError, match="expires '1h'"):
        events.reg_success(reencode(register, {"expires": "1h"}), node=NODE)
    with pytest.raises(events.EventError, match="without a user"):
        events.reg_success(reencode(register, {"username": None, "from-user": None,
                                               "to-user": None}), node=NODE)
    with pytest.raises(events.EventError, match="without a realm"):
        events.reg_success(reencode(register, {"realm": None, "from-host": None,
                                               "to-host": None}), node=NODE)
    assert issubclass(events.EventError, ValueError)


def test_directory_variables_of_the_user_fill_account_ids(captures):
    evs = captures["a_register_unregister", "json"]
    register = only([e for e in evs if e.subclass == "sofia::register"])
    msg = events.reg_success(reencode(register, {"ecallmgr_Account-ID": "acc",
                                                 "ecallmgr_Authorizing-ID": "dev"}, "json"),
                             node=NODE)
    assert (msg["Account-ID"], msg["Authorizing-ID"]) == ("acc", "dev")


def test_register_event_of_2009(fixtures_dir):
    """FreeSWITCH of 2009 wrote ``statusd`` (and the subclass twice)."""
    body = (fixtures_dir / "fsdocs_multicast_CUSTOM_sofia_register_2009_plain.txt").read_bytes()
    event = parse_plain_body(body)
    msg = events.reg_success(event, node=NODE)
    schemas.validate(msg)
    assert msg["Status"] == "Registered(UDP-NAT)"
    assert (msg["Realm"], msg["Username"], msg["Expires"]) == \
        ("dev-cs2.fusedsolutions.com", "1000", 900)
    assert msg["Contact"].startswith('"1000" <sip:1000@192.168.1.23:5060;fs_nat=yes;')
    assert math.isclose(msg["Event-Timestamp"], 1245190546.126571)


# --------------------------------------------------------------------------- helpers


def test_subscription_puts_custom_and_its_subclasses_last():
    names = events.subscription()
    assert names[-4:] == ["CUSTOM", "sofia::register", "sofia::unregister", "sofia::expire"]
    assert set(events.CALL_EVENTS) | {"HEARTBEAT", "BACKGROUND_JOB"} == set(names[:-4])
    assert "CHANNEL_EXECUTE_ERROR" not in names  # ours, not FreeSWITCH's
    assert "sofia::pre_register" not in names
    extra = events.subscription(["CHANNEL_PARK", "HEARTBEAT", "CUSTOM"])
    assert extra[-5:] == ["CHANNEL_PARK", "CUSTOM", "sofia::register", "sofia::unregister",
                          "sofia::expire"]
    assert events_command("json", names).startswith(b"events json CHANNEL_CREATE ")


def test_background_job(captures, fixtures_dir):
    for fmt in ("plain", "json"):
        jobs = [r for e in captures["f_esl_bgapi_sendmsg", fmt]
                if (r := events.background_job(e)) is not None]
        job_uuid, ok, result = only(jobs)
        assert (job_uuid, ok) == (JOB_UUID, True)
        assert len(result) == 36 and result.count("-") == 4  # the originated leg's uuid
    # (its outer Content-Length is wrong: SOURCES.md; the body is parsed on its own)
    event = parse_plain_body(
        (fixtures_dir / "neventsocket_BACKGROUND_JOB_plain_err.txt").read_bytes()
        .split(b"\n\n", 1)[1])
    assert events.background_job(event) == ("7f4db78a-17d7-11dd-b7a0-db4edd065621", False,
                                            "Error")
    status = Event([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "j")], "UP 0 years\nok\n")
    assert events.background_job(status) == ("j", True, "UP 0 years\nok")
    usage = Event([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "j")], "-USAGE: x\n")
    assert events.background_job(usage) == ("j", False, "-USAGE: x")
    with pytest.raises(events.EventError, match="without Job-UUID"):
        events.background_job(Event([("Event-Name", "BACKGROUND_JOB")], "+OK\n"))
    assert events.background_job(Event([("Event-Name", "HEARTBEAT")])) is None


def test_heartbeat(captures):
    evs = captures["b_register_expire", "json"]
    beats = [e for e in evs if events.is_heartbeat(e)]
    assert len(beats) == 6 and all(e.name == "HEARTBEAT" for e in beats)
    assert not events.is_heartbeat(only([e for e in evs if e.subclass == "sofia::expire"]))
