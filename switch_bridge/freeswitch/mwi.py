"""Message waiting at FreeSWITCH's edge: ``mwi_update`` → ``MESSAGE_WAITING``, and
``MESSAGE_QUERY`` → ``mwi_query``. Pure functions, no I/O.

mod_sofia (``sofia_presence.c``) turns a ``MESSAGE_WAITING`` event into SIP NOTIFYs
(``Event: message-summary``): every ``MWI-*`` header becomes a line of the body without its
``MWI-`` prefix (``Messages-Waiting: yes``, ``Message-Account: sip:1000@example.com``,
``Voice-Message: 2/1 (0/0)``). Without ``Call-ID`` or ``Sub-Call-ID`` it notifies every
registration and every message-summary subscription of the account on that switch; with
``Sub-Call-ID`` only that subscription, with ``Call-ID`` only that registration.
``Sofia-Profile`` saves it a search for the profile (it needs the header ``sofia-profile``
or a profile named like the realm or a registration of the realm on that switch).

When a phone subscribes to message-summary (a profile with ``manage-presence``), or
registers (``send-message-query-on-register``), mod_sofia fires ``MESSAGE_QUERY`` with
``Message-Account: sip:user@host``, ``VM-Sofia-Profile`` and ``VM-sub-call-id`` (a
subscription) or ``VM-Call-ID`` (a registration): whoever keeps the voicemail answers it
with a ``MESSAGE_WAITING`` (mod_voicemail does; here, Whistle's voicemail over AMQP).
"""

from __future__ import annotations

import re

from schemas.base import message_head
from schemas.presence import mwi_account
from switch_bridge import APP_NAME
from switch_bridge.freeswitch.esl.protocol import UNDEF, Event

EVENT_NAME = "MESSAGE_WAITING"
QUERY_EVENT = "MESSAGE_QUERY"

#: what may stand in a SIP user or host of an MWI account (no blanks, no line breaks, no
#: quotes: it goes into an ESL header and into a SIP message body)
_ACCOUNT_PART = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~:\[\]]+").fullmatch
_TOKEN = re.compile(r"[^\s\x00]{1,256}").fullmatch


class MwiError(ValueError):
    """An update or query that cannot be expressed (a malformed account...)."""


def _count(msg: dict, field: str) -> int:
    value = msg.get(field)
    try:
        return max(0, int(value)) if value not in (None, "") else 0
    except (TypeError, ValueError):
        raise MwiError(f"{field} is not a count: {value!r}") from None


def message_waiting(update: dict) -> list[tuple[str, str]]:
    """The headers of the ``sendevent MESSAGE_WAITING`` for one (validated) ``mwi_update``."""
    realm, user = mwi_account(update)
    if not (_ACCOUNT_PART(user or "") and _ACCOUNT_PART(realm or "")):
        raise MwiError(f"not an account user@realm: {update.get('To')!r}")
    new, saved = _count(update, "Messages-New"), _count(update, "Messages-Saved")
    urgent, urgent_saved = (_count(update, "Messages-Urgent"),
                            _count(update, "Messages-Urgent-Saved"))
    headers = [("MWI-Messages-Waiting", "yes" if new or urgent else "no"),
               ("MWI-Message-Account", f"sip:{user}@{realm}"),
               ("MWI-Voice-Message", f"{new}/{saved} ({urgent}/{urgent_saved})")]
    for field, header in (("Profile-Name", "Sofia-Profile"),
                          ("Subscription-Call-ID", "Sub-Call-ID"),
                          ("Registration-Call-ID", "Call-ID")):
        value = update.get(field)
        if value:
            if not _TOKEN(str(value)):
                raise MwiError(f"{field} is not one word: {value!r}")
            headers.append((header, str(value)))
    return headers


def _value(event: Event, *names: str) -> str | None:
    for name in names:
        value = event.get(name)
        if value and value != UNDEF:
            return value
    return None


def mwi_query(event: Event, *, node: str, server_id: str | None = None) -> dict | None:
    """The ``mwi_query`` for a ``MESSAGE_QUERY`` event, or None for any other event.

    Raises :class:`MwiError` when its ``Message-Account`` is not ``sip:user@host``."""
    if event.name != QUERY_EVENT:
        return None
    account = _value(event, "Message-Account") or ""
    if ":" in account.split("@", 1)[0]:
        account = account.split(":", 1)[1]
    user, _, host = account.partition("@")
    if not (user and host and _ACCOUNT_PART(user) and _ACCOUNT_PART(host)):
        raise MwiError(f"MESSAGE_QUERY without a usable Message-Account: {account!r}")
    msg = message_head("mwi_query", "presence", app_name=APP_NAME, node=node,
                       server_id=server_id)
    msg["Username"], msg["Realm"] = user, host
    for header, field in (("VM-sub-call-id", "Subscription-Call-ID"),
                          ("VM-Call-ID", "Registration-Call-ID"),
                          ("VM-Sofia-Profile", "Profile-Name"),
                          ("FreeSWITCH-Hostname", "Switch-Hostname")):
        value = _value(event, header)
        if value:
            msg[field] = value
    return msg
