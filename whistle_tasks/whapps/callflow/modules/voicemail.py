"""``voicemail`` (leave a message) and ``voicemail_check`` (the owner's menu): the voicemail
callflow modules. Their data is declared in :mod:`schemas.voicemail`.

Everything audio lives in CouchDB (:mod:`whistle_tasks.data.media`): the box's greeting and
the prompts are played from the media service's URLs on any switch; a message is recorded
on the switch that carries the call, then ``store``\\ d there (an HTTP PUT to the media
service), also when the caller hangs up while speaking: what was said until the hangup is
kept if it is long enough (the box's ``min_message_length``). A kept message lights the
owner's phones (``mwi_update``) and is mailed (``voicemail_new`` to the notify whapp).

A caller who hangs up anywhere ends the module with the call's ``Hangup`` (the engine's
way); nothing is left behind: no greenlet, no message document of a recording that did not
reach CouchDB (the file a failed upload leaves on the switch is in its record directory).

Prompts, by name (:data:`PROMPTS`): each can be recorded for an account or for every
account (``whistle prompt upload``); without one the switch's own sound file plays.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import schemas
import schemas.voicemail  # noqa: F401 - declares the modules' data
from schemas import contracts
from whistle_tasks.core.couch import CouchError
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import media
from whistle_tasks.data import voicemail as vm
from whistle_tasks.whapps.callflow.errors import CommandFailed, Timeout
from whistle_tasks.whapps.callflow.modules.media import answered
from whistle_tasks.whapps.callflow.registry import module

if TYPE_CHECKING:
    from whistle_tasks.whapps.callflow.call import Call
    from whistle_tasks.whapps.callflow.context import Context

log = get_logger(__name__)

#: prompt name -> the switch's sound file played when no recording of that name is stored
PROMPTS = {name: f"voicemail/{name}.wav" for name in (
    "vm-person", "vm-not_available", "vm-record_message", "vm-mailbox_full", "vm-saved",
    "vm-goodbye", "vm-enter_id", "vm-enter_pass", "vm-fail_auth", "vm-you_have", "vm-new",
    "vm-messages", "vm-main_menu", "vm-message_number", "vm-listen_to_recording",
    "vm-no_more_messages", "vm-record_greeting", "vm-password_has_been_changed",
    "vm-password_not_valid", "vm-deleted", "vm-that_was_an_invalid_ext")}
BEEP = [{"Frequencies": [440], "Duration-ON": 500, "Duration-OFF": 100}]
STORE_TRIES = 3
MENU_TRIES = 3
MENU_TIMEOUT_MS = 5000
GREETING_LIMIT_S = 60

#: keys of the owner's menus
MAIN = {"1": "new", "2": "saved", "3": "greeting", "4": "pin", "#": "exit"}
AFTER_MESSAGE = {"1": "replay", "2": "save", "3": "delete", "#": "next", "*": "menu"}


def prompt(context: Context, name: str) -> str:
    return media.prompt(context.account_id, name, PROMPTS.get(name, f"voicemail/{name}.wav"))


def _find_box(context: Context, data: Mapping[str, Any]) -> dict[str, Any] | None:
    db = str(context.account["account_db"])
    if data.get("id"):
        return vm.box(db, str(data["id"]))
    if data.get("mailbox"):
        return vm.box_by_mailbox(db, str(data["mailbox"]))
    return None


def _caller(call: Call, context: Context) -> tuple[str, str]:
    """``(name, number)`` of who calls: the internal caller id the call presents (the one
    rule, :meth:`Context.presented`), else as the switch saw them, else the calling
    device's user name."""
    presented = context.presented("internal")
    if presented.get("number"):
        return presented.get("name", ""), presented["number"]
    for event in reversed(call.events):
        number = event.get("Caller-ID-Number")
        if number:
            return presented.get("name") or str(event.get("Caller-ID-Name") or ""), str(number)
    user = context.caller.get("Username")
    return presented.get("name", ""), str(user or "")


def send(contract: Any, msg: dict[str, Any]) -> None:  # noqa: ANN401
    """Publish from the worker (imported here: the CLI loads these modules to validate
    callflows and must not load the Celery app with them)."""
    from whistle_tasks.whapps.handler import send as worker_send

    worker_send(contract, msg)


def _publish_mwi(context: Context, box: Mapping[str, Any]) -> None:
    """Tell the box owner's phones the counts now (never fails the call)."""
    try:
        for update in vm.mwi_updates(context.account, box.get("owner_id")):
            send(contracts.MWI_UPDATE, update)
    except Exception as exc:  # noqa: BLE001 - a lamp left wrong must not end a call
        log.warning("message waiting for box %s not sent: %s", box.get("mailbox"), exc)


# -- voicemail: leave a message ----------------------------------------------------------

@module("voicemail")
def voicemail(call: Call, data: dict[str, Any], context: Context) -> str | None:
    box = _find_box(context, data)
    if box is None:
        log.warning("%s: no voicemail box %s", context.path, data.get("id") or data.get("mailbox"))
        return "no_box"
    db = str(context.account["account_db"])
    answered(call, data, context)
    counts = vm.counts(db, box["_id"])
    if counts[vm.NEW] + counts[vm.SAVED] >= vm.limit(box, "max_messages"):
        call.play(prompt(context, "vm-mailbox_full"))
        call.play(prompt(context, "vm-goodbye"))
        return "full"
    _greet(call, data, context, box)
    name, number = _caller(call, context)
    call.tones(BEEP)
    # the message exists from here on: whatever happens to the call, _keep files or drops it
    message = vm.begin_message(context.account, box, caller_id_name=name,
                               caller_id_number=number, call_id=call.call_id)
    recording = f"recording://vm-{message['_id']}.wav"
    try:
        # the leg's CDR names the message it produced (set before recording: a message
        # dropped as too short still leaves its id in the CDR, see docs/design.md)
        call.set(**{"Voicemail-Message-ID": message["_id"]})
        call.record(recording, time_limit=vm.limit(box, "max_message_length"),
                    terminators="#")
    finally:
        # also when the caller hung up while speaking: what was said is stored
        kept = _keep(call, context, box, message, recording)
    if kept is None or call.hungup:
        return None
    call.play(prompt(context, "vm-saved"))
    call.play(prompt(context, "vm-goodbye"))
    call.hangup()
    return None


def _greet(call: Call, data: Mapping[str, Any], context: Context,
           box: Mapping[str, Any]) -> None:
    if data.get("skip_greeting") not in (True, "true"):
        greeting = media.doc_read_url(context.account_id, box, vm.GREETING_FILE)
        if greeting:
            call.play(greeting, terminators="#")
        else:
            call.play(prompt(context, "vm-person"), terminators="#")
            call.say(str(box.get("mailbox") or ""), kind="number", method="iterated")
            call.play(prompt(context, "vm-not_available"), terminators="#")
    if data.get("skip_instructions") not in (True, "true"):
        call.play(prompt(context, "vm-record_message"), terminators="#")


def _keep(call: Call, context: Context, box: Mapping[str, Any], message: Mapping[str, Any],
          recording: str) -> dict[str, Any] | None:
    """Store the recording in the message, file it (or drop it when too short), light the
    lamps and mail it; returns the filed message or None."""
    db = str(context.account["account_db"])
    url = media.upload_url(context.account_id, message["_id"], vm.MESSAGE_FILE)
    for attempt in range(1, STORE_TRIES + 1):
        try:
            call.store(recording, url)
            break
        except (CommandFailed, Timeout) as exc:
            log.warning("message %s: store %d of %d failed: %s", message["_id"], attempt,
                        STORE_TRIES, exc)
            if attempt < STORE_TRIES:
                time.sleep(attempt)
    try:
        filed = vm.finish_message(db, box, message["_id"])
    except CouchError as exc:
        log.error("message %s: could not be filed: %s", message["_id"], exc)
        return None
    if filed is None:
        return None
    log.info("message %s kept in mailbox %s (%d ms)", filed["_id"], box.get("mailbox"),
             filed.get("length") or 0)
    _publish_mwi(context, box)
    try:
        send(contracts.VOICEMAIL_NEW, _notification(context, box, filed))
    except Exception as exc:  # noqa: BLE001 - the message is kept; only its mail is lost
        log.error("message %s: mail not requested: %s", filed["_id"], exc)
    return filed


def _notification(context: Context, box: Mapping[str, Any],
                  filed: Mapping[str, Any]) -> dict[str, Any]:
    return schemas.build("voicemail_new", {
        "Account-ID": context.account_id, "Voicemail-Box": box["_id"],
        "Voicemail-Name": filed["_id"], "Caller-ID-Name": filed.get("caller_id_name") or None,
        "Caller-ID-Number": filed.get("caller_id_number") or None,
        "Voicemail-Timestamp": filed.get("timestamp"), "Voicemail-Length": filed.get("length"),
        "To-Realm": context.realm, "Call-ID": filed.get("call_id") or None},
        **{"App-Name": vm.APP_NAME})


# -- voicemail_check: the owner's menu -----------------------------------------------------

@module("voicemail_check")
def voicemail_check(call: Call, data: dict[str, Any], context: Context) -> str | None:
    answered(call, data, context)
    box = _login(call, data, context)
    if box is None:
        call.play(prompt(context, "vm-goodbye"))
        return "failed"
    _announce(call, context, box)
    misses = 0
    while misses < MENU_TRIES:
        choice = MAIN.get(_key(call, context, "vm-main_menu"))
        if choice is None:
            misses += 1
            continue
        misses = 0
        if choice == "exit":
            break
        if choice in ("new", "saved"):
            _listen(call, context, box, vm.NEW if choice == "new" else vm.SAVED)
        elif choice == "greeting":
            _record_greeting(call, context, box)
        elif choice == "pin":
            _change_pin(call, context, box)
    call.play(prompt(context, "vm-goodbye"))
    call.hangup()
    return None


def _key(call: Call, context: Context, menu: str) -> str:
    """One key of a menu ('' when none was pressed)."""
    return call.collect_digits(min_digits=1, max_digits=1, media=prompt(context, menu),
                               timeout_ms=MENU_TIMEOUT_MS, tries=1, terminators="",
                               regex="[0-9*#]")


def _login(call: Call, data: Mapping[str, Any], context: Context) -> dict[str, Any] | None:
    db = str(context.account["account_db"])
    box = _find_box(context, data)
    owner = context.caller.get("Owner-ID")
    if box is None and not (data.get("id") or data.get("mailbox")) and owner:
        owned = vm.boxes_of_owner(db, str(owner))
        box = owned[0] if owned else None
    attempts = int(data.get("max_login_attempts") or 3)
    for _ in range(attempts):
        if box is None:
            mailbox = call.collect_digits(min_digits=1, max_digits=16,
                                          media=prompt(context, "vm-enter_id"),
                                          timeout_ms=MENU_TIMEOUT_MS, tries=1,
                                          regex="[0-9*]+")
            found = vm.box_by_mailbox(db, mailbox) if mailbox else None
        else:
            found = box
        if found is not None and not found.get("pin_hash") and owner and \
                found.get("owner_id") == owner:
            return found            # the owner's own phone, and the box has no PIN
        pin = call.collect_digits(min_digits=4, max_digits=12,
                                  media=prompt(context, "vm-enter_pass"),
                                  timeout_ms=MENU_TIMEOUT_MS, tries=1, regex=r"\d+")
        if found is not None and pin and vm.pin_ok(found, pin):
            log.info("%s: mailbox %s opened", context.path, found.get("mailbox"))
            return found
        log.info("%s: login failed", context.path)
        call.play(prompt(context, "vm-fail_auth"))
    return None


def _announce(call: Call, context: Context, box: Mapping[str, Any]) -> None:
    counts = vm.counts(str(context.account["account_db"]), box["_id"])
    for folder in (vm.NEW, vm.SAVED):
        call.play(prompt(context, "vm-you_have"), terminators="#")
        call.say(str(counts[folder]), kind="number", method="pronounced")
        call.play(prompt(context, f"vm-{folder}"), terminators="#")
        call.play(prompt(context, "vm-messages"), terminators="#")


def _listen(call: Call, context: Context, box: Mapping[str, Any], folder: str) -> None:
    """Play the folder's messages one by one; after each: replay, save, delete, next, back
    to the menu. A new message that was heard and not deleted is saved (read)."""
    db = str(context.account["account_db"])
    for number, message in enumerate(vm.messages(db, box["_id"], folder), start=1):
        url = media.doc_read_url(context.account_id, message, vm.MESSAGE_FILE)
        while True:
            call.play(prompt(context, "vm-message_number"), terminators="#")
            call.say(str(number), kind="number", method="pronounced")
            if url:
                call.play(url, terminators="#")
            choice = AFTER_MESSAGE.get(_key(call, context, "vm-listen_to_recording"), "next")
            if choice != "replay":
                break
        if choice == "delete":
            vm.delete_message(db, message["_id"])
            call.play(prompt(context, "vm-deleted"))
            _publish_mwi(context, box)
        elif folder == vm.NEW:      # heard: a read message is a saved one
            vm.move(db, message["_id"], vm.SAVED)
            if choice == "save":
                call.play(prompt(context, "vm-saved"))
            _publish_mwi(context, box)
        if choice == "menu":
            return
    call.play(prompt(context, "vm-no_more_messages"))


def _record_greeting(call: Call, context: Context, box: Mapping[str, Any]) -> None:
    """Record the box's greeting and store it on the box (the caller keys # to end it)."""
    call.play(prompt(context, "vm-record_greeting"), terminators="#")
    call.tones(BEEP)
    recording = f"recording://greeting-{box['_id']}-{uuid.uuid4().hex[:8]}.wav"
    call.record(recording, time_limit=GREETING_LIMIT_S, terminators="#")
    call.store(recording, media.upload_url(context.account_id, box["_id"], vm.GREETING_FILE))
    call.play(prompt(context, "vm-saved"))


def _change_pin(call: Call, context: Context, box: Mapping[str, Any]) -> None:
    pin = call.collect_digits(min_digits=4, max_digits=12,
                              media=prompt(context, "vm-enter_pass"),
                              timeout_ms=MENU_TIMEOUT_MS, tries=1, regex=r"\d+")
    if not vm.valid_pin(pin):
        call.play(prompt(context, "vm-password_not_valid"))
        return
    vm.set_pin(str(context.account["account_db"]), box["_id"], pin)
    call.play(prompt(context, "vm-password_has_been_changed"))
