"""Writing voicemail boxes, reading their messages, and prompts: what the CLI (and later the
REST API) do to voicemail and media. Errors are :class:`ProvisioningError`, fit for an
operator.

A box belongs to an account and, usually, to a user (``owner``: the user's devices are the
phones whose lamps it lights, and ``voicemail_check`` without a box opens the caller's own);
the user's ``voicemail_box`` is set to the box's number. Message-waiting is published after
every change here that alters a count, as the voicemail modules do during calls.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from schemas import contracts
from whistle_tasks.core import amqp, audio, changes
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import media
from whistle_tasks.data import voicemail as vm
from whistle_tasks.ops import users as user_ops
from whistle_tasks.ops.provisioning import ProvisioningError, get_account

MAILBOX_CHARS = frozenset("0123456789*#")
PROMPT_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")

_publisher: amqp.Publisher | None = None


def _account_view(account: dict[str, Any]) -> dict[str, Any]:
    """The account as the data libraries take it (the view's shape)."""
    return {"id": account["_id"], "realm": account["realm"],
            "account_db": account["pvt_account_db"], "name": account.get("name")}


def publish_mwi(account: dict[str, Any], owner_id: str | None) -> int:
    """Tell the owner's phones the counts now; returns the updates sent."""
    global _publisher
    updates = vm.mwi_updates(_account_view(account), owner_id)
    if not updates:
        return 0
    publisher = _publisher = _publisher or amqp.Publisher(settings.amqp_url)
    for update in updates:
        publisher.send(contracts.MWI_UPDATE, update)
    return len(updates)


# -- boxes -----------------------------------------------------------------------------------

def create_box(realm: str, mailbox: str, *, name: str | None = None, owner: str | None = None,
               pin: str | None = None, email: list[str] | None = None,
               timezone: str | None = None, max_message_length: int | None = None,
               min_message_length: int | None = None) -> dict[str, Any]:
    """A new box ``mailbox`` (the number its owner and callers dial) in ``realm``."""
    account = get_account(realm)
    mailbox = mailbox.strip()
    if not mailbox or len(mailbox) > 16 or not set(mailbox) <= MAILBOX_CHARS:
        raise ProvisioningError(f"invalid mailbox {mailbox!r} (digits, * and #, up to 16)")
    if pin is not None and not vm.valid_pin(pin):
        raise ProvisioningError("a PIN is 4 to 12 digits")
    for address in email or []:
        if "@" not in address or any(c.isspace() for c in address) or "," in address:
            raise ProvisioningError(f"invalid e-mail address {address!r}")
    db = account["pvt_account_db"]
    if vm.box_by_mailbox(db, mailbox) is not None:
        raise ProvisioningError(f"mailbox {mailbox} already exists in {account['realm']}")
    owner_doc = user_ops.get_user(account["realm"], owner) if owner else None
    now = int(time.time())
    doc: dict[str, Any] = {
        "_id": uuid.uuid4().hex, "pvt_type": vm.BOX_TYPE, "mailbox": mailbox,
        "name": name or (owner_doc or {}).get("name") or f"mailbox {mailbox}",
        "owner_id": owner_doc["_id"] if owner_doc else None,
        "email": list(email or []), "pvt_account_id": account["_id"],
        "pvt_account_db": db, "realm": account["realm"], "pvt_created": now,
        "pvt_modified": now}
    if pin:
        doc["pin_hash"] = vm.hash_pin(pin)
    for field, value in (("timezone", timezone), ("max_message_length", max_message_length),
                         ("min_message_length", min_message_length)):
        if value is not None:
            doc[field] = value
    saved = get_couch().save(db, doc)
    if owner_doc is not None:
        user_ops.update_user(account["realm"], owner_doc["username"],
                             {"voicemail_box": mailbox})
    changes.broadcast("created", vm.BOX_TYPE, saved["_id"], realm=account["realm"],
                      account_id=account["_id"])
    return saved


def get_box(realm: str, mailbox: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(account, box)``; :class:`ProvisioningError` when there is no such box."""
    account = get_account(realm)
    found = vm.box_by_mailbox(account["pvt_account_db"], mailbox.strip())
    if found is None:
        raise ProvisioningError(f"no mailbox {mailbox} in {account['realm']}")
    return account, found


def list_boxes(realm: str) -> list[dict[str, Any]]:
    """Every box of the realm with its counts (``new``, ``saved``)."""
    account = get_account(realm)
    db = account["pvt_account_db"]
    return [{**found, **vm.counts(db, found["_id"])} for found in vm.boxes(db)]


def set_pin(realm: str, mailbox: str, pin: str) -> None:
    account, found = get_box(realm, mailbox)
    if not vm.valid_pin(pin):
        raise ProvisioningError("a PIN is 4 to 12 digits")
    vm.set_pin(account["pvt_account_db"], found["_id"], pin)


# -- messages --------------------------------------------------------------------------------

def messages(realm: str, mailbox: str, folder: str | None = None) -> list[dict[str, Any]]:
    account, found = get_box(realm, mailbox)
    if folder is not None and folder not in vm.FOLDERS:
        raise ProvisioningError(f"folder must be one of {', '.join(vm.FOLDERS)}")
    return vm.messages(account["pvt_account_db"], found["_id"], folder)


def _message_of(realm: str, mailbox: str, message_id: str
                ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    account, found = get_box(realm, mailbox)
    msg = vm.message(account["pvt_account_db"], message_id)
    if msg is None or msg.get("box_id") != found["_id"] or msg.get("folder") not in vm.FOLDERS:
        raise ProvisioningError(f"no message {message_id} in mailbox {mailbox}")
    return account, found, msg


def play_url(realm: str, mailbox: str, message_id: str) -> str:
    """A signed URL that plays one message (valid ``WHISTLE_MEDIA_URL_TTL`` at least)."""
    account, _found, msg = _message_of(realm, mailbox, message_id)
    url = media.doc_read_url(account["_id"], msg, vm.MESSAGE_FILE)
    if url is None:
        raise ProvisioningError(f"message {message_id} has no audio")
    return url


def delete_message(realm: str, mailbox: str, message_id: str) -> None:
    account, found, msg = _message_of(realm, mailbox, message_id)
    vm.delete_message(account["pvt_account_db"], msg["_id"])
    publish_mwi(account, found.get("owner_id"))


def move_message(realm: str, mailbox: str, message_id: str, folder: str) -> dict[str, Any]:
    """File a message as ``saved`` (heard: the lamp goes off when none is new) or back as
    ``new``; message-waiting follows."""
    if folder not in vm.FOLDERS:
        raise ProvisioningError(f"folder must be one of {', '.join(vm.FOLDERS)}")
    account, found, _msg = _message_of(realm, mailbox, message_id)
    moved = vm.move(account["pvt_account_db"], message_id, folder)
    if moved is None:
        raise ProvisioningError(f"no message {message_id} in mailbox {mailbox}")
    publish_mwi(account, found.get("owner_id"))
    return moved


def get_message(realm: str, mailbox: str, message_id: str) -> dict[str, Any]:
    return _message_of(realm, mailbox, message_id)[2]


def message_audio(realm: str, mailbox: str, message_id: str) -> bytes:
    """The recorded audio (WAV) of one message."""
    account, _found, msg = _message_of(realm, mailbox, message_id)
    if media.attachment_of(msg, vm.MESSAGE_FILE) is None:
        raise ProvisioningError(f"no audio for message {message_id}")
    return _attachment(account["pvt_account_db"], msg["_id"], vm.MESSAGE_FILE)


def store_greeting(realm: str, mailbox: str, data: bytes, declared: str = "") -> dict[str, Any]:
    """The box's greeting (WAV), played to callers before the tone; replaces the older one."""
    account, found = get_box(realm, mailbox)
    length_ms = check_audio(data, f"greeting of {mailbox}", declared)
    db = account["pvt_account_db"]
    couch = get_couch()
    couch.put_attachment(db, found["_id"], vm.GREETING_FILE, data, audio.WAV)
    facts = {"length_ms": length_ms, "bytes": len(data), "content_type": audio.WAV,
             "stored_at": int(time.time())}
    saved = couch.update(db, found["_id"], lambda cur: None if cur is None else {
        **cur, "pvt_media": {**(cur.get("pvt_media") or {}), vm.GREETING_FILE: facts}})
    changes.broadcast("edited", vm.BOX_TYPE, found["_id"], realm=account["realm"],
                      account_id=account["_id"])
    return saved or found


def greeting_audio(realm: str, mailbox: str) -> bytes:
    account, found = get_box(realm, mailbox)
    if media.attachment_of(found, vm.GREETING_FILE) is None:
        raise ProvisioningError(f"no greeting for mailbox {mailbox}")
    return _attachment(account["pvt_account_db"], found["_id"], vm.GREETING_FILE)


# -- prompts ---------------------------------------------------------------------------------

def upload_prompt(path: str | Path, *, name: str | None = None,
                  realm: str | None = None) -> dict[str, Any]:
    """Store a WAV file as prompt ``name`` (default: the file's name without ``.wav``): the
    account's own when ``realm`` is given, else the system-wide one every account plays
    unless it has its own. Replaces an older recording of the same name."""
    path = Path(path)
    name = check_prompt_name(name or path.stem)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProvisioningError(f"cannot read {path}: {exc.strerror or exc}") from None
    return store_prompt(data, name=name, realm=realm, source=path.name)


def check_prompt_name(name: str) -> str:
    """The prompt name as stored (lower case), or :class:`ProvisioningError`."""
    name = name.strip().lower()
    if not name or len(name) > 64 or not set(name) <= PROMPT_NAME_CHARS or name[0] in "._-":
        raise ProvisioningError(f"invalid prompt name {name!r} (letters, digits, _ - .)")
    return name


def check_audio(data: bytes, what: str, declared: str = "") -> int:
    """The length in ms of a WAV file fit to keep, else :class:`AudioRefused` (a declared
    Content-Type that is not a WAV file's, content that is not PCM WAV) or
    :class:`AudioTooLarge` (over ``WHISTLE_MEDIA_MAX_BYTES``)."""
    if len(data) > settings.media_max_bytes:
        raise AudioTooLarge(f"{what}: {len(data)} bytes is over WHISTLE_MEDIA_MAX_BYTES "
                            f"({settings.media_max_bytes})")
    try:
        if declared:
            audio.check_declared(declared)
        return audio.wav_length_ms(data)
    except audio.AudioError as exc:
        raise AudioRefused(f"{what}: {exc}") from None


class AudioRefused(ProvisioningError):
    """Not audio we keep (not a PCM WAV file, or declared as something else)."""


class AudioTooLarge(ProvisioningError):
    """Audio over ``WHISTLE_MEDIA_MAX_BYTES``."""


def store_prompt(data: bytes, *, name: str, realm: str | None = None, source: str = "",
                 declared: str = "") -> dict[str, Any]:
    """Store WAV ``data`` as prompt ``name`` (the account's own when ``realm`` is given,
    else the system-wide one); replaces an older recording of the same name."""
    name = check_prompt_name(name)
    length_ms = check_audio(data, source or name, declared)
    account = get_account(realm) if realm else None
    account_id = account["_id"] if account else ""
    db = media.database(account_id)
    couch = get_couch()
    couch.ensure_db(db)
    doc_id = media.prompt_id(name)
    now = int(time.time())

    def prompt_doc(current: dict[str, Any] | None) -> dict[str, Any]:
        doc = {**(current or {}), "pvt_type": media.MEDIA_TYPE, "name": name,
               "media_file": f"{name}.wav", "source": source or f"{name}.wav",
               "pvt_modified": now}
        if account:
            doc["pvt_account_id"] = account["_id"]
        doc.setdefault("pvt_created", now)
        doc.pop("pvt_deleted", None)
        return doc

    couch.update(db, doc_id, prompt_doc)
    couch.put_attachment(db, doc_id, f"{name}.wav", data, audio.WAV)
    facts = {"length_ms": length_ms, "bytes": len(data), "content_type": audio.WAV,
             "stored_at": now}
    saved = couch.update(db, doc_id, lambda cur: None if cur is None else
                         {**cur, "pvt_media": {f"{name}.wav": facts}})
    media.forget_prompt(account_id, name, shared=True)
    changes.broadcast("edited", media.MEDIA_TYPE, doc_id,
                      realm=account["realm"] if account else None, account_id=account_id or None)
    return saved or {"_id": doc_id}


def list_prompts(realm: str | None = None) -> list[dict[str, Any]]:
    """The prompts stored for ``realm`` (None: the system-wide ones), by name."""
    account_id = get_account(realm)["_id"] if realm else ""
    couch = get_couch()
    db = media.database(account_id)
    if not account_id:
        couch.ensure_db(db)
    rows = couch.all_docs(db, startkey="media-", endkey="media-\ufff0", include_docs=True)
    return sorted((r["doc"] for r in rows if (r.get("doc") or {}).get("pvt_type")
                   == media.MEDIA_TYPE and not r["doc"].get("pvt_deleted")),
                  key=lambda d: d["name"])


def prompt_audio(realm: str | None, name: str) -> tuple[bytes, str]:
    """``(wav bytes, file name)`` of a stored prompt (the account's own when ``realm``)."""
    name = check_prompt_name(name)
    account_id = get_account(realm)["_id"] if realm else ""
    db = media.database(account_id)
    doc = get_couch().get_or_none(db, media.prompt_id(name))
    if not doc or doc.get("pvt_type") != media.MEDIA_TYPE or doc.get("pvt_deleted") \
            or media.attachment_of(doc, str(doc.get("media_file") or "")) is None:
        raise ProvisioningError(f"no prompt {name}")
    return _attachment(db, doc["_id"], doc["media_file"]), doc["media_file"]


def _attachment(db: str, doc_id: str, name: str) -> bytes:
    resp = get_couch().get_attachment(db, doc_id, name)
    try:
        return resp.content
    finally:
        resp.close()
