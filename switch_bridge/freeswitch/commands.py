"""Whistle call commands → FreeSWITCH applications (the docs/api.md table), nothing else.

:func:`steps` turns one validated command into the ``(application, argument)`` pairs the
bridge executes with ``sendmsg``; the command is done when its last step completes. A
command that cannot be expressed raises :class:`CommandError` (the caller turns it into an
``error`` event and moves on).
"""

from __future__ import annotations

import re
from typing import Any

from switch_bridge.freeswitch import dialstring
from switch_bridge.freeswitch.dialstring import api_arg, protect_expansion

Step = tuple[str, str | None]

#: The "application" of a step that is an API command of the node (``bgapi``), not an
#: application of the channel: it runs whether the call is up or not (``store``), and its
#: outcome is the ``BACKGROUND_JOB`` with the step's Job-UUID (see :func:`store_result`).
API = "api"
#: A recording to be stored (``recording://<name>``) lives in the node's record directory.
RECORDING = "recording://"
_BARE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}").fullmatch
_WORD = re.compile(r"[A-Za-z0-9_.-]{1,128}")   # ids that reach an argument as one word
_DIGITS = re.compile(r"[0-9]{1,16}")
_CAUSE = re.compile(r"[A-Z_]{1,40}")

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


def _playable(name: Any) -> str:  # noqa: ANN401
    """A media name as FreeSWITCH plays it: an ``http(s)://`` URL (Whistle's media service)
    through mod_http_cache (``http_cache://<url>``: fetched once, then played from the
    node's cache); anything else (a sound file, ``tone_stream://``...) as written."""
    name = _media(name)
    if name.startswith(("http://", "https://")):
        return f"http_cache://{name}"
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


def recording_path(name: Any, record_dir: str) -> str:  # noqa: ANN401
    """Where the recording ``recording://<name>`` lives on the node: ``<name>`` (a file name:
    letters, digits, ``.``, ``_``, ``-``; ``store`` also takes it without the scheme) in
    ``record_dir`` (``WHISTLE_RECORD_DIR``). ``store`` uploads only such files, never
    another file of the node."""
    name = _media(name).removeprefix(RECORDING)
    if not _BARE_NAME(name) or ".." in name:
        raise CommandError(f"unusable recording name {name!r}")
    return f"{record_dir.rstrip('/') or '/'}/{name}".replace("//", "/")


def steps(cmd: dict[str, Any], *, profile: str, record_dir: str = "/tmp") -> list[Step]:  # noqa: S108
    """The FreeSWITCH applications that run ``cmd``, their data safe from expansion.

    FreeSWITCH expands ``${...}`` in the data of every application it executes; a value
    from a whapp (a media name, a caller's digits, a variable) must reach the application
    as written, so every argument goes through :func:`dialstring.protect_expansion` (twice
    for ``set``/``export``, which expand their value once more). An :data:`API` step is an
    API command, which FreeSWITCH does not expand: its arguments are quoted for the API's
    own splitter instead (:func:`dialstring.api_arg`).
    """
    return [(app, arg if arg is None or app == API else protect_expansion(arg))
            for app, arg in _plain_steps(cmd, profile=profile, record_dir=record_dir)]


def store_step(cmd: dict[str, Any], record_dir: str) -> Step:
    """``store``: mod_http_cache's ``http_put <url> <file>`` PUTs the recorded file (its
    Content-Type from the file's extension, e.g. ``audio/x-wav``). An API command, so it
    runs after the hangup too, once the ``record`` before it has closed the file."""
    url = str(cmd["Media-Transfer-Destination"])
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise CommandError("store: Media-Transfer-Destination must be an http(s) URL "
                           "without blanks")
    method = cmd.get("Media-Transfer-Method") or "put"
    if method != "put":
        raise CommandError(f"store: transfer method {method!r} is not supported (put)")
    return API, f"http_put {api_arg(url)} {api_arg(recording_path(cmd['Media-Name'], record_dir))}"


def store_result(body: str) -> tuple[bool, str]:
    """``(uploaded, why)`` from ``http_put``'s output: ``+OK <status>`` when the server
    answered 2xx. ``+OK 0`` means nothing was sent (an empty file): not stored. A failure
    reaches a ``bgapi`` as ``-ERR http_put <url> <file> Command not found!`` (the event
    socket's words for any API that did not succeed; the status is lost): its text is never
    repeated, since the URL holds a signed token."""
    text = (body or "").strip()
    word, _, rest = text.partition(" ")
    status = rest.strip()
    if word == "+OK" and status.isdigit() and 200 <= int(status) < 300:
        return True, f"HTTP {status}"
    if word in ("+OK", "-ERR") and status.isdigit():
        code = int(status)
        return False, ("the file could not be read or the server did not answer" if code == 0
                       else f"the server answered HTTP {code}")
    if word == "-ERR":
        return False, ("FreeSWITCH's http_put failed (the file is missing, or the server "
                       "refused it or did not answer: its log says which)")
    return False, f"unexpected answer ({word[:20] or 'nothing'})"


def _word(value: Any, what: str, pattern: re.Pattern[str] = _WORD) -> str:  # noqa: ANN401
    text = str(value)
    if not pattern.fullmatch(text):
        raise CommandError(f"unusable {what} {text!r}")
    return text


def _conference(cmd: dict[str, Any]) -> str:
    """``conference <id>@<profile>[+<pin>][+flags{a|b}]`` (mod_conference's one argument:
    the id and profile may not hold ``@ + {`` or blanks, the PIN is digits)."""
    data = f"{_word(cmd['Conference-ID'], 'conference id')}@" \
           f"{_word(cmd.get('Profile') or 'default', 'conference profile')}"
    if cmd.get("PIN"):
        data += "+" + _word(cmd["PIN"], "conference PIN", _DIGITS)
    flags = [flag for flag, field in (("moderator", "Moderator"), ("mute", "Mute"),
                                      ("deaf", "Deaf")) if cmd.get(field) in (True, "true")]
    if flags:
        data += "+flags{" + "|".join(flags) + "}"
    return data


def _plain_steps(cmd: dict[str, Any], *, profile: str, record_dir: str) -> list[Step]:
    app = cmd["Application-Name"]
    if app == "hangup" and cmd.get("Hangup-Cause"):
        return [("hangup", _word(cmd["Hangup-Cause"], "hangup cause", _CAUSE))]
    if app in SIMPLE:
        return [(SIMPLE[app], None)]
    if app == "conference":
        return [("conference", _conference(cmd))]
    if app == "valet_park":
        return [("valet_park", f"{_word(cmd['Lot'], 'parking lot')} "
                               f"{_word(cmd['Slot'], 'parking slot', _DIGITS)}")]
    out: list[Step] = []
    if app == "play":
        keys = _terminators(cmd.get("Terminators"))
        if keys:
            out.append(("set", f"playback_terminators={keys}"))
        return [*out, ("playback", _playable(cmd["Media-Name"]))]
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
        name = _media(cmd["Media-Name"])
        path = recording_path(name, record_dir) if name.startswith(RECORDING) else name
        return [*out, ("record", f"{path} {limit} {threshold} {hits}")]
    if app == "store":
        return [store_step(cmd, record_dir)]
    if app == "play_and_collect_digits":
        keys = _terminators(cmd.get("Terminators")) or "none"
        failed = cmd.get("Failed-Media-Name") or "silence_stream://250"
        regex = cmd.get("Digits-Regex") or r"\d+"
        if any(c.isspace() for c in str(regex)):
            raise CommandError("Digits-Regex may not contain white space")
        return [("play_and_get_digits",
                 f"{int(cmd['Minimum-Digits'])} {int(cmd['Maximum-Digits'])} "
                 f"{int(cmd['Media-Tries'])} {int(cmd['Timeout'])} {keys} "
                 f"{_playable(cmd['Media-Name'])} {_playable(failed)} {COLLECTED_DIGITS_VAR} "
                 f"{regex}")]
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
        # on the caller's channel, not the legs': a failed bridge then returns to us
        # (FreeSWITCH hangs the caller up otherwise, switch_channel_handle_cause), and the
        # caller hears the ringback while the legs ring
        if cmd.get("Continue-On-Fail") in (True, "true"):
            out.append(("set", "continue_on_fail=true"))
        if cmd.get("Ringback"):
            ringback = protect_expansion(_var_value(_media(cmd["Ringback"])))
            out.append(("set", f"ringback={ringback}"))
        return [*out, ("bridge", target)]
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
