"""``whistle voicemail`` and ``whistle prompt``: the commands as an operator runs them
(the real CLI in a process of its own), their output and their one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import mediakit, support
from whistle_tasks.core.couch import get_couch
from whistle_tasks.core.signing import verify
from whistle_tasks.data import media
from whistle_tasks.data import voicemail as vm
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import users as user_ops

WHISTLE = str(support.VENV_BIN / "whistle")
pytestmark = pytest.mark.usefixtures("clean_services")


def whistle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([WHISTLE, *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ), cwd=support.ROOT, check=False)


def test_create_list_messages_and_play_url(realm: str) -> None:
    user_ops.create_user(realm, "alice", name="Alice")
    made = whistle("voicemail", "create", "--realm", realm, "--mailbox", "1001", "--owner",
                   "alice", "--pin", "2468", "--email", "alice@example.com")
    assert made.returncode == 0, made.stderr
    box_id = re.search(r"id ([0-9a-f]{32})", made.stdout).group(1)
    assert user_ops.get_user(realm, "alice")["voicemail_box"] == "1001"
    db = provisioning.get_account(realm)["pvt_account_db"]
    box = vm.box(db, box_id)
    assert box["owner_id"] == user_ops.get_user(realm, "alice")["_id"]
    assert vm.pin_ok(box, "2468") and not vm.pin_ok(box, "1111")
    assert "2468" not in str(box)   # only its hash is kept

    account = provisioning.get_account(realm)
    msg = vm.begin_message({"id": account["_id"], "realm": realm, "account_db": db}, box,
                           caller_id_name="Bob", caller_id_number="2000")
    get_couch().put_attachment(db, msg["_id"], vm.MESSAGE_FILE, mediakit.wav_bytes(3),
                               "audio/wav")
    get_couch().update(db, msg["_id"], lambda cur: {
        **cur, "pvt_media": {vm.MESSAGE_FILE: {"length_ms": 3000}}})
    vm.finish_message(db, box, msg["_id"])

    listed = whistle("voicemail", "list", "--realm", realm)
    assert listed.returncode == 0, listed.stderr
    row = [line for line in listed.stdout.splitlines() if line.startswith("1001")][0].split()
    assert row[:2] == ["1001", "Alice"] and row[3:6] == ["1", "0", "yes"]
    shown = whistle("voicemail", "messages", "--realm", realm, "--mailbox", "1001")
    assert shown.returncode == 0 and msg["_id"] in shown.stdout
    assert "3.0" in shown.stdout and "Bob 2000" in shown.stdout and "new" in shown.stdout
    url = whistle("voicemail", "play-url", "--realm", realm, "--mailbox", "1001", msg["_id"])
    assert url.returncode == 0, url.stderr
    token = url.stdout.strip().split("/media/", 1)[1].split("/")[0]
    grant = verify(media.secret(), token)
    assert (grant.account_id, grant.doc_id, grant.op) == (account["_id"], msg["_id"], "read")
    assert url.stdout.strip().endswith("/message.wav")

    gone = whistle("voicemail", "delete-message", "--realm", realm, "--mailbox", "1001",
                   msg["_id"])
    assert gone.returncode == 0 and vm.message(db, msg["_id"]) is None


@pytest.mark.parametrize(("args", "error"), [
    (("--mailbox", "10 01"), "invalid mailbox"),
    (("--mailbox", "1001", "--pin", "12"), "a PIN is 4 to 12 digits"),
    (("--mailbox", "1001", "--owner", "nobody"), "nobody"),
    (("--mailbox", "1001", "--email", "not-an-address"), "invalid e-mail address"),
])
def test_create_refusals(realm: str, args: tuple[str, ...], error: str) -> None:
    refused = whistle("voicemail", "create", "--realm", realm, *args)
    assert refused.returncode == 1
    assert error in refused.stderr and "Traceback" not in refused.stderr


def test_one_box_per_mailbox_and_unknown_things(realm: str) -> None:
    assert whistle("voicemail", "create", "--realm", realm, "--mailbox", "2001").returncode == 0
    again = whistle("voicemail", "create", "--realm", realm, "--mailbox", "2001")
    assert again.returncode == 1 and "already exists" in again.stderr
    missing = whistle("voicemail", "messages", "--realm", realm, "--mailbox", "9999")
    assert missing.returncode == 1 and "no mailbox 9999" in missing.stderr
    nothing = whistle("voicemail", "play-url", "--realm", realm, "--mailbox", "2001", "abc")
    assert nothing.returncode == 1 and "no message abc" in nothing.stderr
    nowhere = whistle("voicemail", "list", "--realm", "nowhere.example.com")
    assert nowhere.returncode == 1 and "unknown realm" in nowhere.stderr


def test_prompt_upload(realm: str, tmp_path: Path) -> None:
    # a system-wide prompt of a name no module plays: a real one (vm-goodbye) would turn the
    # later voicemail tests' prompts into http_cache URLs
    name = f"test-prompt-{uuid.uuid4().hex[:8]}"
    path = mediakit.write_wav(tmp_path / f"{name}.wav", 1.25)
    done = whistle("prompt", "upload", str(path))
    assert done.returncode == 0, done.stderr
    assert f"prompt {name} stored for every account: 1.2 s" in done.stdout
    own = whistle("prompt", "upload", str(path), "--name", "greeting-main", "--realm", realm)
    assert own.returncode == 0 and f"for account {realm}" in own.stdout
    account_id = provisioning.get_account(realm)["_id"]
    assert media.prompt(account_id, "greeting-main", "x").startswith("http")
    (tmp_path / "text.wav").write_text("not audio")
    bad = whistle("prompt", "upload", str(tmp_path / "text.wav"))
    assert bad.returncode == 1 and "not a WAV file" in bad.stderr
    named = whistle("prompt", "upload", str(path), "--name", "../etc")
    assert named.returncode == 1 and "invalid prompt name" in named.stderr
