"""Voicemail end to end, FreeSWITCH stood in for at its event socket: a call to a callflow
running ``voicemail`` or ``voicemail_check`` (router → bridge → callflow worker), the
recording stored through the media service (gunicorn) by the ``store`` command (the
stand-in's ``http_put`` PUTs the file it "recorded", as mod_http_cache does), the message in
CouchDB, the owner's phone told (MESSAGE_WAITING), the mail received (aiosmtpd, the notify
worker). Callers who hang up in the middle leave what they said (if long enough) and nothing
running."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import callflowkit as kit
from tests import mediakit, support
from tests.esl_standin import EslStandIn
from whistle_tasks.core import audio as audio_check
from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import voicemail as vm
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import users as user_ops
from whistle_tasks.ops import voicemail as vm_ops

pytestmark = pytest.mark.usefixtures("whapp_worker")

RECORD_DIR = support.OUTPUT / f"recordings-{os.getpid()}"
BRIDGE_ENV = {"WHISTLE_RECORD_DIR": str(RECORD_DIR)}


@pytest.fixture(scope="module")
def mailbox() -> Iterator[mediakit.Mailbox]:
    box = mediakit.Mailbox().start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def media_service(clean_services: None) -> Iterator[mediakit.MediaService]:
    service = mediakit.MediaService()
    yield service
    service.stop()
    assert "Traceback" not in service.proc.output(), service.proc.output()[-3000:]


@pytest.fixture(scope="module", autouse=True)
def workers(media_service: mediakit.MediaService, mailbox: mediakit.Mailbox) -> Iterator[None]:
    env = {"WHISTLE_MEDIA_URL": media_service.url, "WHISTLE_SMTP_URL": mailbox.url}
    router = support.start_worker("router", name="vm-router", pool="threads", concurrency=8)
    callflow = support.start_worker("callflow", name="vm-callflow", pool="gevent",
                                    concurrency=100, env=env)
    notify = support.start_worker("notify", name="vm-notify", pool="threads", concurrency=2,
                                  env=env)
    yield
    for worker in (router, callflow, notify):
        worker.stop()
    for worker in (callflow, notify):
        assert "Traceback" not in worker.output(), worker.output()[-4000:]


class Script(kit.Script):
    """The callflow kit's script, whose answers may also be functions of the argument."""

    def hook(self, call_uuid: str, app: str, arg: str | None) -> dict | None:
        answer = super().hook(call_uuid, app, arg)
        return answer(arg or "") if callable(answer) else answer


@pytest.fixture()
def script(standin: EslStandIn) -> Iterator[Script]:
    s = Script(standin)
    standin.bgapi_results = {"http_put": mediakit.http_put}
    yield s
    s.close()
    standin.bgapi_results = {}


def recorder(seconds: float, *, hangup: bool = False) -> Callable[[str], dict[str, Any]]:
    """A ``record`` that writes ``seconds`` of audio where it was told, then ends (the
    caller keyed #) or the caller hangs up."""
    def record(arg: str) -> dict[str, Any]:
        mediakit.write_wav(Path(arg.split(" ", 1)[0]), seconds)
        if hangup:
            return {"hangup": "NORMAL_CLEARING", "delay": 0.2}
        return {"response": "_none_", "delay": 0.1}

    return record


def owner_with_box(realm: str, client: support.Client, *, pin: str = "1234",
                   contact: str = "<sip:1001@192.0.2.10:5060>") -> dict[str, Any]:
    user_ops.create_user(realm, "alice", name="Alice")
    provisioning.create_device(realm, "1001", password="pw")
    user_ops.add_device(realm, "alice", "1001")
    kit.register(client, realm, "1001", contact)
    return vm_ops.create_box(realm, "1001", owner="alice", pin=pin,
                             email=["alice@example.com"])


def mwi(standin: EslStandIn, realm: str) -> list[dict[str, str]]:
    return [dict(c.header_list) for c in standin.commands if c.verb == "sendevent"
            and dict(c.header_list).get("MWI-Message-Account") == f"sip:1001@{realm}"]


def messages(realm: str) -> list[dict[str, Any]]:
    return vm_ops.messages(realm, "1001")


def test_leave_a_message(bridge: dict, standin: EslStandIn, realm: str, script: Script,
                         client: support.Client, mailbox: mediakit.Mailbox,
                         media_service: mediakit.MediaService, tmp_path: Path) -> None:
    owner_with_box(realm, client)
    vm_ops.upload_prompt(mediakit.write_wav(tmp_path / "instructions.wav", 0.4),
                         name="vm-record_message", realm=realm)
    cf_ops.save(realm, {"numbers": ["7700"], "flow": {"module": "voicemail",
                                                       "data": {"mailbox": "1001"}}})
    script.on("record", recorder(2.5))
    before = len(mailbox.messages)
    call_id = kit.place(bridge, realm, "7700", caller="2000", caller_name="Bob")
    kit.wait_done(standin, call_id, timeout=30)
    played = [(app, arg) for app, arg in kit.apps(standin, call_id) if app != "set"]
    assert [app for app, _ in played] == [
        "answer", "playback", "say", "playback", "playback", "playback", "record",
        "playback", "playback", "hangup"]
    assert played[1] == ("playback", "voicemail/vm-person.wav")
    assert played[2] == ("say", "en number iterated 1001")
    assert played[4][1].startswith(f"http_cache://{media_service.url}/media/")
    assert played[5][1].startswith("tone_stream://")
    path = played[6][1].split(" ")[0]
    assert path.startswith(f"{RECORD_DIR}/vm-") and played[6][1].endswith(" 300 500 5")
    (kept,) = support.wait_until(lambda: messages(realm), timeout=10, what="the message")
    assert kept["folder"] == "new" and kept["length"] == 2500
    assert kept["caller_id_number"] == "2000"
    # the leg's CDR will name the message (set on the channel before the recording)
    assert ("set", f"ecallmgr_Voicemail-Message-ID={kept['_id']}") in kit.apps(standin, call_id)
    stored = get_couch().get_attachment(kept["pvt_account_db"], kept["_id"], vm.MESSAGE_FILE)
    assert stored.content == Path(path).read_bytes()
    assert audio_check.wav_length_ms(stored.content) == 2500
    support.wait_until(lambda: mwi(standin, realm), timeout=10, what="MESSAGE_WAITING")
    assert mwi(standin, realm)[-1]["MWI-Voice-Message"] == "1/0 (0/0)"
    assert mwi(standin, realm)[-1]["MWI-Messages-Waiting"] == "yes"
    sent = mailbox.wait(before + 1)[-1]
    assert sent["To"] == "alice@example.com" and "(0:02)" in sent["Subject"]
    (attached,) = list(sent.iter_attachments())
    assert attached.get_content() == stored.content


def test_hanging_up_while_recording_keeps_the_message(
        bridge: dict, standin: EslStandIn, realm: str, script: Script, client: support.Client,
        mailbox: mediakit.Mailbox) -> None:
    owner_with_box(realm, client)
    cf_ops.save(realm, {"numbers": ["7701"], "flow": {
        "module": "voicemail", "data": {"mailbox": "1001", "skip_instructions": True}}})
    script.on("record", recorder(2.2, hangup=True))
    before = len(mailbox.messages)
    call_id = kit.place(bridge, realm, "7701")
    (kept,) = support.wait_until(lambda: messages(realm), timeout=30, what="the message")
    assert kept["length"] == 2200
    assert kit.names(standin, call_id)[-1] == "record", "nothing runs after the hangup"
    puts = [c for c in standin.commands if c.verb == "bgapi" and c.args.startswith("http_put ")
            and kept["_id"] in c.args]
    assert len(puts) == 1
    support.wait_until(lambda: mwi(standin, realm), timeout=10, what="MESSAGE_WAITING")
    mailbox.wait(before + 1)
    support.wait_until(lambda: not [q for q in kit.call_queues() if call_id in q],
                       timeout=15, what="the call's queues to go")


def test_too_short_a_message_is_not_kept(bridge: dict, standin: EslStandIn, realm: str,
                                         script: Script, client: support.Client,
                                         mailbox: mediakit.Mailbox) -> None:
    owner_with_box(realm, client)
    cf_ops.save(realm, {"numbers": ["7702"], "flow": {
        "module": "voicemail", "data": {"mailbox": "1001", "skip_greeting": True}}})
    script.on("record", recorder(0.5, hangup=True))
    before = len(mailbox.messages)

    def puts() -> int:
        return len([c for c in standin.commands if c.verb == "bgapi"
                    and c.args.startswith("http_put ")])

    stored = puts()
    call_id = kit.place(bridge, realm, "7702")
    support.wait_until(lambda: puts() > stored, timeout=20, what="the store")
    support.wait_until(lambda: not [q for q in kit.call_queues() if call_id in q],
                       timeout=15, what="the call's queues to go")
    db = provisioning.get_account(realm)["pvt_account_db"]
    rows = get_couch().all_docs(db, include_docs=True)
    assert not [r for r in rows if (r.get("doc") or {}).get("pvt_type") == vm.MESSAGE_TYPE]
    assert messages(realm) == [] and mwi(standin, realm) == []
    assert len(mailbox.messages) == before


def seed(realm: str, box: dict[str, Any], *seconds: float) -> list[dict[str, Any]]:
    account_doc = provisioning.get_account(realm)
    account = {"id": account_doc["_id"], "realm": realm,
               "account_db": account_doc["pvt_account_db"]}
    out = []
    for length in seconds:
        msg = vm.begin_message(account, box, caller_id_number="2000")
        data = mediakit.wav_bytes(length)
        get_couch().put_attachment(account["account_db"], msg["_id"], vm.MESSAGE_FILE, data,
                                   "audio/wav")
        get_couch().update(account["account_db"], msg["_id"], lambda cur, ms=int(length * 1000): {
            **cur, "pvt_media": {vm.MESSAGE_FILE: {"length_ms": ms}}})
        out.append(vm.finish_message(account["account_db"], box, msg["_id"]))
        time.sleep(0.01)
    return out


def test_check_listen_save_delete_and_change_the_pin(
        bridge: dict, standin: EslStandIn, realm: str, script: Script, client: support.Client,
        media_service: mediakit.MediaService) -> None:
    box = owner_with_box(realm, client)
    first, second, third = seed(realm, box, 2.0, 3.0, 2.5)
    cf_ops.save(realm, {"numbers": ["7800"], "flow": {"module": "voicemail_check",
                                                       "data": {"mailbox": "1001"}}})
    # PIN; new messages; the 1st: replay, then next (heard: saved); the 2nd: save; the 3rd:
    # delete; change the PIN; leave
    for keys in ("1234", "1", "1", "#", "2", "3", "4", "5678", "#"):
        script.on("play_and_get_digits", kit.digits(keys), times=1)
    call_id = kit.place(bridge, realm, "7800")
    names = kit.wait_done(standin, call_id, timeout=40)
    assert names.count("play_and_get_digits") == 9
    played = [arg for app, arg in kit.apps(standin, call_id) if app == "playback"]
    urls = [p for p in played if p.startswith(f"http_cache://{media_service.url}/media/")]
    assert len(urls) == 4 and urls[0] == urls[1], played     # the first one twice
    db = provisioning.get_account(realm)["pvt_account_db"]
    assert vm.message(db, first["_id"])["folder"] == "saved"
    assert vm.message(db, second["_id"])["folder"] == "saved"
    assert vm.message(db, third["_id"]) is None
    assert vm.pin_ok(vm.box(db, box["_id"]), "5678")
    support.wait_until(lambda: any(m["MWI-Voice-Message"] == "0/2 (0/0)"
                                   for m in mwi(standin, realm)), timeout=10,
                       what="the lamp after the changes")
    assert [m["MWI-Voice-Message"] for m in mwi(standin, realm)] == [
        "2/1 (0/0)", "1/2 (0/0)", "0/2 (0/0)"]


def test_check_refuses_a_wrong_pin(bridge: dict, standin: EslStandIn, realm: str,
                                   script: Script, client: support.Client) -> None:
    owner_with_box(realm, client)
    cf_ops.save(realm, {"numbers": ["7801"], "flow": {
        "module": "voicemail_check", "data": {"max_login_attempts": 2}}})
    # not the owner's phone: the mailbox is asked for, then the PIN, twice
    for keys in ("1001", "0000", "1001", "9999"):
        script.on("play_and_get_digits", kit.digits(keys), times=1)
    call_id = kit.place(bridge, realm, "7801", caller="2000")
    names = kit.wait_done(standin, call_id, timeout=30)
    assert names.count("play_and_get_digits") == 4
    played = [arg for app, arg in kit.apps(standin, call_id) if app == "playback"]
    assert played.count("voicemail/vm-fail_auth.wav") == 2
    assert played[-1] == "voicemail/vm-goodbye.wav"


def test_a_subscribing_phone_gets_the_count(bridge: dict, standin: EslStandIn, realm: str,
                                            script: Script, client: support.Client) -> None:
    box = owner_with_box(realm, client)
    seed(realm, box, 2.0, 2.0)
    standin.send_event("MESSAGE_QUERY", [("Message-Account", f"sip:1001@{realm}"),
                                         ("VM-Sofia-Profile", "whistle"),
                                         ("VM-sub-call-id", "sub-42@192.0.2.10")])
    support.wait_until(lambda: [m for m in mwi(standin, realm) if m.get("Sub-Call-ID")],
                       timeout=15, what="the answer to the query")
    (answer,) = [m for m in mwi(standin, realm) if m.get("Sub-Call-ID")]
    assert answer["Sub-Call-ID"] == "sub-42@192.0.2.10"
    assert answer["MWI-Voice-Message"] == "2/0 (0/0)"
    assert answer["Sofia-Profile"] == "whistle"


def test_a_registering_phone_gets_the_count_only_when_it_has_a_mailbox(
        bridge: dict, standin: EslStandIn, realm: str, client: support.Client) -> None:
    """FreeSWITCH asks (MESSAGE_QUERY) for every phone that registers: a phone whose owner
    has a box is told its count, one without a box is sent nothing (it did not ask)."""
    provisioning.create_device(realm, "1002", password="pw")           # no owner, no box
    standin.send_event("MESSAGE_QUERY", [("Message-Account", f"sip:1002@{realm}"),
                                         ("VM-Sofia-Profile", "whistle"),
                                         ("VM-Call-ID", "reg-1002@192.0.2.11")])
    box = owner_with_box(realm, client)
    seed(realm, box, 2.0)
    standin.send_event("MESSAGE_QUERY", [("Message-Account", f"sip:1001@{realm}"),
                                         ("VM-Sofia-Profile", "whistle"),
                                         ("VM-Call-ID", "reg-1001@192.0.2.10")])
    support.wait_until(lambda: [m for m in mwi(standin, realm) if m.get("Call-ID")],
                       timeout=15, what="the answer to 1001's query")
    (answer,) = [m for m in mwi(standin, realm) if m.get("Call-ID")]
    assert answer["Call-ID"] == "reg-1001@192.0.2.10"
    assert answer["MWI-Voice-Message"] == "1/0 (0/0)"
    # 1002's query went first through the same queue: had it been answered, it would be here
    assert not [c for c in standin.commands if c.verb == "sendevent"
                and dict(c.header_list).get("MWI-Message-Account") == f"sip:1002@{realm}"]
