"""switch_bridge.freeswitch.inventory: what a node holds, read from FreeSWITCH's own answers
(the captures of tests/fixtures/freeswitch/nodesync), and hostile registration lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch_bridge.freeswitch import inventory
from switch_bridge.freeswitch.esl.protocol import FrameParser

CAPTURES = Path(__file__).resolve().parent / "fixtures" / "freeswitch" / "nodesync"


def body(name: str) -> str:
    (frame,) = FrameParser().feed((CAPTURES / f"api_{name}.frame").read_bytes())
    assert frame.content_type == "api/response"
    return frame.body_text


def test_clock_name_and_profiles() -> None:
    assert inventory.microepoch(body("strmicroepoch")) == pytest.approx(1796461922.345713)
    assert inventory.hostname(body("hostname")) == "vm"
    assert inventory.profiles(body("sofia_xmlstatus")) == ["whistle"]
    with pytest.raises(inventory.InventoryError):
        inventory.microepoch("-ERR no reply\n")
    with pytest.raises(inventory.InventoryError):
        inventory.profiles("-ERR Command not found!\n")


def test_registrations_one_per_contact_as_reg_success_fields() -> None:
    regs = inventory.registrations(body("sofia_xmlstatus_profile_whistle_reg"),
                                   profile="whistle", node="vm", timestamp=1796461922.3)
    assert [(r["Username"], r["Contact"]) for r in regs] == [
        ("1000", '"" <sip:1000@127.0.0.1:38525;transport=UDP>'),
        ("1000", '"" <sip:1000@127.0.0.1:51079;transport=UDP>'),
        ("1001", '"" <sip:1001@127.0.0.1:46963;transport=UDP>')]
    first = regs[0]
    assert first == {
        "Contact": '"" <sip:1000@127.0.0.1:38525;transport=UDP>',
        "Original-Contact": '"" <sip:1000@127.0.0.1:38525;transport=UDP>',
        "Username": "1000", "Realm": "capture.example.com", "Expires": 298,
        "Event-Timestamp": 1796461922.3, "Profile-Name": "whistle", "FreeSWITCH-Hostname": "vm",
        "Call-ID": "1-15375@127.0.0.1", "User-Agent": "whistle-test", "Network-IP": "127.0.0.1",
        "Network-Port": 38525, "From-User": "1000", "From-Host": "capture.example.com",
        "Status": "Registered(UDP)(unknown)"}
    import schemas

    schemas.validate(schemas.build("reg_sync", {
        "FreeSWITCH-Hostname": "vm", "Event-Timestamp": 1796461922.3, "Registrations": regs},
        **{"App-Name": "t"}))


def test_a_call_id_cannot_smuggle_a_registration() -> None:
    """A Call-ID may hold < > / " (RFC 3261 'word'); FreeSWITCH writes it unescaped. A phone
    registering with a Call-ID that spells a registration of someone else must not add one."""
    real = body("sofia_xmlstatus_profile_whistle_reg")
    smuggled = ("x</call-id></registration><registration><call-id>y</call-id>"
                "<user>2000@victim.example.com</user><contact>sip:2000@203.0.113.66</contact>")
    hostile = real.replace("<call-id>1-15375@127.0.0.1</call-id>",
                           f"<call-id>{smuggled}</call-id>", 1)
    regs = inventory.registrations(hostile, profile="whistle", node="vm", timestamp=1.0)
    assert [r["Username"] for r in regs] == ["1000", "1000", "1001"]
    assert regs[0]["Call-ID"] == smuggled
    assert all("victim" not in r["Realm"] and "203.0.113.66" not in r["Contact"] for r in regs)
    # a block of another shape is skipped (counted), the others are read
    before = inventory.STATS["registrations_skipped"]
    broken = real.replace("        <agent>whistle-test</agent>\n", "", 1)
    regs = inventory.registrations(broken, profile="whistle", node="vm", timestamp=1.0)
    assert len(regs) == 2 and inventory.STATS["registrations_skipped"] == before + 1
    # an empty profile, and one that lapsed (nothing left) is not held
    empty = ('<?xml version="1.0"?>\n<profile>\n  <registrations>\n  </registrations>\n'
             "</profile>\n")
    assert inventory.registrations(empty, profile="p", node="n", timestamp=1.0) == []
    lapsed = real.replace("expsecs(298)", "expsecs(-2)")
    assert inventory.registrations(lapsed, profile="p", node="n", timestamp=1.0) == []
    with pytest.raises(inventory.InventoryError):
        inventory.registrations("-ERR Invalid Profile!\n", profile="x", node="n", timestamp=1)


def test_channels_variables_and_sessions() -> None:
    assert inventory.channels(body("show_channels_as_json_idle")) == []
    (call,) = inventory.channels(body("show_channels_as_json_one_call"))
    assert call["uuid"] == "16570a44-0a28-4ab3-87c9-fc59677fd548"
    assert call["profile"] == "whistle" and call["application"] == "park"
    assert inventory.variable(body("uuid_getvar_control_queue")) == \
        "callctl.16570a44-0a28-4ab3-87c9-fc59677fd548.0a1b2c3d"
    assert inventory.variable(body("uuid_getvar_unset")) is None
    assert inventory.variable(body("uuid_getvar_no_channel")) is None
    assert inventory.sessions(body("status_idle")) == (0, 2000)
    assert inventory.sessions(body("status_one_call")) == (1, 2000)
    with pytest.raises(inventory.InventoryError):
        inventory.channels("-ERR\n")


def test_commands() -> None:
    assert inventory.flush_directory_cache("1000", "capture.example.com") == \
        "xml_flush_cache id 1000 capture.example.com"
    assert inventory.flush_directory_cache("a b", "x.example.com") == "xml_flush_cache"
    assert inventory.flush_directory_cache() == "xml_flush_cache"
    assert inventory.control_queue_setvar("u-1", "callctl.u-1.ab12") == \
        "uuid_setvar u-1 whistle_control_queue callctl.u-1.ab12"
    with pytest.raises(ValueError):
        inventory.control_queue_setvar("u-1 evil", "q")
