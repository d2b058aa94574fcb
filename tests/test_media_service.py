"""The media service under gunicorn (whistle_tasks.web): what a signed URL opens, what an
upload must be, and that one account never reads or writes another's media."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests

from tests import mediakit, support
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import get_couch
from whistle_tasks.core.signing import MediaGrant, sign, verify
from whistle_tasks.data import media
from whistle_tasks.data import voicemail as vm
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import voicemail as vm_ops

LIMIT = 200_000


@pytest.fixture(scope="module")
def service(clean_services: None) -> Iterator[mediakit.MediaService]:
    s = mediakit.MediaService(WHISTLE_MEDIA_MAX_BYTES=str(LIMIT))
    yield s
    s.stop()
    assert "Traceback" not in s.proc.output(), s.proc.output()[-3000:]


def account_of(realm: str) -> dict[str, Any]:
    doc = provisioning.get_account(realm)
    return {"id": doc["_id"], "realm": doc["realm"], "account_db": doc["pvt_account_db"]}


def new_message(realm: str, mailbox: str = "1001") -> tuple[dict[str, Any], dict[str, Any]]:
    account = account_of(realm)
    box = vm_ops.create_box(realm, mailbox, pin="1234")
    return account, vm.begin_message(account, box, caller_id_number="+14155550100")


def on(service: mediakit.MediaService, url: str) -> str:
    """The URL as signed (WHISTLE_MEDIA_URL of this process) → the test service's."""
    return url.replace(settings.media_url.rstrip("/"), service.url)


def grant_of(url: str) -> MediaGrant:
    return verify(media.secret(), url.split("/media/", 1)[1].split("/", 1)[0])


def url_for(service: mediakit.MediaService, grant: MediaGrant) -> str:
    return f"{service.url}/media/{sign(media.secret(), grant)}/{grant.name}"


def test_upload_then_play(service: mediakit.MediaService, realm: str) -> None:
    account, msg = new_message(realm)
    audio = mediakit.wav_bytes(1.5)
    put = requests.put(on(service, media.upload_url(account["id"], msg["_id"], vm.MESSAGE_FILE)),
                       data=audio, headers={"Content-Type": "application/octet-stream"},
                       timeout=10)
    assert put.status_code == 201, put.text
    assert put.json()["length_ms"] == 1500
    doc = vm.message(account["account_db"], msg["_id"])
    assert vm.recorded_length_ms(doc) == 1500
    assert doc["_attachments"][vm.MESSAGE_FILE]["content_type"] == "audio/wav"
    url = on(service, media.doc_read_url(account["id"], doc, vm.MESSAGE_FILE))
    got = requests.get(url, timeout=10)
    assert got.status_code == 200 and got.content == audio
    assert got.headers["Content-Type"] == "audio/wav"
    assert int(got.headers["Content-Length"]) == len(audio)
    max_age = int(got.headers["Cache-Control"].split("max-age=")[1])
    assert settings.media_url_ttl - 5 <= max_age <= 2 * settings.media_url_ttl
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and head.content == b""
    # the same attachment keeps its URL for a while (FreeSWITCH's cache serves it)
    assert media.doc_read_url(account["id"], doc, vm.MESSAGE_FILE) == \
        media.doc_read_url(account["id"], doc, vm.MESSAGE_FILE)


def test_one_account_never_opens_anothers(service: mediakit.MediaService, realm: str) -> None:
    account, msg = new_message(realm)
    requests.put(on(service, media.upload_url(account["id"], msg["_id"], vm.MESSAGE_FILE)),
                 data=mediakit.wav_bytes(1), timeout=10)
    other_realm = f"{support.unique('o')}.example.com"
    provisioning.create_account("Other", other_realm)
    other = account_of(other_realm)
    mine = grant_of(media.read_url(account["id"], msg["_id"], vm.MESSAGE_FILE))
    # the other account's token names the message: it is looked for in the other's database
    theirs = replace(mine, account_id=other["id"])
    assert requests.get(url_for(service, theirs), timeout=10).status_code == 404
    # a document in my database that claims another account is not served to me either
    get_couch().update(account["account_db"], msg["_id"],
                       lambda cur: {**cur, "pvt_account_id": other["id"]})
    refused = requests.get(url_for(service, mine), timeout=10)
    assert refused.status_code == 403 and "not the account's" in refused.text
    # nor can the account name be changed in a token without the key
    token = sign(media.secret(), theirs)
    forged = token.split(".")[0] + "." + sign(media.secret(), mine).split(".")[1]
    assert requests.get(f"{service.url}/media/{forged}/x.wav", timeout=10).status_code == 403


def test_refusals(service: mediakit.MediaService, realm: str) -> None:
    account, msg = new_message(realm)
    upload = on(service, media.upload_url(account["id"], msg["_id"], vm.MESSAGE_FILE))
    read = on(service, media.read_url(account["id"], msg["_id"], vm.MESSAGE_FILE))
    audio = mediakit.wav_bytes(1)

    def status(response: requests.Response, expected: int, reason: str) -> None:
        assert response.status_code == expected, (response.status_code, response.text)
        assert reason in response.json()["error"]

    status(requests.put(read, data=audio, timeout=10), 403, "allows read, not write")
    status(requests.get(upload, timeout=10), 403, "allows write, not read")
    status(requests.get(read, timeout=10), 404, "has no message.wav")
    expired = replace(grant_of(upload), expires=int(time.time()) - 1)
    status(requests.put(url_for(service, expired), data=audio, timeout=10), 403, "expired")
    status(requests.put(upload, data=b"x" * (LIMIT + 1), timeout=10), 413, "over the limit")
    status(requests.put(upload, data=b"RIFF\0\0\0\0WAVEjunk" * 10, timeout=10), 415,
           "not a PCM WAV file")
    status(requests.put(upload, data=b"hello there, not audio", timeout=10), 415,
           "not a WAV file")
    status(requests.put(upload, data=audio, headers={"Content-Type": "text/plain"},
                        timeout=10), 415, "text/plain")
    status(requests.put(upload, data=iter([audio]), timeout=10), 411, "Content-Length")
    status(requests.post(upload, data=audio, timeout=10), 405, "POST")
    assert requests.get(f"{service.url}/nothing", timeout=10).status_code == 404
    gone = on(service, media.upload_url(account["id"], "no-such-doc", vm.MESSAGE_FILE))
    status(requests.put(gone, data=audio, timeout=10), 404, "no document")
    # a document that is not media (the account's own record) is not writable
    not_media = on(service, media.upload_url(account["id"], msg["_id"] + "x", "a.wav"))
    status(requests.put(not_media, data=audio, timeout=10), 404, "no document")
    # nothing was stored by any of it
    assert vm.recorded_length_ms(vm.message(account["account_db"], msg["_id"])) is None
    assert "Traceback" not in service.proc.output()


def test_prompts_account_then_system_then_the_switch(service: mediakit.MediaService,
                                                     realm: str, tmp_path: Any) -> None:
    name = support.unique("p").lower()
    assert media.prompt(account_of(realm)["id"], name, "voicemail/x.wav") == "voicemail/x.wav"
    vm_ops.upload_prompt(mediakit.write_wav(tmp_path / f"{name}.wav", 0.5))
    system = media.prompt(account_of(realm)["id"], name, "voicemail/x.wav")
    assert grant_of(system).account_id == ""
    got = requests.get(on(service, system), timeout=10)
    assert got.status_code == 200 and got.content == (tmp_path / f"{name}.wav").read_bytes()
    vm_ops.upload_prompt(mediakit.write_wav(tmp_path / "own.wav", 0.7), name=name, realm=realm)
    own = media.prompt(account_of(realm)["id"], name, "voicemail/x.wav")
    assert grant_of(own).account_id == account_of(realm)["id"]
    assert requests.get(on(service, own), timeout=10).content == \
        (tmp_path / "own.wav").read_bytes()
    # a new recording of the same prompt is a new URL (no cache keeps the old one)
    vm_ops.upload_prompt(mediakit.write_wav(tmp_path / "own2.wav", 0.9), name=name, realm=realm)
    assert media.prompt(account_of(realm)["id"], name, "voicemail/x.wav") != own
    with pytest.raises(provisioning.ProvisioningError, match="not a WAV file"):
        (tmp_path / "bad.wav").write_bytes(b"nope")
        vm_ops.upload_prompt(tmp_path / "bad.wav")
