"""Notifications (Event-Category ``notification``): what a person is told, by mail.

``voicemail_new``: a caller left a message. The ``notify`` whapp mails it (the audio
attached) to the box's address; it names the account, the box and the message document, so
the mail is written from CouchDB, the system of record, when it is sent. As Kazoo's
``kapi_notifications`` ``voicemail_new``.
"""

from __future__ import annotations

from schemas.base import message
from schemas.kinds import INTEGER, NUMBER

CATEGORY = "notification"

VOICEMAIL_NEW = message(
    "voicemail_new", CATEGORY,
    required=("Account-ID", "Voicemail-Box", "Voicemail-Name"),
    optional=("Caller-ID-Name", "Caller-ID-Number", "Voicemail-Timestamp", "Voicemail-Length",
              "To-Realm"),
    types={"Voicemail-Timestamp": NUMBER, "Voicemail-Length": INTEGER},
)

MESSAGES = (VOICEMAIL_NEW,)
