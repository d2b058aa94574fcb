"""Media in CouchDB (voicemail messages, greetings, prompts) and the signed URLs that open it.

Audio lives as attachments of documents, never on one switch's disk, so any FreeSWITCH node
plays it (mod_http_cache fetches the URL) and any node's recording reaches it (``store``
PUTs the file to an upload URL). The media service (:mod:`whistle_tasks.web.media`) serves
those URLs; this module makes them:

* :func:`read_url` / :func:`upload_url`: ``<WHISTLE_MEDIA_URL>/media/<token>/<name>``, the
  token signed for one account, one document, one attachment and one operation
  (:mod:`whistle_tasks.core.signing`); a read URL stays the same for a while (the same
  prompt, the same URL: FreeSWITCH's cache serves it) and changes with the attachment;
* :func:`prompt`: what to play for a named prompt (``vm-enter_pass``): the account's own
  recording, else the system-wide one (database ``system_media``), else the FreeSWITCH
  sound file the caller names (the standard sounds every node has);
* :func:`secret`: the signing key, ``WHISTLE_MEDIA_SECRET`` or one made once and kept in
  CouchDB (``system_config/media``), so every process of the platform agrees on it.

Documents: a prompt is ``pvt_type`` media, ``_id`` ``media-<name>``, its audio the
attachment ``media_file`` names; voicemail boxes and messages are
:mod:`whistle_tasks.data.voicemail`'s. The media service writes what it measured of an
upload under ``pvt_media.<attachment>`` (``length_ms``, ``bytes``, ``content_type``).
"""

from __future__ import annotations

import secrets as _secrets
import threading
import time
from typing import Any
from urllib.parse import quote

from whistle_tasks.core.cache import MISSING, Cache
from whistle_tasks.core.changes import on_change
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import Conflict, account_db, get_couch
from whistle_tasks.core.log import get_logger
from whistle_tasks.core.signing import MediaGrant, bucket_expiry, sign

log = get_logger(__name__)

SYSTEM_MEDIA_DB = "system_media"
KEY_DOC_ID = "media"
MEDIA_TYPE = "media"
PROMPT_TTL = 300  # seconds a prompt look-up is cached (a change broadcast drops it sooner)

_prompts = Cache("prompts", ttl=PROMPT_TTL)
_secret: list[str] = []
_secret_lock = threading.Lock()


def database(account_id: str) -> str:
    """The database of an account's media (``""``: the system-wide prompts)."""
    return account_db(account_id) if account_id else SYSTEM_MEDIA_DB


def secret() -> str:
    """The key that signs media URLs (see the module docstring)."""
    if settings.media_secret:
        return settings.media_secret
    if _secret:
        return _secret[0]
    with _secret_lock:
        if not _secret:
            couch = get_couch()
            couch.ensure_db("system_config")
            doc = couch.get_or_none("system_config", KEY_DOC_ID)
            if not (doc and doc.get("secret")):
                try:
                    couch.save("system_config", {**(doc or {}), "_id": KEY_DOC_ID,
                                                 "pvt_type": "media_secret",
                                                 "secret": _secrets.token_hex(32)})
                except Conflict:
                    pass  # another process made it at the same moment: use theirs
                doc = couch.get("system_config", KEY_DOC_ID)
            _secret.append(str(doc["secret"]))
    return _secret[0]


def _url(grant: MediaGrant) -> str:
    token = sign(secret(), grant)
    return f"{settings.media_url.rstrip('/')}/media/{token}/{quote(grant.name, safe='')}"


def read_url(account_id: str, doc_id: str, name: str, version: str = "") -> str:
    """A URL that plays (GET) one attachment; ``version`` (its digest) makes a changed
    attachment a new URL, so no cache keeps playing the old one."""
    return _url(MediaGrant(account_id, doc_id, name, "read",
                           bucket_expiry(settings.media_url_ttl), version[-16:]))


def upload_url(account_id: str, doc_id: str, name: str) -> str:
    """A URL that stores (PUT) one attachment of an existing document."""
    return _url(MediaGrant(account_id, doc_id, name, "write",
                           int(time.time()) + max(60, settings.media_url_ttl)))


def attachment_of(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The stub of attachment ``name`` of a document (``content_type``, ``length``,
    ``digest``), or None."""
    found = (doc.get("_attachments") or {}).get(name)
    return found if isinstance(found, dict) else None


def doc_read_url(account_id: str, doc: dict[str, Any], name: str) -> str | None:
    """:func:`read_url` for a document at hand, None when it has no such attachment."""
    stub = attachment_of(doc, name)
    if stub is None:
        return None
    return read_url(account_id, doc["_id"], name, str(stub.get("digest") or ""))


# -- prompts ---------------------------------------------------------------------------------

def prompt_id(name: str) -> str:
    return f"media-{name}"


def _stored_prompt(account_id: str, name: str) -> dict[str, Any] | None:
    """``{"account_id", "file", "version"}`` of the stored prompt (account, then system)."""
    for owner in ((account_id, "") if account_id else ("",)):
        def load(owner: str = owner) -> dict[str, Any]:
            doc = get_couch().get_or_none(database(owner), prompt_id(name))
            if not doc or doc.get("pvt_deleted") or doc.get("pvt_type") != MEDIA_TYPE:
                return {"missing": True}
            stub = attachment_of(doc, str(doc.get("media_file") or ""))
            if stub is None:
                return {"missing": True}
            return {"account_id": owner, "file": doc["media_file"],
                    "version": str(stub.get("digest") or "")}

        found = _prompts.get_or_load(f"{owner or '_system'}/{name}", load)
        if found is not MISSING and not found.get("missing"):
            return found
    return None


def prompt(account_id: str, name: str, fallback: str) -> str:
    """What to play for prompt ``name``: a URL of the account's or the system's recording,
    else ``fallback`` (a FreeSWITCH sound file such as ``voicemail/vm-goodbye.wav``)."""
    try:
        found = _stored_prompt(account_id, name)
    except Exception as exc:  # noqa: BLE001 - a prompt look-up never breaks a call
        log.warning("prompt %s: look-up failed (%s), playing %s", name, exc, fallback)
        return fallback
    if found is None:
        return fallback
    return read_url(found["account_id"], prompt_id(name), found["file"], found["version"])


def forget_prompt(account_id: str, name: str, *, shared: bool) -> None:
    key = f"{account_id or '_system'}/{name}"
    (_prompts.delete if shared else _prompts.delete_local)(key)


@on_change(MEDIA_TYPE)
def _prompt_changed(change: dict[str, Any]) -> None:
    doc_id = str(change.get("ID") or "")
    if doc_id.startswith("media-"):
        forget_prompt(str(change.get("Account-ID") or ""), doc_id[len("media-"):], shared=False)


def ensure_prompt_doc(account_id: str, name: str, *, source: str) -> dict[str, Any]:
    """The document of the account's prompt ``name`` (made when missing), ready for an
    upload of its audio (``<name>.wav``) to :func:`upload_url`; ``source`` says where the
    audio came from (a file name, ``recorded on a call``)."""
    db = database(account_id)
    now = int(time.time())

    def prompt_doc(current: dict[str, Any] | None) -> dict[str, Any]:
        doc = {**(current or {}), "pvt_type": MEDIA_TYPE, "name": name,
               "media_file": f"{name}.wav", "source": source, "pvt_modified": now}
        if account_id:
            doc["pvt_account_id"] = account_id
        doc.setdefault("pvt_created", now)
        doc.pop("pvt_deleted", None)
        return doc

    couch = get_couch()
    couch.ensure_db(db)
    return couch.update(db, prompt_id(name), prompt_doc) or {"_id": prompt_id(name)}
