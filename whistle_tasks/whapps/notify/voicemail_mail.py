"""Voicemail to e-mail: the mail of one new message, written from CouchDB when it is sent.

The ``voicemail_new`` message names the account, the box and the message; the box says
where to mail (``email``) and in which time zone to tell the time (``timezone``, else the
account's, else UTC); the message gives the caller, the time and the length; its audio is
attached. A message mailed once is marked (``pvt_notified``), so a redelivered task does
not mail it again; a message deleted before its mail went out is not mailed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from whistle_tasks.core import mail
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import CouchError, NotFound, account_db, get_couch
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import voicemail as vm

log = get_logger(__name__)


def _zone(name: str | None) -> dt.tzinfo:
    try:
        return ZoneInfo(name) if name else dt.UTC
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def length_text(ms: int | None) -> str:
    seconds = round((ms or 0) / 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"


def caller_text(doc: Mapping[str, Any]) -> str:
    name = str(doc.get("caller_id_name") or "").strip()
    number = str(doc.get("caller_id_number") or "").strip()
    if name and number and name != number:
        return f"{name} <{number}>"
    return name or number or "an unknown caller"


def compose(message: Mapping[str, Any], box: Mapping[str, Any], audio: bytes | None,
            *, sender: str, zone: str | None = None) -> EmailMessage:
    """The mail for one message (``audio``: the WAV to attach, None when it is gone)."""
    when = dt.datetime.fromtimestamp(float(message.get("timestamp") or 0), dt.UTC) \
        .astimezone(_zone(zone or box.get("timezone")))
    caller = caller_text(message)
    length = length_text(message.get("length"))
    mail_ = EmailMessage()
    mail_["Subject"] = f"New voicemail from {caller} ({length})"
    mail_["From"] = sender
    mail_["To"] = ", ".join(str(a) for a in box.get("email") or [])
    mail_["Date"] = formatdate(localtime=False)
    mail_["Message-ID"] = make_msgid(idstring=str(message["_id"])[:16], domain="whistle")
    box_name = formataddr((str(box.get("name") or ""), str(box.get("mailbox") or ""))) \
        .replace("<", "").replace(">", "").strip()
    mail_.set_content(
        f"You have a new voicemail in mailbox {box.get('mailbox')} ({box_name}).\n\n"
        f"From:     {caller}\n"
        f"Received: {when:%Y-%m-%d %H:%M:%S %Z}\n"
        f"Length:   {length}\n\n"
        + ("The message is attached.\n" if audio else "The recording is no longer there.\n"))
    if audio:
        mail_.add_attachment(audio, maintype="audio", subtype="wav",
                             filename=f"voicemail-{when:%Y%m%d-%H%M%S}.wav")
    return mail_


def deliver(request: Mapping[str, Any]) -> str:
    """Mail one new message; returns what happened (``sent``, ``no address``...).

    Raises :class:`whistle_tasks.core.mail.TransientMailError` when trying again later may
    work (the relay or CouchDB is away), :class:`~whistle_tasks.core.mail.PermanentMailError`
    when it will not."""
    if not settings.smtp_url:
        return "no relay (WHISTLE_SMTP_URL is empty)"
    db = account_db(str(request["Account-ID"]))
    try:
        message = vm.message(db, str(request["Voicemail-Name"]))
        if message is None:
            return "message gone"
        if message.get("pvt_notified"):
            return "mailed already"
        box = vm.box(db, str(request["Voicemail-Box"]))
        if box is None:
            return "box gone"
        if not box.get("email"):
            return "no address"
        audio = _audio(db, message)
    except CouchError as exc:
        raise mail.TransientMailError(f"CouchDB: {exc}") from None
    mail.send(compose(message, box, audio, sender=settings.mail_from), settings.smtp_url)
    try:
        vm.mark_notified(db, message["_id"])
    except CouchError as exc:    # mailed: a redelivery may mail it twice, never lose it
        log.warning("message %s mailed, not marked: %s", message["_id"], exc)
    return "sent"


def _audio(db: str, message: Mapping[str, Any]) -> bytes | None:
    name = str(message.get("media_file") or vm.MESSAGE_FILE)
    if name not in (message.get("_attachments") or {}):
        return None
    try:
        resp = get_couch().get_attachment(db, str(message["_id"]), name)
    except NotFound:
        return None
    try:
        return resp.content
    finally:
        resp.close()
