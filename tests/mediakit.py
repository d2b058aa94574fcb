"""What the voicemail and media tests share: the media service under gunicorn (a real WSGI
server, as ``whistle up`` runs it), WAV files made here, an SMTP server in the test process
(aiosmtpd) that keeps what it receives, and a stand-in for FreeSWITCH's ``http_put``."""

from __future__ import annotations

import email
import email.policy
import math
import struct
import threading
import time
import wave
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path
from typing import Any

import requests
from aiosmtpd.controller import Controller

from tests import support
from tests.bridgekit import free_port


def wav_bytes(seconds: float, rate: int = 8000, hz: int = 440) -> bytes:
    """A mono 16-bit PCM WAV of a tone (what FreeSWITCH records from a PCMU call)."""
    frames = b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * hz * n / rate)))
                      for n in range(int(rate * seconds)))
    out = BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return out.getvalue()


def write_wav(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(seconds))
    return path


class MediaService:
    """``whistle_tasks.web.wsgi:media`` under gunicorn on a free port."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [str(support.VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}",
                "--workers", "1", "--worker-class", "gthread", "--threads", "4",
                "whistle_tasks.web.wsgi:media"]
        self.proc = support.Process(f"media-{self.port}", argv,
                                    env={"WHISTLE_MEDIA_URL": self.url, **env})
        support.wait_until(self._up, timeout=30, what="the media service")

    def _up(self) -> bool:
        if self.proc.proc.poll() is not None:
            raise AssertionError(f"media service exited:\n{self.proc.output()[-3000:]}")
        try:
            return requests.get(f"{self.url}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        self.proc.stop()


def http_put(command: str) -> str:
    """What FreeSWITCH's ``bgapi http_put <url> <file>`` does (mod_http_cache): PUT the file
    with the Content-Type of its extension, answer ``+OK <status>`` / ``-ERR <status>``."""
    _, url, path = command.split(" ", 2)
    try:
        data = Path(path).read_bytes()
    except OSError:
        return "-ERR 0\n"
    try:
        status = requests.put(url, data=data, headers={"Content-Type": "audio/x-wav"},
                              timeout=10).status_code
    except requests.RequestException:
        return "-ERR 0\n"
    return f"+OK {status}\n" if status in (200, 201, 202, 204) else f"-ERR {status}\n"


class Mailbox:
    """An SMTP server in the test process that keeps every mail it is given."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> Mailbox:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: ANN401, N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(parsed)
        return "250 OK"

    def wait(self, count: int = 1, timeout: float = 30) -> list[EmailMessage]:
        support.wait_until(lambda: len(self.messages) >= count, timeout=timeout,
                           what=f"{count} mail(s)")
        time.sleep(0.2)
        return list(self.messages)
