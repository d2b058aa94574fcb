"""RTP captures for SIPp's ``play_pcap_audio``, written here instead of shipped: audio (a WAV
we generate, G.711 µ-law, 20 ms packets) and RFC 2833 telephone events (any keys, with the
RTP timestamps and sequence numbers the caller chooses, so two captures played one after
the other on one call never look like one long press).

SIPp replays the UDP payloads of a capture at the capture's own pace, to the media address
of the SDP it was answered with; the addresses and ports in the capture do not matter.
"""

from __future__ import annotations

import math
import struct
import wave
from io import BytesIO
from pathlib import Path

RATE = 8000
FRAME = 160                 # samples in 20 ms at 8 kHz
PCMU, TELEPHONE_EVENT = 0, 101
SSRC = 0x5749_5354          # "WIST"
EVENTS = {**{str(n): n for n in range(10)}, "*": 10, "#": 11}


def tone_wav(seconds: float, hz: int = 700, amplitude: int = 8000) -> bytes:
    """A mono 16-bit 8 kHz WAV of a tone."""
    frames = b"".join(struct.pack("<h", int(amplitude * math.sin(2 * math.pi * hz * n / RATE)))
                      for n in range(int(RATE * seconds)))
    out = BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(frames)
    return out.getvalue()


def ulaw(sample: int) -> int:
    """One 16-bit linear sample as G.711 µ-law (ITU-T G.711, with the 0x84 bias)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = (magnitude >> 7).bit_length() - 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _pcm(wav_data: bytes) -> list[int]:
    with wave.open(BytesIO(wav_data)) as wav:
        if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, RATE):
            raise ValueError("expected a mono 16-bit 8 kHz WAV")
        raw = wav.readframes(wav.getnframes())
    return list(struct.unpack(f"<{len(raw) // 2}h", raw))


class _Capture:
    """A pcap file (Ethernet / IPv4 / UDP) of RTP packets, each at its own time."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes]] = []

    def add(self, at: float, rtp: bytes) -> None:
        self.packets.append((at, rtp))

    def write(self, path: Path, src_port: int = 6000, dst_port: int = 6002) -> Path:
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
        for at, payload in self.packets:
            udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
            ip = _ipv4(udp)
            frame = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00" + ip
            seconds = int(at)
            out.append(struct.pack("<IIII", seconds, int(round((at - seconds) * 1e6)),
                                   len(frame), len(frame)) + frame)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(out))
        return path


def _ipv4(udp: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    words = struct.unpack("!10H", header)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:] + udp


def _rtp(payload_type: int, seq: int, timestamp: int, payload: bytes, *,
         marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF,
                       timestamp & 0xFFFFFFFF, SSRC) + payload


def audio_pcap(wav_data: bytes, path: Path, *, seq: int = 1000, timestamp: int = 80000) -> Path:
    """An RTP stream (PCMU, 20 ms packets) of a mono 16-bit 8 kHz WAV."""
    samples = _pcm(wav_data)
    capture = _Capture()
    for n, start in enumerate(range(0, len(samples) - FRAME + 1, FRAME)):
        payload = bytes(ulaw(s) for s in samples[start:start + FRAME])
        capture.add(n * 0.02, _rtp(PCMU, seq + n, timestamp + n * FRAME, payload,
                                   marker=n == 0))
    return capture.write(path)


def dtmf_pcap(keys: str, path: Path, *, seq: int = 20000, timestamp: int = 800000,
              press_ms: int = 200, gap_ms: int = 300) -> Path:
    """RFC 2833 events for ``keys`` (0-9 * #): each pressed ``press_ms`` (a packet every
    20 ms, the first marked, three end packets), then ``gap_ms`` of nothing. Each key has
    its own RTP timestamp; pass a different ``timestamp``/``seq`` to each capture played on
    one call."""
    capture = _Capture()
    at, n = 0.0, 0
    for key in keys:
        event = EVENTS[key]
        steps = max(1, press_ms // 20)
        for step in range(1, steps + 1):
            payload = struct.pack("!BBH", event, 10, step * FRAME)
            capture.add(at, _rtp(TELEPHONE_EVENT, seq + n, timestamp, payload,
                                 marker=step == 1))
            at, n = at + 0.02, n + 1
        for _ in range(3):          # the end of the event, sent three times (RFC 4733 2.5.1.4)
            payload = struct.pack("!BBH", event, 0x80 | 10, steps * FRAME)
            capture.add(at, _rtp(TELEPHONE_EVENT, seq + n, timestamp, payload))
            n += 1
        at += gap_ms / 1000
        timestamp += int((press_ms + gap_ms) * RATE / 1000)
    return capture.write(path)


def tone_in(wav_data: bytes, level: int = 1000) -> tuple[float, float]:
    """``(seconds of sound, its frequency in Hz)`` in a 16-bit mono WAV (any rate): the
    20 ms windows louder than ``level`` (RMS), and the zero crossings in them. How a test
    tells the tone it sent from the silence of a recording that heard nothing."""
    with wave.open(BytesIO(wav_data)) as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        raw = wav.readframes(wav.getnframes())
    if width != 2 or channels != 1:
        raise ValueError(f"expected mono 16-bit samples (width {width}, {channels} channels)")
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    size = rate // 50
    loud, crossings = 0, 0
    for start in range(0, len(samples) - size + 1, size):
        window = samples[start:start + size]
        if math.sqrt(sum(s * s for s in window) / size) < level:
            continue
        loud += 1
        crossings += sum(1 for a, b in zip(window, window[1:], strict=False) if (a < 0) != (b < 0))
    seconds = loud * size / rate
    return seconds, (crossings / 2 / seconds if seconds else 0.0)
