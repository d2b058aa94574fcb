"""Modules that play to the caller or record the caller: ``play``, ``say``, ``record``.

Each answers the call first (unless ``answer`` is false: early media on a call answered
later) and goes on to its ``_`` child. ``record`` stores a prompt of the account under its
``name`` in CouchDB (played back by ``play`` with ``prompt:NAME`` on any switch).
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from schemas.callflow import DEFAULT
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import media
from whistle_tasks.whapps.callflow.errors import CommandFailed, Timeout
from whistle_tasks.whapps.callflow.registry import module

if TYPE_CHECKING:
    from whistle_tasks.whapps.callflow.call import Call
    from whistle_tasks.whapps.callflow.context import Context

log = get_logger(__name__)

BEEP = [{"Frequencies": [440], "Duration-ON": 500, "Duration-OFF": 100}]
#: what ``prompt:NAME`` plays when no prompt of that name is stored: 1 s of silence
MISSING_PROMPT = "silence_stream://1000"
STORE_TRIES = 3


def answered(call: Call, data: dict[str, Any], context: Context) -> None:
    """Answer the call once (``data["answer"]`` false: leave it unanswered)."""
    if data.get("answer", True) in (False, "false"):
        return
    if not call.answered:
        call.answer()


@module("play")
def play(call: Call, data: dict[str, Any], context: Context) -> str:
    answered(call, data, context)
    call.play(media_path(data["media"], context), terminators=_keys(data.get("terminators")))
    return DEFAULT


@module("say")
def say(call: Call, data: dict[str, Any], context: Context) -> str:
    answered(call, data, context)
    call.say(str(data["text"]), kind=data.get("type") or "number",
             method=data.get("method") or "pronounced", language=data.get("language") or "en")
    return DEFAULT


@module("record")
def record(call: Call, data: dict[str, Any], context: Context) -> str:
    """Record the account's prompt ``name`` and store it in CouchDB through the media
    service (any switch then plays it with ``prompt:NAME``); the leg's CDR carries the
    prompt document's id as its ``Recording-ID``. A caller who hangs up while speaking
    leaves what was said."""
    answered(call, data, context)
    if data.get("greeting"):
        call.play(media_path(data["greeting"], context))
    if data.get("beep", True) not in (False, "false"):
        call.tones(BEEP)
    name = str(data["name"])
    doc = media.ensure_prompt_doc(context.account_id, name, source="recorded on a call")
    recording = f"recording://prompt-{context.account_id}-{name}-{uuid.uuid4().hex[:8]}.wav"
    try:
        call.set(**{"Recording-ID": doc["_id"]})
        call.record(recording, time_limit=int(data.get("time_limit") or 60),
                    terminators=_keys(data.get("terminators")) or "#")
    finally:
        stored = _store(call, recording, context, name)
    if stored:
        context.vars["recorded"] = doc["_id"]
    return DEFAULT


def _store(call: Call, recording: str, context: Context, name: str) -> bool:
    """Upload the recording as the prompt's audio (tried :data:`STORE_TRIES` times)."""
    url = media.upload_url(context.account_id, media.prompt_id(name), f"{name}.wav")
    for attempt in range(1, STORE_TRIES + 1):
        try:
            call.store(recording, url)
        except (CommandFailed, Timeout) as exc:
            log.warning("prompt %s: store %d of %d failed: %s", name, attempt, STORE_TRIES,
                        exc)
            if attempt < STORE_TRIES:
                time.sleep(attempt)
            continue
        media.forget_prompt(context.account_id, name, shared=True)
        log.info("prompt %s of account %s recorded", name, context.account_id)
        return True
    return False


def _keys(value: Any) -> str | None:  # noqa: ANN401
    if value in (None, "", "none", []):
        return None
    return "".join(value) if isinstance(value, list) else str(value)


def media_path(media_name: str, context: Context) -> str:
    """A media name as the switch plays it: ``prompt:NAME`` is the account's (else the
    system's) stored prompt, played from the media service, or :data:`MISSING_PROMPT` when
    there is none (a call never fails for a missing prompt); anything else (a sound file, a
    URL, ``tone_stream://``) is as written."""
    if media_name.startswith("prompt:"):
        return media.prompt(context.account_id, media_name.removeprefix("prompt:"),
                            MISSING_PROMPT)
    return media_name
