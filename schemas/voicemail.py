"""The voicemail callflow modules' data, declared like the built-in modules of
:mod:`schemas.callflow` (and added to its ``MODULES`` on import).

``voicemail``: leave a message in a box (``id``, the box document's id, or ``mailbox``, its
number); ``skip_greeting`` / ``skip_instructions`` leave out the box's greeting or the "record
after the tone" prompt. Outcomes: ``full`` (the box holds ``max_messages``: the caller was
told), ``no_box`` (no such box); after a message the callflow ends (the call is hung up).

``voicemail_check``: the owner listens to and manages a box: by ``id`` / ``mailbox``, else the
box of the calling device's owner, else the caller keys the mailbox number; then the PIN
(``max_login_attempts`` tries). Outcome ``failed`` when nobody got in.
"""

from __future__ import annotations

from schemas import callflow as cf
from schemas.kinds import BOOLEAN

MAILBOX = cf.Pattern(r"[0-9*#]{1,16}", "a mailbox number (digits, * and #, up to 16)")
BOX_ID = cf.Pattern(r"[A-Za-z0-9_-]{1,64}", "a box document id")


def _box_given(data: dict) -> dict[str, list[str]]:
    if data.get("id") and data.get("mailbox"):
        return {"mailbox": ["give the box's id or its mailbox number, not both"]}
    return {}


def _box_required(data: dict) -> dict[str, list[str]]:
    if not data.get("id") and not data.get("mailbox"):
        return {"id": ["give the box's id or its mailbox number"]}
    return _box_given(data)


VOICEMAIL = cf.module_spec(
    "voicemail", optional=("id", "mailbox", "skip_greeting", "skip_instructions"),
    types={"id": BOX_ID, "mailbox": MAILBOX, "skip_greeting": BOOLEAN,
           "skip_instructions": BOOLEAN},
    outcomes=("full", "no_box"), check=_box_required)

VOICEMAIL_CHECK = cf.module_spec(
    "voicemail_check", optional=("id", "mailbox", "max_login_attempts"),
    types={"id": BOX_ID, "mailbox": MAILBOX, "max_login_attempts": cf.IntRange(1, 10)},
    outcomes=("failed",), waits=True, check=_box_given)

for _spec in (VOICEMAIL, VOICEMAIL_CHECK):
    cf.declare(_spec)

__all__ = ["VOICEMAIL", "VOICEMAIL_CHECK"]
