"""FreeSWITCH killed (SIGKILL) in the middle of a call and started again: the call's events
end with it, the bridge reconnects to the new process on its own, and a new REGISTER and a
new call go through Whistle as before. The module has a FreeSWITCH of its own."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests import fskit, support
from tests.bridgekit import EventSink
from whistle_tasks.data import registrations
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("freeswitch")


def udp_port() -> int:
    return fskit.free_port((socket.SOCK_DGRAM,))


@pytest.fixture()
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


def register(fs: fskit.Platform, realm: str, user: str, port: int) -> None:
    result = fs.sipp.run("register.xml", port=port, service=user, user=user,
                         password=f"pw-{user}", variables={"realm": realm, "expires": 3600})
    assert result.ok, result.describe()
    support.wait_until(lambda: registrations.lookup(realm, user), timeout=20,
                       what=f"{user} registered")


def events_of(sink: EventSink, realm: str) -> dict[str, list[str]]:
    """Event names per call of this realm's caller legs."""
    sink.drain(len(sink.messages) + 1, timeout=0.3)
    calls = {m["Call-ID"] for m in sink.messages if m.get("Call-Direction") == "inbound"
             and (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm}
    return {c: [m["Event-Name"] for m in sink.messages if m.get("Call-ID") == c]
            for c in calls}


def test_freeswitch_killed_mid_call_and_restarted(freeswitch: fskit.Platform, realm: str,
                                                  sink: EventSink) -> None:
    for user in ("1000", "1001", "1002"):
        provisioning.create_device(realm, user, password=f"pw-{user}")
        provisioning.add_number(user, realm, f"device:{user}")
    callee_port = udp_port()
    register(freeswitch, realm, "1001", callee_port)
    callee = freeswitch.sipp.start("uas_answer.xml", port=callee_port, service="1001",
                                   timeout=120)
    support.wait_until(lambda: callee.listening(callee_port), timeout=10, what="callee SIPp")
    caller = freeswitch.sipp.start("uac_call.xml", server=False, port=udp_port(),
                                   service="1001", user="1000", password="pw-1000",
                                   variables={"realm": realm, "caller": "1000"},
                                   extra=["-d", "60000"], timeout=120)
    try:
        support.wait_until(lambda: any("CHANNEL_BRIDGE" in names
                                       for names in events_of(sink, realm).values()),
                           timeout=30, what="the call to be bridged")
        freeswitch.fs.kill()
        assert not freeswitch.fs.alive()
        support.wait_until(lambda: f"node 127.0.0.1:{freeswitch.fs.esl_port} connected"
                           not in fskit.bridge_health(freeswitch.http_port),
                           timeout=30, what="the bridge to see the node gone")
        sink.settle(1.0)                  # what was on its way before the kill
        killed = events_of(sink, realm)
    finally:
        caller.stop()
        callee.stop()
    assert len(killed) == 1, killed
    (killed_call, before), = killed.items()
    assert "CHANNEL_ANSWER" in before and "CHANNEL_HANGUP_COMPLETE" not in before, before

    freeswitch.fs.restart()
    freeswitch.wait_connected(timeout=90)

    # a phone registers again, and a new call goes through
    register(freeswitch, realm, "1002", udp_port())
    callee_port = udp_port()
    register(freeswitch, realm, "1001", callee_port)
    callee = freeswitch.sipp.start("uas_answer.xml", port=callee_port, service="1001",
                                   timeout=60)
    support.wait_until(lambda: callee.listening(callee_port), timeout=10, what="callee SIPp")
    call = freeswitch.sipp.run("uac_call.xml", port=udp_port(), service="1001", user="1000",
                               password="pw-1000", variables={"realm": realm, "caller": "1000"},
                               extra=["-d", "500"], timeout=60)
    answered = callee.wait(30)
    assert call.ok, call.describe()
    assert answered.ok and answered.received() == ["INVITE", "ACK", "BYE"], answered.describe()

    def new_call_done() -> dict[str, list[str]]:
        calls = {c: names for c, names in events_of(sink, realm).items() if c != killed_call}
        return calls if any("CHANNEL_HANGUP_COMPLETE" in n for n in calls.values()) else {}

    after = support.wait_until(new_call_done, timeout=30, what="the new call's events")
    assert len(after) == 1, after
    names = next(iter(after.values()))
    assert names.index("CHANNEL_CREATE") < names.index("CHANNEL_ANSWER") < \
        names.index("CHANNEL_HANGUP_COMPLETE"), names
    # nothing more was ever heard of the call that died with the old process
    sink.settle(0.5)
    assert events_of(sink, realm)[killed_call] == before


def test_call_under_control_ends_when_freeswitch_dies(freeswitch: fskit.Platform,
                                                      realm: str, sink: EventSink) -> None:
    """The auto-attendant waits for digits when FreeSWITCH is killed: FreeSWITCH sends no
    hangup, so the bridge, once the node is back without the call, ends the call's control
    with a CHANNEL_HANGUP_COMPLETE (cause CRASH) and the whapp ends instead of waiting."""
    provisioning.create_device(realm, "1000", password="pw-1000")
    provisioning.add_number("5000", realm, "app:attendant")
    caller = freeswitch.sipp.start("uac_dtmf_info.xml", server=False, port=udp_port(),
                                   service="5000", user="1000", password="pw-1000",
                                   variables={"realm": realm, "caller": "1000"}, timeout=60)
    whapp_log = freeswitch.workers[1]
    try:
        def collecting() -> str | None:
            sink.drain(len(sink.messages) + 1, timeout=0.3)
            for m in sink.messages:
                if m.get("Application-Name") == "play_and_collect_digits" and \
                        (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm:
                    return m["Call-ID"]
            return None

        call_id = support.wait_until(collecting, timeout=30, what="the attendant to listen")
        freeswitch.fs.kill()
    finally:
        caller.stop()
    freeswitch.fs.restart()
    freeswitch.wait_connected(timeout=90)

    def hangup() -> dict | None:
        sink.drain(len(sink.messages) + 1, timeout=0.3)
        return next((m for m in sink.messages if m.get("Call-ID") == call_id
                     and m.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"), None)

    event = support.wait_until(hangup, timeout=60, what="the lost call's hangup")
    assert event["Hangup-Cause"] == "CRASH", event
    # the callflow engine logs the end of the call's flow, tagged with its call id
    support.wait_until(lambda: any(f"[{call_id}]" in line and "callflow ended" in line
                                   for line in whapp_log.output().splitlines()),
                       timeout=30, what="the attendant to end")
