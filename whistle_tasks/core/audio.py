"""What an uploaded file is: a PCM WAV file, and how long it lasts.

The type a client declares is only a claim: FreeSWITCH's ``http_put`` sends
``application/octet-stream`` when the switch has no ``mime.types`` entry for the extension,
and any client could call anything ``audio/wav``. So the content decides (a ``RIFF....WAVE``
header that reads as PCM), and the declaration must not contradict it. WAV only: it is what
FreeSWITCH records and what every node plays without extra modules (MP3 needs mod_shout,
which a Whistle node does not load).
"""

from __future__ import annotations

import io
import wave

WAV = "audio/wav"
#: what a client may declare for a WAV file (besides ``application/octet-stream``)
DECLARED = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/x-wave",
                      "audio/vnd.wave"})
ANY = "application/octet-stream"


class AudioError(ValueError):
    """Not audio we keep (the reason says why)."""


def check_declared(declared: str) -> None:
    """The declared Content-Type (parameters ignored) may name a WAV file (none declared:
    the content alone decides)."""
    base = declared.split(";", 1)[0].strip().lower()
    if base and base != ANY and base not in DECLARED:
        raise AudioError(f"Content-Type {base or '(none)'} is not a WAV file's")


def wav_length_ms(data: bytes) -> int:
    """The duration of a PCM WAV file in milliseconds; :class:`AudioError` when it is not
    one (no RIFF/WAVE header, another codec, a header that cannot be read)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("not a WAV file (no RIFF/WAVE header)")
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            frames, rate = wav.getnframes(), wav.getframerate()
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a PCM WAV file ({exc})") from None
    if rate <= 0:
        raise AudioError("not a PCM WAV file (no sample rate)")
    return int(frames * 1000 / rate)
