"""schemas.command: call control commands (Event-Category call, Event-Name command)."""

from __future__ import annotations

import pytest

import schemas
from schemas.command import COMMANDS, ENDPOINT, QUEUED

ENDPOINT_A = {"Invite-Format": "username", "To-User": "1000", "To-Realm": "example.com",
              "Endpoint-Timeout": "20", "Endpoint-Delay": 0, "Bypass-Media": "false",
              "Ignore-Early-Media": True, "Endpoint-Progress-Timeout": 6,
              "Outgoing-Caller-ID-Name": "Alice", "Outgoing-Caller-ID-Number": "1000",
              "Custom-Channel-Vars": {"Authorizing-ID": "d1"}, "SIP-Headers": {"X-A": "b"}}
ENDPOINT_B = {"Invite-Format": "route", "Route": "sip:+14155550100@gw.example.net",
              "Media": "bypass", "Codecs": ["PCMU"]}

MINIMAL = {
    "answer": {}, "hangup": {"Hangup-Cause": "USER_BUSY"}, "park": {}, "progress": {},
    "noop": {"Msg-ID": "n-1"},
    "conference": {"Conference-ID": "acct-room", "Profile": "default", "PIN": "1234",
                   "Moderator": True, "Mute": "false", "Deaf": False},
    "valet_park": {"Lot": "acct-default", "Slot": "701"},
    "play": {"Media-Name": "/var/lib/whistle/media/hello.wav", "Terminators": ["#"]},
    "tones": {"Tones": [{"Frequencies": [350, "440"], "Duration-ON": "1000",
                        "Duration-OFF": 0, "Volume": -7, "Repeat": 2}]},
    "record": {"Media-Name": "/var/lib/whistle/rec/r.wav", "Terminators": "#", "Time-Limit": 20,
               "Silence-Threshold": "500", "Silence-Hits": 5},
    "play_and_collect_digits": {"Minimum-Digits": 1, "Maximum-Digits": "4", "Timeout": 5000,
                                "Terminators": ["#"], "Media-Name": "m",
                                "Media-Tries": 3, "Failed-Media-Name": "f",
                                "Digits-Regex": "^\\d+$"},
    "say": {"Language": "en", "Type": "number", "Method": "pronounced", "Say-Text": "42"},
    "sleep": {"Time": "250"},
    "respond": {"Response-Code": "486", "Response-Message": "Busy Here"},
    "set": {"Custom-Channel-Vars": {"A": "1"}, "Custom-Call-Vars": {"B": 2}},
    "bridge": {"Endpoints": [ENDPOINT_A, ENDPOINT_B], "Timeout": 30,
               "Continue-On-Fail": "true", "Ignore-Early-Media": False,
               "Ringback": "%(2000,4000,440,480)", "Dial-Endpoint-Method": "simultaneous",
               "Media": "process", "Outgoing-Caller-ID-Name": "A",
               "Outgoing-Caller-ID-Number": "1", "Caller-ID-Name": "B", "Caller-ID-Number": "2",
               "SIP-Headers": {"X-B": "c"}, "Custom-Channel-Vars": {"C": True}},
    "queue": {"Commands": [{"Application-Name": "answer"},
                           {"Application-Name": "play", "Media-Name": "m",
                            "Insert-At": "tail"}]},
    "store": {"Media-Name": "vm-1.wav", "Media-Transfer-Destination": "http://m/media/t.wav",
              "Media-Transfer-Method": "put"},
}


def raised(func, *args) -> schemas.MessageError:
    with pytest.raises(schemas.MessageError) as info:
        func(*args)
    return info.value


def command(app, **extra):
    return schemas.build(app, {"Call-ID": "c-1", **MINIMAL[app], **extra})


def test_the_table_is_complete():
    assert set(MINIMAL) == set(COMMANDS)
    assert set(QUEUED) == set(COMMANDS) - {"queue"}


@pytest.mark.parametrize("app", sorted(MINIMAL))
def test_every_application_builds_and_is_found_by_its_name(app):
    msg = command(app, **{"Insert-At": "head"})
    assert (msg["Event-Category"], msg["Event-Name"], msg["Application-Name"]) == \
        ("call", "command", app)
    spec = schemas.lookup("call", "command", app)
    assert spec is schemas.get(app) and spec.application_name == app
    assert spec.required[:2] == ("Application-Name", "Call-ID")
    assert schemas.validate(msg) is msg
    for field in MINIMAL[app]:
        assert msg[field] == MINIMAL[app][field]


@pytest.mark.parametrize("app", sorted(MINIMAL))
def test_every_application_requires_call_id(app):
    err = raised(schemas.build, app, MINIMAL[app])
    assert err.message_name == app and err.errors == {"Call-ID": ["missing"]}


def test_validate_dispatches_on_application_name():
    msg = command("play")
    del msg["Media-Name"]
    err = raised(schemas.validate, msg)
    assert str(err) == "play: Media-Name: missing"
    err = raised(schemas.validate, {**command("answer"), "Application-Name": "dance"})
    assert err.message_name == "command"
    assert "Application-Name: 'dance' is not one of ['answer'," in str(err)
    err = raised(schemas.validate, {**command("answer"), "Application-Name": None})
    assert err.errors == {"Application-Name": ["missing"]}


def test_insert_at_values():
    for where in ("head", "tail", "flush", "now"):
        assert command("hangup", **{"Insert-At": where})["Insert-At"] == where
    err = raised(schemas.validate, {**command("hangup"), "Insert-At": "later"})
    assert "Insert-At: 'later' is not one of ['head', 'tail', 'flush', 'now']" in str(err)


def test_play_and_collect_digits_lists_every_missing_field():
    err = raised(schemas.build, "play_and_collect_digits", {"Call-ID": "c"})
    assert set(err.errors) == {"Minimum-Digits", "Maximum-Digits", "Timeout", "Terminators",
                               "Media-Name", "Media-Tries", "Failed-Media-Name", "Digits-Regex"}
    err = raised(schemas.validate, {**command("play_and_collect_digits"), "Minimum-Digits": "one",
                                    "Terminators": ["#", "x"]})
    assert set(err.errors) == {"Minimum-Digits", "Terminators.1"}


def test_say_set_respond_sleep_refusals():
    err = raised(schemas.validate, {**command("say"), "Type": "poem", "Method": "sung"})
    assert set(err.errors) == {"Type", "Method"}
    err = raised(schemas.build, "set", {"Call-ID": "c", "Custom-Channel-Vars": {"A": [1]}})
    assert set(err.errors) == {"Custom-Channel-Vars.A", "Custom-Call-Vars"}
    assert command("respond", **{"Response-Code": 404})["Response-Code"] == 404
    err = raised(schemas.validate, {**command("respond"), "Response-Code": "Busy"})
    assert list(err.errors) == ["Response-Code"]
    err = raised(schemas.validate, {**command("sleep"), "Time": 0.5})
    assert list(err.errors) == ["Time"]


def test_bridge_endpoints():
    msg = command("bridge")
    assert msg["Endpoints"] == [ENDPOINT_A, ENDPOINT_B]
    endpoints = [{"To-User": "1000"}, {**ENDPOINT_B, "Bypass-Media": "yes", "Media": "proxy"},
                 {**ENDPOINT_A, "Endpoint-Timeout": "soon", "Invite-Format": "sip"}]
    err = raised(schemas.validate, {**msg, "Endpoints": endpoints,
                                    "Dial-Endpoint-Method": "random"})
    assert err.message_name == "bridge"
    assert set(err.errors) == {"Endpoints.0.Invite-Format", "Endpoints.1.Bypass-Media",
                               "Endpoints.1.Media", "Endpoints.2.Endpoint-Timeout",
                               "Endpoints.2.Invite-Format", "Dial-Endpoint-Method"}
    assert "Endpoints.0.Invite-Format: missing" in str(err)
    err = raised(schemas.build, "bridge", {"Call-ID": "c"})
    assert err.errors == {"Endpoints": ["missing"]}


def test_bridge_endpoint_fields_and_pruning():
    assert {"Invite-Format", "Endpoint-Timeout", "Endpoint-Delay", "Bypass-Media",
            "Ignore-Early-Media", "Route", "To-DID", "Outgoing-Caller-ID-Name",
            "Endpoint-Progress-Timeout", "Progress-Timeout"} <= set(ENDPOINT.fields)
    msg = command("bridge", Endpoints=[{**ENDPOINT_A, "Shoe-Size": 42}])
    assert msg["Endpoints"] == [ENDPOINT_A]


def test_tones():
    tones = command("tones")["Tones"]
    assert tones == MINIMAL["tones"]["Tones"]
    err = raised(schemas.validate, {**command("tones"), "Tones": [
        {"Frequencies": [440]}, {"Frequencies": "440", "Duration-ON": 1, "Duration-OFF": 1,
                                 "Volume": "loud"}]})
    assert set(err.errors) == {"Tones.0.Duration-ON", "Tones.0.Duration-OFF",
                               "Tones.1.Frequencies", "Tones.1.Volume"}
    assert "Tones.0.Duration-ON: missing" in str(err)


def test_queue_validates_each_command_by_its_application():
    msg = command("queue")
    assert schemas.validate(msg) is msg
    commands = [{"Application-Name": "answer"}, {"Application-Name": "play"},
                {"Application-Name": "dance"}, {"Media-Name": "m"}, "hangup",
                {"Application-Name": "queue", "Commands": []},
                {"Application-Name": "tones", "Tones": [{"Frequencies": [1]}]}]
    err = raised(schemas.validate, {**msg, "Commands": commands})
    assert err.message_name == "queue"
    assert set(err.errors) == {"Commands.1.Media-Name", "Commands.2.Application-Name",
                               "Commands.3.Application-Name", "Commands.4",
                               "Commands.5.Application-Name", "Commands.6.Tones.0.Duration-ON",
                               "Commands.6.Tones.0.Duration-OFF"}
    text = str(err)
    assert "Commands.1.Media-Name: missing" in text
    assert "Commands.2.Application-Name: 'dance' is not one of" in text
    assert "Commands.3.Application-Name: missing" in text


def test_queue_commands_need_no_default_headers_and_lose_unknown_keys_when_built():
    msg = command("queue", Commands=[
        {"Application-Name": "play", "Media-Name": "m", "Msg-ID": "x", "App-Name": "y",
         "Call-ID": "c-1", "Colour": "red"},
        {"Application-Name": "noop", "Msg-ID": "n-1"}])
    assert msg["Commands"] == [{"Application-Name": "play", "Media-Name": "m"},
                               {"Application-Name": "noop", "Msg-ID": "n-1"}]


def test_store_names_a_file_and_where_it_goes():
    assert command("store")["Media-Transfer-Method"] == "put"
    error = raised(schemas.build, "store", {"Call-ID": "c-1", "Media-Name": "a.wav",
                                            "Media-Transfer-Method": "post"})
    assert "Media-Transfer-Destination: missing" in str(error)
    assert "Media-Transfer-Method: 'post' is not one of ['put']" in str(error)
