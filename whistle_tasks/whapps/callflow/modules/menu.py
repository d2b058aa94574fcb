"""``menu``: an IVR menu. Play the greeting, take an entry, go to the child of that entry.

An entry is what the caller keys (``1``, or several keys when a child is keyed so: ``42``)
ended by the timeout or ``#`` (unless ``#`` is itself an entry). No entry: the timeout prompt
and another try; an entry with no child: the invalid prompt and another try; after
``retries`` tries the outcome is ``timeout`` or ``invalid`` (whichever happened last), whose
child runs, else the ``_`` child, else the call ends (after ``exit_media``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.callflow import DEFAULT
from whistle_tasks.core.log import get_logger
from whistle_tasks.whapps.callflow.modules.media import answered, media_path
from whistle_tasks.whapps.callflow.registry import module

if TYPE_CHECKING:
    from whistle_tasks.whapps.callflow.call import Call
    from whistle_tasks.whapps.callflow.context import Context

log = get_logger(__name__)

INVALID = "ivr/ivr-that_was_an_invalid_entry.wav"
RETRIES = 3
TIMEOUT_S = 5
NOT_ENTRIES = frozenset({DEFAULT, "timeout", "invalid"})


@module("menu")
def menu(call: Call, data: dict[str, Any], context: Context) -> str:
    answered(call, data, context)
    entries = sorted(k for k in context.children if k not in NOT_ENTRIES)
    longest = max((len(k) for k in entries), default=1)
    max_digits = int(data.get("max_digits") or longest)
    terminators = "" if any("#" in k for k in entries) else "#"
    if data.get("terminators") not in (None, ""):
        terminators = "".join(data["terminators"]) if isinstance(data["terminators"], list) \
            else str(data["terminators"])
    greeting = media_path(str(data["greeting"]), context)
    last = "timeout"
    tries = int(data.get("retries") or RETRIES)
    for attempt in range(1, tries + 1):
        entry = call.collect_digits(
            min_digits=1, max_digits=max_digits, media=greeting,
            timeout_ms=int(data.get("timeout") or TIMEOUT_S) * 1000, tries=1,
            terminators=terminators if terminators != "none" else "", regex="[0-9*#]+")
        if entry in entries:
            log.info("%s: entry %s", context.path, entry)
            return entry
        last = "invalid" if entry else "timeout"
        log.info("%s: try %d of %d: %s", context.path, attempt, tries,
                 f"invalid entry {entry!r}" if entry else "no entry")
        if attempt < tries or last == "invalid":
            prompt = data.get("invalid_media") or INVALID if entry else \
                data.get("timeout_media")
            if prompt:
                call.play(media_path(str(prompt), context))
    if data.get("exit_media"):
        call.play(media_path(str(data["exit_media"]), context))
    return last
