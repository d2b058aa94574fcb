"""The auto-attendant: answer, greet, take an extension, ring it, say so when it fails.

Assign it to a number with ``whistle number add 5000 --realm example.com --to app:attendant``.
The prompts are FreeSWITCH's standard sound files (``ivr/...``); an operator changes them with
the number document's options later. This is the example of "write your own whapp" in the
README: the whole whapp is the function below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from whistle_tasks.data import registrations
from whistle_tasks.whapps.callflow import call_app

if TYPE_CHECKING:
    from whistle_tasks.whapps.callflow.call import Call

GREETING = "ivr/ivr-welcome_to_freeswitch.wav"
ASK_EXTENSION = "ivr/ivr-please_enter_extension_followed_by_pound.wav"
INVALID = "ivr/ivr-that_was_an_invalid_entry.wav"
NOT_AVAILABLE = "ivr/ivr-not_available.wav"
GOODBYE = "voicemail/vm-goodbye.wav"


@call_app("attendant")
def attendant(call: Call) -> None:
    realm = str(call.channel_vars.get("Realm") or "")
    call.answer()
    call.play(GREETING)
    extension = call.collect_digits(min_digits=3, max_digits=6, media=ASK_EXTENSION,
                                    failed_media=INVALID, tries=3, timeout_ms=5000)
    if not extension:
        call.play(GOODBYE)
        return
    registered = registrations.lookup(realm, extension) if realm else None
    if registered is None:
        call.play(NOT_AVAILABLE)
        call.play(GOODBYE)
        return
    outcome = call.bridge([{"Invite-Format": "username", "To-User": extension,
                            "To-Realm": realm, "Route": registered["Contact"]}], timeout=30)
    if outcome not in ("SUCCESS", "NORMAL_CLEARING"):
        call.play(NOT_AVAILABLE)
        call.play(GOODBYE)
