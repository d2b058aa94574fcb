"""Modules that play to the caller or record the caller: ``play``, ``say``, ``record``.

Each answers the call first (unless ``answer`` is false: early media on a call answered
later) and goes on to its ``_`` child. ``record`` stores a prompt of the account under its
``name`` on the switch (played back by ``play`` with ``prompt:NAME``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.callflow import DEFAULT
from whistle_tasks.whapps.callflow.registry import module

if TYPE_CHECKING:
    from whistle_tasks.whapps.callflow.call import Call
    from whistle_tasks.whapps.callflow.context import Context

BEEP = [{"Frequencies": [440], "Duration-ON": 500, "Duration-OFF": 100}]


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
    answered(call, data, context)
    if data.get("greeting"):
        call.play(media_path(data["greeting"], context))
    if data.get("beep", True) not in (False, "false"):
        call.tones(BEEP)
    path = prompt_path(context, str(data["name"]))
    call.record(path, time_limit=int(data.get("time_limit") or 60),
                terminators=_keys(data.get("terminators")) or "#")
    context.vars["recorded"] = path
    return DEFAULT


def _keys(value: Any) -> str | None:  # noqa: ANN401
    if value in (None, "", "none", []):
        return None
    return "".join(value) if isinstance(value, list) else str(value)


def prompt_path(context: Context, name: str) -> str:
    """Where the switch keeps an account's recorded prompt ``name``: a relative path, which
    FreeSWITCH's ``record`` and ``playback`` both read under its sounds directory (one node:
    a prompt recorded on one switch plays on that switch)."""
    return f"whistle-prompt-{context.account_id}-{name}.wav"


def media_path(media: str, context: Context) -> str:
    """A media name as the switch plays it: ``prompt:NAME`` is a recorded prompt of the
    account; anything else (a sound file, a URL, ``tone_stream://``) is as written."""
    if media.startswith("prompt:"):
        return prompt_path(context, media.removeprefix("prompt:"))
    return media
