"""Voicemail and recorded prompts on a real FreeSWITCH (configured from deploy/freeswitch/),
driven by SIPp with real audio and real keys:

- a ring group nobody answers falls to voicemail; the caller speaks (an RTP capture of a
  tone, tests/pcapkit.py, played by SIPp) and hangs up: the message is in CouchDB with the
  tone in it and a sane duration, the owner's phone (a SIP listener in this process,
  registered as the owner's device) gets a message-waiting NOTIFY, the mail with the audio
  reaches an SMTP server in this process (aiosmtpd), the CDR names the message and
  ``whistle cdr list`` shows it;
- the owner checks the box: PIN, listen, delete, all as RFC 2833 events sent by SIPp; the
  box is then empty and the phone is told so;
- ``record`` stores a prompt in CouchDB through the media service (its CDR carries the
  Recording-ID); ``play prompt:NAME`` plays an uploaded prompt from the media service, and a
  prompt that does not exist plays a second of silence instead of failing the call.

The media service runs under gunicorn (tests/mediakit.py); the platform's callflow worker
inherits WHISTLE_MEDIA_URL and WHISTLE_SMTP_URL from this module's environment.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import fskit, mediakit, pcapkit, phonekit, support
from tests.bridgekit import EventSink
from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import cdrs, media
from whistle_tasks.data import voicemail as vm
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import users as user_ops
from whistle_tasks.ops import voicemail as vm_ops

CALLER, CALLER_PW = "1000", "pw-caller"
TONE_HZ = 700


@pytest.fixture(scope="module", autouse=True)
def services(clean_services: None) -> Iterator[dict[str, Any]]:
    """The media service, an SMTP server, and the notify and cdr workers; the platform's
    workers (started after this fixture) inherit the URLs from the environment."""
    media_service = mediakit.MediaService()
    mailbox = mediakit.Mailbox().start()
    env = {"WHISTLE_MEDIA_URL": media_service.url, "WHISTLE_SMTP_URL": mailbox.url}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    notify = support.start_worker("notify", name="fsvm-notify", pool="threads", concurrency=2)
    cdr = support.start_worker("cdr", name="fsvm-cdr", pool="threads", concurrency=2)
    yield {"media": media_service, "mailbox": mailbox}
    for worker in (notify, cdr):
        worker.stop()
    mailbox.stop()
    media_service.stop()
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    for process in (notify, media_service.proc):
        assert "Traceback" not in process.output(), process.output()[-4000:]


pytestmark = pytest.mark.usefixtures("services", "freeswitch")


@pytest.fixture()
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


@pytest.fixture()
def account(realm: str) -> str:
    provisioning.create_device(realm, CALLER, password=CALLER_PW)
    return realm


def owners_phone(fs: fskit.Platform, realm: str, user: str) -> phonekit.SipListener:
    """A phone registered with SIPp, then listening on its contact's port in this process
    (it answers and keeps FreeSWITCH's NOTIFYs)."""
    return phonekit.SipListener(phonekit.register(fs, realm, user), user)


def call(fs: fskit.Platform, realm: str, number: str, scenario: str, hold_ms: int = 1000,
         timeout: float = 90) -> fskit.SippResult:
    return fs.sipp.run(scenario, port=phonekit.udp_port(), service=number, user=CALLER,
                       password=CALLER_PW, variables={"realm": realm, "caller": CALLER},
                       extra=["-d", str(hold_ms)], timeout=timeout)


def speech(fs: fskit.Platform, seconds: float) -> None:
    """What the caller says: a tone, as the RTP capture uac_voicemail.xml plays."""
    pcapkit.audio_pcap(pcapkit.tone_wav(seconds, hz=TONE_HZ), fs.sipp.dir / "vm-message.pcap")


def assert_the_tone(data: bytes, at_least: float) -> None:
    heard, hz = pcapkit.tone_in(data)
    assert heard >= at_least and abs(hz - TONE_HZ) < 100, (heard, hz)


def owner(realm: str, mailbox: str = "1001") -> dict[str, Any]:
    user_ops.create_user(realm, "alice", name="Alice")
    provisioning.create_device(realm, mailbox, password=f"pw-{mailbox}")
    user_ops.add_device(realm, "alice", mailbox)
    return vm_ops.create_box(realm, mailbox, owner="alice", pin="1234",
                             email=["alice@example.com"])


def leg_records(realm: str, since: float) -> list[dict[str, Any]]:
    account_id = provisioning.get_account(realm)["_id"]
    return list(cdrs.iterate(account_id, since - 5, time.time() + 60))


def whistle_cli(*args: str) -> str:
    out = subprocess.run([str(support.VENV_BIN / "whistle"), *args], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_a_ring_group_nobody_answers_falls_to_voicemail_with_real_audio(
        freeswitch: fskit.Platform, account: str, services: dict[str, Any]) -> None:
    realm, mailbox = account, services["mailbox"]
    owner(realm)
    phone = owners_phone(freeswitch, realm, "1001")          # the owner's phone: MWI goes there
    try:
        members = {user: phonekit.register(freeswitch, realm, user) for user in ("1002", "1003")}
        user_ops.save_group(realm, "sales", [{"type": "device", "id": u, "timeout": 4}
                                             for u in members], strategy="simultaneous")
        cf_ops.save(realm, {"numbers": ["4000"], "flow": {
            "module": "ring_group", "data": {"group": "sales"},
            "children": {"no_answer": {"module": "voicemail", "data": {"mailbox": "1001"}}}}})
        ringing = [phonekit.sipp_phone(freeswitch, "uas_ring_cancel.xml", port, user)
                   for user, port in members.items()]
        speech(freeswitch, 6.0)
        mails_before, started = len(mailbox.messages), time.time()
        caller = call(freeswitch, realm, "4000", "uac_voicemail.xml", hold_ms=6000)
        assert caller.ok and caller.final_status("INVITE") == "200", caller.describe()
        for rang in (r.wait(30) for r in ringing):
            assert rang.received()[:2] == ["INVITE", "CANCEL"], rang.describe()

        (kept,) = support.wait_until(lambda: vm_ops.messages(realm, "1001", "new"),
                                     timeout=60, what="the message filed")
        assert 2000 <= kept["length"] <= 7000, kept
        assert kept["caller_id_number"] == CALLER
        stored = get_couch().get_attachment(kept["pvt_account_db"], kept["_id"],
                                            vm.MESSAGE_FILE).content
        assert_the_tone(stored, at_least=1.5)

        notify = phone.summary("yes", "1/0")
        assert "application/simple-message-summary" in notify.lower()

        sent = mailbox.wait(mails_before + 1, timeout=60)[-1]
        assert sent["To"] == "alice@example.com"
        (attached,) = list(sent.iter_attachments())
        assert attached.get_content() == stored

        legs = support.wait_until(
            lambda: [r for r in leg_records(realm, started)
                     if r.get("voicemail_message_id") == kept["_id"]],
            timeout=60, what="the caller's CDR naming the message")
        assert legs[0]["produced"] == [f"voicemail:{kept['_id']}"]
        assert legs[0]["dialled_number"] == "4000"
        listing = whistle_cli("cdr", "list", "--realm", realm)
        assert f"voicemail:{kept['_id']}" in listing, listing
    finally:
        phone.close()


def test_the_owner_checks_the_box_by_dtmf_and_deletes_the_message(
        freeswitch: fskit.Platform, account: str, sink: EventSink, tmp_path: Path) -> None:
    realm = account
    box = owner(realm)
    account_doc = provisioning.get_account(realm)
    db = account_doc["pvt_account_db"]
    message = vm.begin_message({"id": account_doc["_id"], "realm": realm, "account_db": db},
                               box, caller_id_number="2000")
    get_couch().put_attachment(db, message["_id"], vm.MESSAGE_FILE,
                               pcapkit.tone_wav(2.0), "audio/wav")
    get_couch().update(db, message["_id"], lambda cur: {
        **cur, "pvt_media": {vm.MESSAGE_FILE: {"length_ms": 2000}}})
    assert vm.finish_message(db, box, message["_id"])
    # the menus' prompts, stored for the account (played from the media service): FreeSWITCH's
    # play_and_get_digits does not wait for keys after a prompt file it cannot open
    for name in ("vm-enter_pass", "vm-main_menu", "vm-listen_to_recording"):
        vm_ops.upload_prompt(mediakit.write_wav(tmp_path / f"{name}.wav", 0.3), realm=realm)
    phone = owners_phone(freeswitch, realm, "1001")
    try:
        cf_ops.save(realm, {"numbers": ["4100"], "flow": {
            "module": "voicemail_check", "data": {"mailbox": "1001"}}})
        # the PIN, "new messages", "delete" after the first, "leave": each capture with RTP
        # timestamps of its own (played seconds apart on one call)
        for n, keys in enumerate(("1234#", "1", "3", "#"), start=1):
            pcapkit.dtmf_pcap(keys, freeswitch.sipp.dir / f"vm-check-{n}.pcap",
                              seq=1000 * n, timestamp=400000 * n)
        done: dict[str, fskit.SippResult] = {}
        thread = threading.Thread(target=lambda: done.setdefault(
            "caller", call(freeswitch, realm, "4100", "uac_voicemail_check.xml",
                           timeout=120)))
        thread.start()
        seen = 0
        for step in range(1, 5):
            def listening(after: int = seen) -> dict[str, Any] | None:
                found = [m for m in sink.drain(len(sink.messages) + 1, timeout=0.3)
                         if m.get("Event-Name") == "CHANNEL_EXECUTE"
                         and m.get("Application-Name") == "play_and_collect_digits"
                         and (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm]
                return found[after] if len(found) > after else None

            collecting = support.wait_until(listening, timeout=60,
                                            what=f"the box's menu to listen (step {step})")
            seen += 1
            out = freeswitch.fs.cli(f"uuid_send_info {collecting['Call-ID']} text plain key")
            assert "+OK" in out, out
        thread.join(120)
        assert done["caller"].ok, done["caller"].describe()
        assert done["caller"].received()[-1] == "BYE", done["caller"].describe()
        answers = [m.get("Application-Response") for m in sink.settle(1.0)
                   if m.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE"
                   and m.get("Application-Name") == "play_and_collect_digits"
                   and (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm]
        assert answers == ["1234", "1", "3", "#"], answers
        assert vm.counts(db, box["_id"]) == {vm.NEW: 0, vm.SAVED: 0}
        assert vm.message(db, message["_id"]) is None
        phone.summary("no", "0/0")
    finally:
        phone.close()


def test_record_stores_a_prompt_and_play_finds_prompts_or_silence(
        freeswitch: fskit.Platform, account: str, sink: EventSink,
        services: dict[str, Any], tmp_path: Path) -> None:
    realm = account
    account_id = provisioning.get_account(realm)["_id"]
    db = provisioning.get_account(realm)["pvt_account_db"]
    cf_ops.save(realm, {"numbers": ["4200"], "flow": {
        "module": "record", "data": {"name": "welcome", "time_limit": 30}}})
    speech(freeswitch, 4.0)
    started = time.time()
    caller = call(freeswitch, realm, "4200", "uac_voicemail.xml", hold_ms=4500)
    assert caller.ok and caller.final_status("INVITE") == "200", caller.describe()

    def recorded() -> dict[str, Any] | None:
        doc = get_couch().get_or_none(db, media.prompt_id("welcome"))
        return doc if doc and (doc.get("pvt_media") or {}).get("welcome.wav") else None

    doc = support.wait_until(recorded, timeout=60, what="the recorded prompt in CouchDB")
    assert doc["pvt_type"] == "media" and doc["pvt_account_id"] == account_id
    assert 1500 <= doc["pvt_media"]["welcome.wav"]["length_ms"] <= 6000, doc["pvt_media"]
    assert_the_tone(get_couch().get_attachment(db, doc["_id"], "welcome.wav").content,
                    at_least=1.0)
    legs = support.wait_until(
        lambda: [r for r in leg_records(realm, started) if r.get("recording_id")],
        timeout=60, what="the CDR with the Recording-ID")
    assert legs[0]["recording_id"] == doc["_id"]
    assert legs[0]["produced"] == [f"recording:{doc['_id']}"]

    # an uploaded prompt, then one that does not exist, then a sound file: all three play
    vm_ops.upload_prompt(mediakit.write_wav(tmp_path / "hello.wav", 0.6), name="hello",
                         realm=realm)
    cf_ops.save(realm, {"numbers": ["4201"], "flow": {
        "module": "play", "data": {"media": "prompt:hello"}, "children": {"_": {
            "module": "play", "data": {"media": "prompt:no-such-prompt"}, "children": {"_": {
                "module": "play", "data": {"media": "ivr/ivr-not_available.wav"}}}}}}})
    caller = call(freeswitch, realm, "4201", "uac_hungup.xml")
    assert caller.ok and caller.received()[-1] == "BYE", caller.describe()
    played = [(m.get("Application-Data") or "", m.get("Application-Response"))
              for m in sink.settle(1.0) if m.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE"
              and m.get("Application-Name") == "play"
              and (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm]
    assert [response for _, response in played] == ["FILE PLAYED"] * 3, played
    assert played[0][0].startswith(f"http_cache://{services['media'].url}/media/"), played
    assert played[1][0] == "silence_stream://1000", played
    assert "media read media-hello/hello.wav" in services["media"].proc.output()
