"""The README's "Your first PBX", run as written on a real FreeSWITCH: its shell blocks are
taken from README.md (so the README is what is tested) and run with bash, then SIPp phones
show each piece working:

- Alice's extension rings both her phones, the first to answer wins;
- by day (the callflow worker's clock fixed on a Monday morning, Paris time) the main
  number's menu takes the caller's key 1 (RFC 2833) to the sales ring group: Alice's phones
  ring and one answers;
- by night (the clock fixed on the same Monday at 22:30 in Paris) the main number plays the
  night prompt and takes a voicemail for Alice, with real audio, mailed to her (an SMTP
  server in this process).

Only what the README leaves to the operator's machine is set here: the realm (one of this
test's own), the path of ``whistle``, the media service and the SMTP relay the workers use
(WHISTLE_MEDIA_URL, WHISTLE_SMTP_URL), and a device to call from.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests import fskit, mediakit, pcapkit, phonekit, support
from tests.bridgekit import EventSink
from whistle_tasks.data import registrations
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import voicemail as vm_ops

README = fskit.ROOT / "README.md"
SECTION = "## Your first PBX"
#: Monday 3 June 2024: 11:30 in Paris (day), then 22:30 in Paris (night)
DAY, NIGHT = "2024-06-03T09:30:00+00:00", "2024-06-03T20:30:00+00:00"
CALLER, CALLER_PW = "1099", "pw-caller"
MAIN = "+33123456789"


def readme_script() -> str:
    """The shell blocks (indented four spaces) of the README's section, in order."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    lines, blocks, block = text[start:end].splitlines(), [], []
    for line in lines:
        if line.startswith("    ") or (block and not line.strip()):
            block.append(line[4:])
            continue
        if block:
            blocks.append("\n".join(block).rstrip())
            block = []
    if block:
        blocks.append("\n".join(block).rstrip())
    return "\n".join(blocks) + "\n"


@pytest.fixture(scope="module", autouse=True)
def services(clean_services: None) -> Iterator[dict[str, Any]]:
    """The media service and an SMTP server; the platform's workers (started after this
    fixture) inherit their URLs and the day clock from the environment."""
    media_service = mediakit.MediaService()
    mailbox = mediakit.Mailbox().start()
    env = {"WHISTLE_MEDIA_URL": media_service.url, "WHISTLE_SMTP_URL": mailbox.url,
           "WHISTLE_FIXED_CLOCK": DAY}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    notify = support.start_worker("notify", name="pbx-notify", pool="threads", concurrency=2)
    yield {"media": media_service, "mailbox": mailbox}
    notify.stop()
    mailbox.stop()
    media_service.stop()
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


pytestmark = pytest.mark.usefixtures("services", "freeswitch")


@pytest.fixture(scope="module")
def pbx(services: dict[str, Any], freeswitch: fskit.Platform,
        tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The README's blocks, run once with bash: the PBX of the walk-through."""
    script = readme_script()
    realm = f"{support.unique('acme')}.example.com"
    for line in ("W=.venv/bin/whistle; R=acme.example.com", "$W account create Acme --realm $R"):
        assert line in script, f"the README's walk-through changed: {line!r} not found"
    script = script.replace("W=.venv/bin/whistle; R=acme.example.com",
                            f"W={support.VENV_BIN / 'whistle'}; R={realm}")
    workdir = tmp_path_factory.mktemp("first-pbx")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, f"{script}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
    passwords = dict(re.findall(r"--username (\d+) --password (\S+)", script))
    assert set(passwords) >= {"1001", "1002", "1003"}, passwords
    provisioning.create_device(realm, CALLER, password=CALLER_PW)
    return {"realm": realm, "passwords": passwords}


@pytest.fixture()
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


def udp_port() -> int:
    return fskit.free_port((socket.SOCK_DGRAM,))


class Phones:
    """The README's devices registered from ports of their own (from the test process:
    tests/phonekit.py, which answers the message-waiting NOTIFY FreeSWITCH sends after the
    REGISTER of a phone whose owner has a mailbox; a SIPp callee would take it for its one
    call), each then waiting for a call there with a SIPp scenario; un-registered at the
    end (a later test's phones are the only contacts)."""

    def __init__(self, fs: fskit.Platform, pbx: dict[str, Any]) -> None:
        self.fs, self.pbx = fs, pbx
        self.registered: list[tuple[str, int, str]] = []

    def start(self, user: str, scenario: str, *, notified: bool = False) -> fskit.Background:
        """``notified``: the phone's owner has a mailbox (answer its NOTIFY first)."""
        realm, port = self.pbx["realm"], udp_port()
        listener = phonekit.SipListener(port, user)
        try:
            call_id = listener.register(self.fs.fs.sip_port, realm, user,
                                        self.pbx["passwords"][user])
            self.registered.append((user, port, call_id))
            support.wait_until(lambda: registrations.lookup(realm, user), timeout=30,
                               what=f"{user} registered")
            if notified:
                # FreeSWITCH asks for the count on a phone's first REGISTER only
                # (send-message-query-on-register first-only): a later one gets none
                with contextlib.suppress(AssertionError):
                    listener.summary(timeout=10)
        finally:
            listener.close()
        found = self.fs.sipp.start(scenario, port=port, service=user, timeout=120)
        support.wait_until(lambda: found.listening(port), timeout=10, what=f"{user}'s SIPp")
        return found

    def close(self) -> None:
        for user, port, call_id in self.registered:
            support.wait_until(lambda port=port: fskit._bindable(port, (socket.SOCK_DGRAM,)),
                               timeout=130, what=f"{user}'s SIPp to end")
            listener = phonekit.SipListener(port, user)
            try:
                listener.register(self.fs.fs.sip_port, self.pbx["realm"], user,
                                  self.pbx["passwords"][user], expires=0, call_id=call_id)
            finally:
                listener.close()


@pytest.fixture()
def phones(freeswitch: fskit.Platform, pbx: dict[str, Any]) -> Iterator[Phones]:
    found = Phones(freeswitch, pbx)
    yield found
    found.close()


def call(fs: fskit.Platform, realm: str, number: str, scenario: str,
         hold_ms: int = 1500) -> fskit.SippResult:
    return fs.sipp.run(scenario, port=udp_port(), service=number, user=CALLER,
                       password=CALLER_PW, variables={"realm": realm, "caller": CALLER},
                       extra=["-d", str(hold_ms)], timeout=120)


def test_the_readme_is_what_is_run() -> None:
    script = readme_script()
    for piece in ("user add-device alice 1001", "user add-device alice 1002",
                  "group set sales", "voicemail create", "--email alice@example.com",
                  '"module": "menu"', '"module": "temporal_route"', "--timezone Europe/Paris",
                  '"module": "ring_group", "data": {"group": "sales"}'):
        assert piece in script, piece


def test_alices_extension_rings_both_her_phones(freeswitch: fskit.Platform,
                                                pbx: dict[str, Any], phones: Phones) -> None:
    desk = phones.start("1001", "uas_ring_cancel.xml", notified=True)
    soft = phones.start("1002", "uas_answer.xml", notified=True)
    caller = call(freeswitch, pbx["realm"], "1000", "uac_call.xml")
    assert caller.ok and caller.final_status("INVITE") == "200", caller.describe()
    answered, rang = soft.wait(30), desk.wait(30)
    assert answered.received() == ["INVITE", "ACK", "BYE"], answered.describe()
    assert rang.received()[:2] == ["INVITE", "CANCEL"], rang.describe()


def test_by_day_the_menu_takes_key_1_to_sales(freeswitch: fskit.Platform,
                                              pbx: dict[str, Any], sink: EventSink,
                                              phones: Phones) -> None:
    realm = pbx["realm"]
    desk = phones.start("1001", "uas_answer.xml", notified=True)
    soft = phones.start("1002", "uas_ring_cancel.xml", notified=True)
    pcapkit.dtmf_pcap("1", freeswitch.sipp.dir / "menu-keys.pcap")
    done: dict[str, fskit.SippResult] = {}
    thread = threading.Thread(target=lambda: done.setdefault(
        "caller", call(freeswitch, realm, MAIN, "uac_menu_keys.xml", hold_ms=2000)))
    thread.start()
    collecting = support.wait_until(lambda: next(
        (m for m in sink.drain(len(sink.messages) + 1, timeout=0.3)
         if m.get("Event-Name") == "CHANNEL_EXECUTE"
         and m.get("Application-Name") == "play_and_collect_digits"
         and (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm), None),
        timeout=60, what="the menu to listen")
    assert "+OK" in freeswitch.fs.cli(f"uuid_send_info {collecting['Call-ID']} text plain menu")
    thread.join(150)
    assert done["caller"].ok, done["caller"].describe()
    answered, rang = desk.wait(30), soft.wait(30)
    assert answered.received() == ["INVITE", "ACK", "BYE"], answered.describe()
    assert rang.received()[:2] == ["INVITE", "CANCEL"], rang.describe()
    keyed = [m.get("Application-Response") for m in sink.settle(1.0)
             if m.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE"
             and m.get("Application-Name") == "play_and_collect_digits"
             and (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm]
    assert keyed == ["1"], keyed


def test_by_night_the_main_number_takes_a_voicemail_mailed_to_alice(
        freeswitch: fskit.Platform, pbx: dict[str, Any], services: dict[str, Any]) -> None:
    realm, mailbox = pbx["realm"], services["mailbox"]
    # the night: the platform's callflow worker again, its clock at 22:30 in Paris
    day_worker = freeswitch.workers.pop()
    day_worker.stop()
    freeswitch.workers.append(support.start_worker(
        "callflow", name="pbx-callflow-night", pool="gevent", concurrency=100,
        env={"WHISTLE_FIXED_CLOCK": NIGHT}))
    pcapkit.audio_pcap(pcapkit.tone_wav(5.0), freeswitch.sipp.dir / "vm-message.pcap")
    before = len(mailbox.messages)
    caller = call(freeswitch, realm, MAIN, "uac_voicemail.xml", hold_ms=6000)
    assert caller.ok and caller.final_status("INVITE") == "200", caller.describe()
    (kept,) = support.wait_until(lambda: vm_ops.messages(realm, "1000", "new"), timeout=60,
                                 what="the night message filed")
    assert 2000 <= kept["length"] <= 7000, kept
    sent = mailbox.wait(before + 1, timeout=60)[-1]
    assert sent["To"] == "alice@example.com"
    (attached,) = list(sent.iter_attachments())
    heard, _ = pcapkit.tone_in(attached.get_content())
    assert heard >= 1.5, heard
