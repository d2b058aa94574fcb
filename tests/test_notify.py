"""Voicemail to e-mail (the notify whapp): the mail as written, sent to a real SMTP server in
this process (aiosmtpd), and a relay that is down only delaying it (Celery retries)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest

import schemas
from schemas import contracts
from tests import mediakit, support
from tests.bridgekit import free_port
from whistle_tasks.core import audio as audio_check
from whistle_tasks.core import mail
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import voicemail as vm
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import voicemail as vm_ops
from whistle_tasks.whapps.notify import voicemail_mail

pytestmark = pytest.mark.usefixtures("clean_services")


def left_message(realm: str, seconds: float = 2.0, **box: Any) -> tuple[dict, dict, dict, bytes]:  # noqa: ANN401
    """A box with a kept message of ``seconds`` of audio: (account, box, message, audio)."""
    account_doc = provisioning.get_account(realm)
    account = {"id": account_doc["_id"], "realm": realm,
               "account_db": account_doc["pvt_account_db"]}
    found = vm_ops.create_box(realm, box.pop("mailbox", "1001"),
                              email=box.pop("email", ["alice@example.com"]), **box)
    msg = vm.begin_message(account, found, caller_id_name="Bob", caller_id_number="+14155550100",
                           call_id="c-1")
    data = mediakit.wav_bytes(seconds)
    couch = get_couch()
    couch.put_attachment(account["account_db"], msg["_id"], vm.MESSAGE_FILE, data, "audio/wav")
    couch.update(account["account_db"], msg["_id"], lambda cur: {**cur, "pvt_media": {
        vm.MESSAGE_FILE: {"length_ms": audio_check.wav_length_ms(data)}}})
    filed = vm.finish_message(account["account_db"], found, msg["_id"])
    assert filed is not None and filed["folder"] == "new"
    return account, found, filed, data


def request_for(account: dict, box: dict, message: dict) -> dict[str, Any]:
    return schemas.build("voicemail_new", {
        "Account-ID": account["id"], "Voicemail-Box": box["_id"],
        "Voicemail-Name": message["_id"], "Voicemail-Length": message["length"]},
        **{"App-Name": "test"})


@pytest.fixture()
def mailbox() -> Iterator[mediakit.Mailbox]:
    box = mediakit.Mailbox().start()
    yield box
    box.stop()


def check_mail(sent: Any, data: bytes, to: str = "alice@example.com") -> None:  # noqa: ANN401
    assert sent["To"] == to
    assert sent["From"] == settings.mail_from
    assert sent["Subject"] == "New voicemail from Bob <+14155550100> (0:02)"
    body = sent.get_body(("plain",)).get_content()
    assert "From:     Bob <+14155550100>" in body and "Length:   0:02" in body
    assert "Received: " in body and "mailbox 1001" in body
    (attached,) = list(sent.iter_attachments())
    assert attached.get_content_type() == "audio/wav"
    assert attached.get_filename().startswith("voicemail-")
    assert attached.get_content() == data


def test_compose_in_the_box_time_zone(realm: str) -> None:
    _, box, message, data = left_message(realm, timezone="Europe/Paris")
    written = voicemail_mail.compose({**message, "timestamp": 1_717_407_000}, box, data,
                                     sender="vm@example.com")
    assert "Received: 2024-06-03 11:30:00 CEST" in written.get_body(("plain",)).get_content()
    assert voicemail_mail.compose(message, box, None, sender="x@y").get_body(
        ("plain",)).get_content().endswith("The recording is no longer there.\n")


def test_deliver_sends_once(realm: str, mailbox: mediakit.Mailbox,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    account, box, message, data = left_message(realm)
    monkeypatch.setattr(voicemail_mail, "settings",
                        dataclasses.replace(settings, smtp_url=mailbox.url))
    request = request_for(account, box, message)
    assert voicemail_mail.deliver(request) == "sent"
    (sent,) = mailbox.wait(1)
    check_mail(sent, data)
    # a redelivered task does not mail it twice
    assert voicemail_mail.deliver(request) == "mailed already"
    assert len(mailbox.messages) == 1
    assert vm.message(account["account_db"], message["_id"])["pvt_notified"]


def test_relay_errors_are_told_apart(realm: str, mailbox: mediakit.Mailbox,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    account, box, message, _ = left_message(realm, email=["nobody@example.com"])
    request = request_for(account, box, message)

    async def refuse(server: Any, session: Any, envelope: Any, address: str,  # noqa: ANN401
                     options: Any) -> str:  # noqa: ANN401
        return "550 no such user here"

    mailbox.handle_RCPT = refuse  # type: ignore[attr-defined]
    monkeypatch.setattr(voicemail_mail, "settings",
                        dataclasses.replace(settings, smtp_url=mailbox.url))
    with pytest.raises(mail.PermanentMailError, match="550"):
        voicemail_mail.deliver(request)
    monkeypatch.setattr(voicemail_mail, "settings", dataclasses.replace(
        settings, smtp_url=f"smtp://127.0.0.1:{free_port()}"))
    with pytest.raises(mail.TransientMailError, match="ConnectionRefused"):
        voicemail_mail.deliver(request)
    monkeypatch.setattr(voicemail_mail, "settings", dataclasses.replace(settings, smtp_url=""))
    assert voicemail_mail.deliver(request).startswith("no relay")
    with pytest.raises(mail.PermanentMailError, match="smtp://host"):
        mail.send(voicemail_mail.compose(message, box, None, sender="a@b"), "http://x")


@pytest.mark.slow
def test_a_relay_that_is_down_delays_the_mail(realm: str, client: support.Client) -> None:
    """The notify worker tries, fails (nobody listens), retries; the relay comes up and the
    mail arrives; the message was never touched."""
    account, box, message, data = left_message(realm)
    port = free_port()
    worker = support.start_worker("notify", name="notify-retry", pool="threads",
                                  concurrency=2, env={"WHISTLE_SMTP_URL": f"smtp://127.0.0.1:{port}"})
    relay = mediakit.Mailbox(port)
    try:
        client.send(contracts.VOICEMAIL_NEW, request_for(account, box, message))
        support.wait_until(lambda: "mail delayed" in worker.output(), timeout=20,
                           what="the first failed try")
        time.sleep(1)
        relay.start()
        (sent,) = relay.wait(1, timeout=60)
        check_mail(sent, data)
        support.wait_until(lambda: vm.message(account["account_db"], message["_id"])
                           .get("pvt_notified"), timeout=10, what="the message marked mailed")
    finally:
        worker.stop()
        if relay.controller._thread is not None:  # noqa: SLF001 - started only in the test
            relay.stop()
    kept = vm.message(account["account_db"], message["_id"])
    assert kept["folder"] == "new" and kept["length"] == 2000
    assert "Traceback" not in worker.output(), worker.output()[-3000:]
