"""Issue #9 against a real FreeSWITCH (configured from deploy/freeswitch/, driven by SIPp):
several phones of one user ring at once; click-to-call between two registered phones;
the event socket dropped and restored by FreeSWITCH itself with a REGISTER in between;
un-REGISTER and expiry of one phone; a device changed or disabled takes effect on the next
REGISTER although the directory answers are cacheable. The module has a FreeSWITCH of its
own (its bridge sends ``cacheable`` directory answers)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from tests import fskit, support
from whistle_tasks.data import registrations
from whistle_tasks.ops import provisioning

WHISTLE = str(support.VENV_BIN / "whistle")


@pytest.fixture(scope="module")
def fs(request: pytest.FixtureRequest, whapp_worker: support.Process) -> Iterator[fskit.Platform]:
    reason = fskit.missing()
    if reason:
        pytest.skip(reason)
    failed = request.session.testsfailed
    platform = fskit.Platform("fs-nodesync", bridge_env={
        "WHISTLE_DIRECTORY_CACHEABLE_MS": "600000"}).start()
    yield platform
    platform.stop(keep_log=request.session.testsfailed > failed)


def udp_port() -> int:
    return fskit.free_port((socket.SOCK_DGRAM,))


def register(fs: fskit.Platform, realm: str, user: str, password: str, port: int, *,
             expires: int = 3600, scenario: str = "register.xml") -> fskit.SippResult:
    return fs.sipp.run(scenario, port=port, service=user, user=user, password=password,
                       variables={"realm": realm, "expires": expires})


def phones(realm: str, user: str) -> set[int]:
    """The ports of the user's registered contacts, as Whistle has them."""
    registrations._local.clear_local()
    found = set()
    for reg in registrations.contacts(realm, user):
        host_port = reg["Contact"].split("@", 1)[1].split(";", 1)[0]
        found.add(int(host_port.rsplit(":", 1)[1]))
    return found


def callee(fs: fskit.Platform, scenario: str, port: int, user: str) -> fskit.Background:
    uas = fs.sipp.start(scenario, port=port, service=user, timeout=60)
    support.wait_until(lambda: uas.listening(port), timeout=10, what="the callee's SIPp")
    return uas


def test_every_phone_of_a_user_rings_and_the_first_to_answer_wins(
        fs: fskit.Platform, realm: str) -> None:
    provisioning.create_device(realm, "1000", password="pw-1000")
    provisioning.create_device(realm, "1001", password="pw-1001")
    provisioning.add_number("1001", realm, "device:1001")
    desk, soft = udp_port(), udp_port()
    for port in (desk, soft):
        assert register(fs, realm, "1001", "pw-1001", port).ok
    support.wait_until(lambda: phones(realm, "1001") == {desk, soft}, timeout=20,
                       what="both phones of 1001 in Whistle")
    answering = callee(fs, "uas_answer.xml", desk, "1001")
    ringing = callee(fs, "uas_ring_cancel.xml", soft, "1001")
    caller = fs.sipp.run("uac_call.xml", port=udp_port(), service="1001", user="1000",
                         password="pw-1000", variables={"realm": realm, "caller": "1000"},
                         extra=["-d", "1000"], timeout=60)
    answered, cancelled = answering.wait(), ringing.wait()
    assert caller.ok and caller.final_status("INVITE") == "200", caller.describe()
    assert answered.received() == ["INVITE", "ACK", "BYE"], answered.describe()
    # the other phone rang too, and was cancelled when the first answered
    assert cancelled.received()[:2] == ["INVITE", "CANCEL"], cancelled.describe()


def test_click_to_call_between_two_registered_phones(fs: fskit.Platform, realm: str) -> None:
    provisioning.create_device(realm, "1000", password="pw-1000")
    provisioning.create_device(realm, "2001", password="pw-2001")
    provisioning.add_number("2001", realm, "device:2001")
    alice, bob = udp_port(), udp_port()
    assert register(fs, realm, "1000", "pw-1000", alice).ok
    assert register(fs, realm, "2001", "pw-2001", bob).ok
    support.wait_until(lambda: phones(realm, "1000") and phones(realm, "2001"), timeout=20,
                       what="both phones registered")
    first = callee(fs, "uas_answer.xml", alice, "1000")     # rings first, answers
    second = callee(fs, "uas_answer.xml", bob, "2001")      # then the callee
    done = subprocess.run([WHISTLE, "call", "originate", "--realm", realm, "--from", "1000",
                           "--to", "2001", "--timeout", "20"],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    call = done.stdout.strip()
    def connected() -> bool:   # 2001 rang after 1000 answered, answered, got the ACK
        text = second.messages.read_text(errors="replace") if second.messages.exists() else ""
        return "INVITE sip:2001@" in text and "ACK sip:" in text

    support.wait_until(connected, timeout=30, what="1000 connected to 2001")
    channels = fs.fs.cli("show channels as json")
    assert call in channels
    fs.fs.cli(f"uuid_kill {call}")
    a, b = first.wait(30), second.wait(30)
    assert a.received() == ["INVITE", "ACK", "BYE"], a.describe()
    assert b.received() == ["INVITE", "ACK", "BYE"], b.describe()
    # 2001 saw the call as coming from device 1000 (routed as 1000's own call)
    invite = b.messages.split("INVITE sip:2001@", 1)[1]
    assert "<sip:1000@" in invite.split("\n\n", 1)[0], invite[:800]
    failed = subprocess.run([WHISTLE, "call", "originate", "--realm", realm, "--from", "1999",
                             "--to", "2001"], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "no device 1999" in failed.stderr


def test_registrations_made_while_the_event_socket_is_away_are_learnt(
        fs: fskit.Platform, realm: str) -> None:
    """FreeSWITCH unloads its event socket and loads it back a few seconds later
    (``sched_api``); meanwhile a phone registers and another un-registers: no event
    reaches Whistle, yet once the bridge is back it knows both."""
    for user in ("3000", "3001"):
        provisioning.create_device(realm, user, password=f"pw-{user}")
    leaving, arriving = udp_port(), udp_port()
    assert register(fs, realm, "3000", "pw-3000", leaving).ok
    support.wait_until(lambda: phones(realm, "3000") == {leaving}, timeout=20,
                       what="3000 registered")
    node = f"node 127.0.0.1:{fs.fs.esl_port}"
    # (fs_cli itself talks through the event socket: the load is scheduled first)
    fs.fs.cli("sched_api +10 none load mod_event_socket")
    fs.fs.cli("sched_api +1 none unload mod_event_socket")
    support.wait_until(lambda: f"{node} connected" not in fskit.bridge_health(fs.http_port),
                       timeout=15, what="the event socket gone")
    # the HTTP side is up: FreeSWITCH authenticates through the bridge and keeps these
    assert register(fs, realm, "3001", "pw-3001", arriving).ok
    assert register(fs, realm, "3000", "pw-3000", leaving, expires=0).ok
    assert phones(realm, "3001") == set() and phones(realm, "3000") == {leaving}
    fs.wait_connected(60)
    support.wait_until(lambda: phones(realm, "3001") == {arriving}
                       and phones(realm, "3000") == set(), timeout=30,
                       what="Whistle to learn what FreeSWITCH did meanwhile")
    log = fs.bridge.output()
    assert "holds" in log and "registrations" in log


def test_unregister_and_expiry_remove_only_that_phone(fs: fskit.Platform, realm: str) -> None:
    provisioning.create_device(realm, "4000", password="pw-4000")
    desk, soft, short = udp_port(), udp_port(), udp_port()
    for port in (desk, soft):
        assert register(fs, realm, "4000", "pw-4000", port).ok
    assert register(fs, realm, "4000", "pw-4000", short, expires=3).ok
    support.wait_until(lambda: phones(realm, "4000") == {desk, soft, short}, timeout=20,
                       what="three phones of 4000")
    assert register(fs, realm, "4000", "pw-4000", soft, expires=0).ok
    # the short one expires in FreeSWITCH (sofia::expire); the soft one un-registered
    support.wait_until(lambda: phones(realm, "4000") == {desk}, timeout=30,
                       what="only the desk phone left")
    listing = fs.fs.cli("sofia status profile whistle reg")
    assert f"127.0.0.1:{desk}" in listing and f"127.0.0.1:{soft}" not in listing


def test_a_change_takes_effect_on_the_next_register_despite_cacheable_answers(
        fs: fskit.Platform, realm: str) -> None:
    provisioning.create_device(realm, "5000", password="old-pw")
    port = udp_port()
    assert register(fs, realm, "5000", "old-pw", port).ok
    assert "caching lookup for user 5000@" in fs.fs.log_text()      # FreeSWITCH keeps it
    provisioning.update_device(realm, "5000", {"sip": {"username": "5000",
                                                       "password": "new-pw"}})
    refused = register(fs, realm, "5000", "old-pw", port, scenario="register_refused.xml")
    assert refused.ok and refused.received()[-1] in ("401", "403"), refused.describe()
    assert register(fs, realm, "5000", "new-pw", port).ok
    provisioning.set_device_enabled(realm, "5000", False)
    refused = register(fs, realm, "5000", "new-pw", port, scenario="register_refused.xml")
    assert refused.ok and refused.received()[-1] in ("401", "403"), refused.describe()
    provisioning.set_device_enabled(realm, "5000", True)
    provisioning.delete_device(realm, "5000")
    refused = register(fs, realm, "5000", "new-pw", port, scenario="register_refused.xml")
    assert refused.ok and refused.received()[-1] in ("401", "403"), refused.describe()
