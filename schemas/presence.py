"""Message waiting (Event-Category ``presence``): how many voicemails a phone's lamp shows.

``mwi_update`` tells the phones of one SIP account (``To``: ``user@realm``) how many new
and saved messages wait for them; every bridge hears it and asks its FreeSWITCH nodes to
send the SIP NOTIFY (message-summary). ``mwi_query`` is a bridge asking for the current
count because a phone subscribed (or registered); the voicemail side answers it with an
``mwi_update`` that carries the query's subscription or registration ``...-Call-ID``, so
that only the phone that asked is told. As Kazoo's ``kapi_presence``.
"""

from __future__ import annotations

from schemas.base import message
from schemas.kinds import INTEGER

CATEGORY = "presence"

#: what names one phone's dialog with the switch (echoed from a query to its update)
TARGET_FIELDS = ("Subscription-Call-ID", "Registration-Call-ID", "Profile-Name",
                 "Switch-Hostname")

MWI_UPDATE = message(
    "mwi_update", CATEGORY,
    required=("To", "Messages-New", "Messages-Saved"),
    optional=("Messages-Urgent", "Messages-Urgent-Saved", *TARGET_FIELDS),
    types={"Messages-New": INTEGER, "Messages-Saved": INTEGER, "Messages-Urgent": INTEGER,
           "Messages-Urgent-Saved": INTEGER},
)

MWI_QUERY = message(
    "mwi_query", CATEGORY,
    required=("Username", "Realm"),
    optional=TARGET_FIELDS,
)

MESSAGES = (MWI_UPDATE, MWI_QUERY)


def mwi_account(msg: dict) -> tuple[str, str]:
    """``(realm, user)`` of an ``mwi_update``'s ``To`` (``user@realm``, ``sip:`` allowed),
    lower-cased; ``("", "")`` parts when it is malformed (the key still computes)."""
    to = str(msg.get("To") or "")
    if to.lower().startswith("sip:"):
        to = to[4:]
    user, _, realm = to.partition("@")
    return realm.lower(), user.lower()
