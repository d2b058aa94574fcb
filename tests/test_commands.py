"""Whistle call commands → FreeSWITCH applications (switch_bridge/freeswitch/commands.py):
the commands callflows added (conference, valet_park, hangup with a cause, a bridge that
returns on failure), and values that must not reach an application's argument."""

from __future__ import annotations

import pytest

import schemas
from switch_bridge.freeswitch import commands
from switch_bridge.freeswitch.dialstring import protect_expansion


def steps(app: str, **fields: object) -> list[tuple[str, str | None]]:
    return commands.steps(schemas.build(app, {**fields, "Call-ID": "c-1"}), profile="internal")


def test_conference_room_pin_and_flags() -> None:
    assert steps("conference", **{"Conference-ID": "acct-board"}) == [
        ("conference", "acct-board@default")]
    assert steps("conference", **{"Conference-ID": "acct-board", "Profile": "wideband",
                                  "PIN": "0042", "Moderator": True, "Mute": "true"}) == [
        ("conference", "acct-board@wideband+0042+flags{moderator|mute}")]


@pytest.mark.parametrize("fields", [
    {"Conference-ID": "room@evil"}, {"Conference-ID": "a+b"}, {"Conference-ID": "a b"},
    {"Conference-ID": "ok", "PIN": "12a"}, {"Conference-ID": "ok", "Profile": "p{x}"},
])
def test_conference_refuses_what_would_change_its_argument(fields: dict) -> None:
    with pytest.raises(commands.CommandError):
        steps("conference", **fields)


def test_valet_park_and_hangup_cause() -> None:
    assert steps("valet_park", Lot="acct-default", Slot="701") == [
        ("valet_park", "acct-default 701")]
    with pytest.raises(commands.CommandError):
        steps("valet_park", Lot="acct default", Slot="701")
    with pytest.raises(commands.CommandError):
        steps("valet_park", Lot="acct", Slot="7 01")
    assert steps("hangup", **{"Hangup-Cause": "USER_BUSY"}) == [("hangup", "USER_BUSY")]
    assert steps("hangup") == [("hangup", None)]
    with pytest.raises(commands.CommandError):
        steps("hangup", **{"Hangup-Cause": "NORMAL_CLEARING\nhangup"})


def test_a_bridge_that_returns_on_failure_sets_it_on_the_callers_channel() -> None:
    out = steps("bridge", Endpoints=[{"Invite-Format": "route", "Route": "sip:a@b.example"}],
                **{"Continue-On-Fail": True, "Ringback": "%(2000,4000,440,480)"})
    assert out[:2] == [("set", "continue_on_fail=true"),
                       ("set", "ringback=%(2000,4000,440,480)")]
    assert out[2][0] == "bridge" and out[2][1].endswith("sofia/internal/sip:a@b.example")
    plain = steps("bridge", Endpoints=[{"Invite-Format": "route", "Route": "sip:a@b.example"}])
    assert [app for app, _ in plain] == ["bridge"]
    expanding = steps("bridge", Endpoints=[{"Invite-Format": "route", "Route": "sip:a@b"}],
                      Ringback="${evil}")
    # `set` expands its value once more: protected twice, FreeSWITCH sets it as written
    ringback = dict(expanding)["set"]
    assert ringback == "ringback=" + protect_expansion(protect_expansion("${evil}"))
