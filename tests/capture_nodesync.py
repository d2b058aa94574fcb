"""Capture what a real FreeSWITCH answers to the node-sync commands, into
``tests/fixtures/freeswitch/nodesync/`` (``api_<name>.frame`` + ``api_<name>.cmd``).

    .venv/bin/python -m tests.capture_nodesync [OUTPUT_DIR]

A private FreeSWITCH (``tests/fskit.py``, configured from ``deploy/freeswitch/``) with a
static directory (user 1000 ``cacheable``), SIPp phones registering (two contacts of 1000,
one of 1001), a call originated to a SIPp UAS and parked with the control-queue variable.
Needs FreeSWITCH and SIPp (``WHISTLE_TEST_FREESWITCH``). Not a test: run by hand when the
formats must be checked against another FreeSWITCH.
"""

from __future__ import annotations

import socket
import sys
import time
import uuid
from pathlib import Path

from switch_bridge.freeswitch.esl.protocol import Frame, FrameParser
from tests import fskit

REALM = "capture.example.com"
OUT = Path(__file__).resolve().parent / "fixtures" / "freeswitch" / "nodesync"


class CachingDirectory(fskit.FreeSwitch):
    """User 1000's directory entry is ``cacheable`` (to see xml_flush_cache clear it)."""

    def _static_directory(self) -> str:
        return super()._static_directory().replace('<user id="1000">',
                                                   '<user id="1000" cacheable="60000">')


class Esl:
    """A bare event-socket client that keeps each api/response frame as it came."""

    def __init__(self, port: int, password: str, out: Path) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.parser = FrameParser()
        self.frames: list[Frame] = []
        self.out = out
        self._next()
        self.sock.sendall(f"auth {password}\n\n".encode())
        self._reply()

    def _next(self) -> Frame:
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("FreeSWITCH closed the event socket")
            self.frames.extend(self.parser.feed(data))
        return self.frames.pop(0)

    def _reply(self) -> Frame:
        while True:
            frame = self._next()
            if frame.content_type in ("command/reply", "api/response"):
                return frame

    def api(self, command: str, name: str) -> str:
        self.sock.sendall(f"api {command}\n\n".encode())
        frame = self._reply()
        (self.out / f"api_{name}.frame").write_bytes(frame.to_bytes())
        (self.out / f"api_{name}.cmd").write_text(f"api {command}\n")
        print(f"== {command}\n{frame.body_text[:2000]}")
        return frame.body_text


def main(out: Path) -> None:
    reason = fskit.missing()
    if reason:
        sys.exit(reason)
    out.mkdir(parents=True, exist_ok=True)
    fs = CachingDirectory("http://127.0.0.1:9", name="capture", log_level="info",
                          static_users={REALM: {"1000": "pw1000", "1001": "pw1001"}})
    fs.start()
    try:
        esl = Esl(fs.esl_port, fs.esl_password, out)
        sipp = fskit.Sipp(fs)
        for user, count in (("1000", 2), ("1001", 1)):
            for _ in range(count):
                port = fskit.free_port((socket.SOCK_DGRAM,))
                assert sipp.run("register.xml", port=port, service=user, user=user,
                                password=f"pw{user}",
                                variables={"realm": REALM, "expires": 300}).ok
        time.sleep(1.5)
        esl.api("strmicroepoch", "strmicroepoch")
        esl.api("hostname", "hostname")
        esl.api("sofia xmlstatus", "sofia_xmlstatus")
        esl.api("sofia xmlstatus profile whistle reg", "sofia_xmlstatus_profile_whistle_reg")
        esl.api("show registrations as json", "show_registrations_as_json")
        esl.api("show channels as json", "show_channels_as_json_idle")
        esl.api("status", "status_idle")
        esl.api(f"xml_flush_cache id 1000 {REALM}", "xml_flush_cache_user_cached")
        esl.api(f"xml_flush_cache id 1000 {REALM}", "xml_flush_cache_user_again")
        uas_port = fskit.free_port((socket.SOCK_DGRAM,))
        uas = sipp.start("uas_answer.xml", port=uas_port, service="1001", timeout=60)
        fskit.wait_until(lambda: uas.listening(uas_port), 10, what="the UAS")
        call = str(uuid.uuid4())
        esl.api(f"originate {{origination_uuid={call},whistle_control_queue=callctl.{call}."
                f"0a1b2c3d,ecallmgr_Realm={REALM}}}sofia/whistle/sip:1001@127.0.0.1:{uas_port}"
                " &park()", "originate")
        time.sleep(1)
        esl.api("show channels as json", "show_channels_as_json_one_call")
        esl.api(f"uuid_getvar {call} whistle_control_queue", "uuid_getvar_control_queue")
        esl.api(f"uuid_getvar {call} no_such_variable", "uuid_getvar_unset")
        esl.api(f"uuid_getvar {uuid.uuid4()} whistle_control_queue", "uuid_getvar_no_channel")
        esl.api("status", "status_one_call")
        esl.api(f"uuid_kill {call}", "uuid_kill")
        uas.wait(20)
        esl.api(f"xml_flush_cache id 1000 {REALM}", "xml_flush_cache_user_none")
        esl.api("show channels as json", "show_channels_as_json_after")
    finally:
        fs.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
