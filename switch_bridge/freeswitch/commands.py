"""Whistle call commands → FreeSWITCH applications (the docs/api.md table), nothing else.

:func:`steps` turns one validated command into the ``(application, argument)`` pairs the
bridge executes with ``sendmsg``; the command is done when its last step completes. A
command that cannot be expressed raises :class:`CommandError` (the caller turns it into an
``error`` event and moves on).
"""

from __future__ import annotations

from typing import Any

from switch_bridge.freeswitch import dialstring
from switch_bridge.freeswitch.dialstring import protect_expansion

Step = tuple[str, str | None]

COLLECTED_DIGITS_VAR = "collected_digits"
SIMPLE = {"answer": "answer", "hangup": "hangup", "park": "park", "progress": "pre_answer"}


class CommandError(ValueError):
    """The command is valid as a message but cannot be run (unsupported, unrenderable)."""


def _terminators(value: Any) -> str | None:  # noqa: ANN401
    if value in (None, "", "none", []):
        return None
    keys = "".join(value) if isinstance(value, list) else str(value)
    allowed = "0123456789*#ABCD"
    keys = "".join(k for k in keys if k in allowed)
    return keys or None


def _media(name: Any) -> str:  # noqa: ANN401
    name = str(name)
    if not name or any(c in name for c in "\r\n\0"):
        raise CommandError(f"unusable media name {name!r}")
    return name


def _tone(tone: dict[str, Any]) -> str:
    freqs = tone.get("Frequencies") or []
    freqs = [str(int(float(f))) for f in (freqs if isinstance(freqs, list) else [freqs])]
    on, off = int(tone["Duration-ON"]), int(tone["Duration-OFF"])
    spec = f"%({on},{off},{','.join(freqs)})"
    if tone.get("Volume") is not None:
        spec = f"v={int(tone['Volume'])};{spec}"
    if tone.get("Repeat") is not None:
        spec = f"{spec};loops={int(tone['Repeat'])}"
    return spec


def steps(cmd: dict[str, Any], *, profile: str) -> list[Step]:
    """The FreeSWITCH applications that run ``cmd``, their data safe from expansion.

    FreeSWITCH expands ``${...}`` in the data of every application it executes; a value
    from a whapp (a media name, a caller's digits, a variable) must reach the application
    as written, so every argument goes through :func:`dialstring.protect_expansion` (twice
    for ``set``/``export``, which expand their value once more).
    """
    return [(app, None if arg is None else protect_expansion(arg))
            for app, arg in _plain_steps(cmd, profile=profile)]


def _plain_steps(cmd: dict[str, Any], *, profile: str) -> list[Step]:
    app = cmd["Application-Name"]
    if app in SIMPLE:
        return [(SIMPLE[app], None)]
    out: list[Step] = []
    if app == "play":
        keys = _terminators(cmd.get("Terminators"))
        if keys:
            out.append(("set", f"playback_terminators={keys}"))
        return [*out, ("playback", _media(cmd["Media-Name"]))]
    if app == "tones":
        tones = cmd["Tones"]
        return [("playback", "tone_stream://" + ";".join(_tone(t) for t in tones))]
    if app == "record":
        keys = _terminators(cmd.get("Terminators"))
        if keys:
            out.append(("set", f"playback_terminators={keys}"))
        limit = int(cmd.get("Time-Limit") or 20)
        threshold = int(cmd.get("Silence-Threshold") or 500)
        hits = int(cmd.get("Silence-Hits") or 5)
        return [*out, ("record", f"{_media(cmd['Media-Name'])} {limit} {threshold} {hits}")]
    if app == "play_and_collect_digits":
        keys = _terminators(cmd.get("Terminators")) or "none"
        failed = cmd.get("Failed-Media-Name") or "silence_stream://250"
        regex = cmd.get("Digits-Regex") or r"\d+"
        if any(c.isspace() for c in str(regex)):
            raise CommandError("Digits-Regex may not contain white space")
        return [("play_and_get_digits",
                 f"{int(cmd['Minimum-Digits'])} {int(cmd['Maximum-Digits'])} "
                 f"{int(cmd['Media-Tries'])} {int(cmd['Timeout'])} {keys} "
                 f"{_media(cmd['Media-Name'])} {_media(failed)} {COLLECTED_DIGITS_VAR} {regex}")]
    if app == "say":
        text = str(cmd["Say-Text"])
        if any(c in text for c in "\r\n\0"):
            raise CommandError("Say-Text may not contain line breaks")
        return [("say", f"{cmd['Language']} {cmd['Type']} {cmd['Method']} {text}")]
    if app == "sleep":
        return [("sleep", str(int(cmd["Time"])))]
    if app == "respond":
        message = str(cmd.get("Response-Message") or "").replace("\n", " ").replace("\r", " ")
        return [("respond", f"{int(cmd['Response-Code'])} {message}".strip())]
    if app == "set":
        for key, value in (cmd.get("Custom-Channel-Vars") or {}).items():
            out.append(("set", f"ecallmgr_{_var_name(key)}="
                               f"{protect_expansion(_var_value(value))}"))
        for key, value in (cmd.get("Custom-Call-Vars") or {}).items():
            out.append(("export", f"ecallmgr_{_var_name(key)}="
                                  f"{protect_expansion(_var_value(value))}"))
        if not out:
            raise CommandError("set without any variable")
        return out
    if app == "bridge":
        try:
            target = dialstring.bridge_target(
                cmd["Endpoints"], cmd.get("Dial-Endpoint-Method") or "single", profile=profile,
                global_vars=dialstring.global_vars(cmd))
        except ValueError as exc:
            raise CommandError(f"bridge: {exc}") from None
        return [("bridge", target)]
    raise CommandError(f"{app} is not a command this bridge runs")


def _var_name(name: Any) -> str:  # noqa: ANN401
    name = str(name)
    if not name or any(not (c.isalnum() or c in "-_") for c in name):
        raise CommandError(f"unusable variable name {name!r}")
    return name


def _var_value(value: Any) -> str:  # noqa: ANN401
    value = str(value)
    if any(c in value for c in "\r\n\0"):
        raise CommandError("variable values may not contain line breaks")
    return value
