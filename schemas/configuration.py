"""Configuration changes (Event-Category ``configuration``): ours, not Whistle's.

Broadcast when a document the system caches from (a device's SIP credentials, an
account, a number) is created, edited or deleted, so that every process and every
bridge drops what it cached from it at once.
"""

from __future__ import annotations

from schemas.base import message

CATEGORY = "configuration"

_FIELDS = {"required": ("Type", "ID"),
           "optional": ("Database", "Rev", "Account-ID", "Realm", "Username")}

DOC_CREATED = message("doc_created", CATEGORY, **_FIELDS)
DOC_EDITED = message("doc_edited", CATEGORY, **_FIELDS)
DOC_DELETED = message("doc_deleted", CATEGORY, **_FIELDS)

MESSAGES = (DOC_CREATED, DOC_EDITED, DOC_DELETED)
