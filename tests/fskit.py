"""A real FreeSWITCH for tests and benchmarks, configured from ``deploy/freeswitch/``.

:class:`FreeSwitch` runs a private FreeSWITCH: its own directories under a temporary
directory, its own ports (SIP, event socket, an RTP range), started with
``-nc -nonat -nonatmap``. Its configuration is a small ``freeswitch.xml`` of ours that
includes the operator's snippets from ``deploy/freeswitch/`` *unchanged* (what an operator
installs is what is tested), after ``vars-whistle.xml`` and a file of this instance's own
values for the same ``whistle_*`` variables. Around the snippets, only what an operator's
stock configuration has anyway: ``sofia.conf`` (which includes the ``whistle`` profile),
``logfile.conf`` (the log in this instance's log directory) and an empty directory (or,
for the benchmark's baseline, a static one).

:class:`Sipp` drives it: one scenario of ``tests/sipp/`` per run, its messages logged and
parsed (:attr:`SippResult.received`), the exit code kept.

:class:`WhistleNode` is a Whistle for one FreeSWITCH: a bridge process whose
``WHISTLE_FS_NODES`` is the instance's event socket and whose ``WHISTLE_HTTP_LISTEN`` is
the port the instance's mod_xml_curl asks.

Where no FreeSWITCH is installed, :func:`missing` says so in one line naming
``WHISTLE_TEST_FREESWITCH`` (the install prefix, default ``/opt/freeswitch``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "freeswitch"
SCENARIOS = Path(__file__).resolve().parent / "sipp"
OUTPUT = ROOT / "test-output"
PREFIX_VAR = "WHISTLE_TEST_FREESWITCH"
DEFAULT_PREFIX = "/opt/freeswitch"

#: The snippets, in the order freeswitch.xml includes them into section "configuration".
CONFIG_SNIPPETS = ("switch.conf.xml", "modules.conf.xml", "acl.conf.xml",
                   "event_socket.conf.xml", "xml_curl.conf.xml", "conference.conf.xml",
                   "http_cache.conf.xml")
#: The prompts the shipped auto-attendant plays (FreeSWITCH has no sound files installed).
PROMPTS = ("ivr/ivr-welcome_to_freeswitch.wav",
           "ivr/ivr-please_enter_extension_followed_by_pound.wav",
           "ivr/ivr-that_was_an_invalid_entry.wav", "ivr/ivr-not_available.wav",
           "voicemail/vm-goodbye.wav")


def prefix() -> Path:
    return Path(os.environ.get(PREFIX_VAR) or DEFAULT_PREFIX)


def binaries() -> tuple[Path, Path]:
    """``(freeswitch, fs_cli)`` of the install prefix."""
    return prefix() / "bin" / "freeswitch", prefix() / "bin" / "fs_cli"


def missing() -> str | None:
    """One line saying why the integration tests cannot run here, or None."""
    fs, cli = binaries()
    if not (os.access(fs, os.X_OK) and os.access(cli, os.X_OK)):
        return (f"no FreeSWITCH at {prefix()} (set {PREFIX_VAR}=<install prefix> "
                "with bin/freeswitch and bin/fs_cli)")
    if shutil.which("sipp") is None:
        return f"sipp not found on PATH (FreeSWITCH integration tests; {PREFIX_VAR}={prefix()})"
    return None


# --------------------------------------------------------------------------- ports

def _bindable(port: int, kinds: tuple[int, ...] = (socket.SOCK_STREAM, socket.SOCK_DGRAM)) -> bool:
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(kinds: tuple[int, ...] = (socket.SOCK_STREAM, socket.SOCK_DGRAM)) -> int:
    """A port free on 127.0.0.1 for every socket type in ``kinds`` (SIP: UDP and TCP)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if _bindable(port, kinds):
            return port
    raise RuntimeError("no free port found")


def free_udp_range(size: int, low: int = 20000, high: int = 32000) -> int:
    """The first port of ``size`` consecutive UDP ports free now (FreeSWITCH's RTP range).

    Below Linux's ephemeral range (32768-60999), so no port the kernel hands out (SIPp's,
    the tests' own) can land in it later.
    """
    rng = secrets.SystemRandom()
    for _ in range(200):
        start = rng.randrange(low, high - size, 2)
        if all(_bindable(p, (socket.SOCK_DGRAM,)) for p in range(start, start + size)):
            return start
    raise RuntimeError("no free UDP port range found")


def sipp_media_port() -> int:
    """A base for SIPp's media: SIPp binds it and the next three (RTCP, video RTP/RTCP)."""
    for _ in range(200):
        base = free_port((socket.SOCK_DGRAM,)) & ~1
        if all(_bindable(p, (socket.SOCK_DGRAM,)) for p in range(base, base + 4)):
            return base
    raise RuntimeError("no free UDP ports for SIPp's media")


# --------------------------------------------------------------------------- prompts

def write_prompt(path: Path, seconds: float = 0.3, hz: int = 440) -> None:
    """A short 8 kHz mono 16-bit tone as a WAV file (what FreeSWITCH's sound packs hold)."""
    import math

    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 8000
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * n / rate)))
                      for n in range(int(rate * seconds)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


def snippet_variables(path: Path = DEPLOY / "vars-whistle.xml") -> dict[str, str]:
    """The ``whistle_*`` variables ``vars-whistle.xml`` declares, with their defaults."""
    found = re.findall(r'<X-PRE-PROCESS\s+cmd="set"\s+data="([a-z_0-9]+)=([^"]*)"\s*/>',
                       path.read_text())
    return dict(found)


def _xml_attr(value: str) -> str:
    if any(c in value for c in '"&<>'):
        raise ValueError(f"not usable in a preprocessor variable: {value!r}")
    return value


# --------------------------------------------------------------------------- FreeSWITCH

class FreeSwitch:
    """A private FreeSWITCH on ports of its own (see the module doc).

    ``bridge_url``: where its mod_xml_curl asks (``http://127.0.0.1:<port>``).
    ``static_users``: ``{realm: {user: password}}`` for a static directory; with it,
    mod_xml_curl gets no bindings (the benchmark's baseline: FreeSWITCH answering from its
    own XML). ``overrides``: more ``whistle_*`` values.
    """

    def __init__(self, bridge_url: str, *, name: str = "fs",
                 static_users: dict[str, dict[str, str]] | None = None,
                 overrides: dict[str, str] | None = None, log_level: str = "debug",
                 workdir: Path | None = None, second_bridge_url: str | None = None) -> None:
        self.name = name
        # a second bridge: the snippet's commented second pair of bindings, uncommented
        self.second_bridge_url = second_bridge_url
        self.bridge_url = bridge_url
        self.static_users = static_users
        self.log_level = log_level
        self.dir = workdir or Path(tempfile.mkdtemp(prefix=f"whistle-{name}-"))
        self._own_dir = workdir is None
        self.sip_port = free_port()
        self.esl_port = free_port((socket.SOCK_STREAM,))
        self.rtp_start = free_udp_range(200)
        self.esl_password = secrets.token_hex(12)
        self.values = {
            "whistle_bridge_url": bridge_url,
            "whistle_esl_ip": "127.0.0.1",
            "whistle_esl_port": str(self.esl_port),
            "whistle_esl_password": self.esl_password,
            "whistle_sip_ip": "127.0.0.1",
            "whistle_sip_port": str(self.sip_port),
            "whistle_rtp_ip": "127.0.0.1",
            "whistle_rtp_start_port": str(self.rtp_start),
            "whistle_rtp_end_port": str(self.rtp_start + 199),
            # registrations expire at their Expires, checked every second (defaults 60, 30)
            "whistle_reg_late_margin": "0",
            "whistle_reg_check_seconds": "1",
            **({"whistle_bridge_url_2": second_bridge_url} if second_bridge_url else {}),
            **(overrides or {}),
        }
        self.pid: int | None = None
        self.sounds = self.dir / "sounds"
        self.log_path = self.dir / "log" / "freeswitch.log"

    # -- configuration --------------------------------------------------------------------
    @property
    def esl_node(self) -> str:
        """This instance as an entry of WHISTLE_FS_NODES."""
        return f"127.0.0.1:{self.esl_port}:{self.esl_password}"

    def write_config(self) -> None:
        conf = self.dir / "conf"
        for sub in ("conf", "log", "db", "run", "temp", "sounds", "recordings", "storage",
                    "cache"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for prompt in PROMPTS:
            write_prompt(self.sounds / prompt)
        unknown = set(self.values) - set(snippet_variables())
        if unknown:
            raise ValueError(f"not variables of vars-whistle.xml: {sorted(unknown)}")
        lines = [f'  <X-PRE-PROCESS cmd="set" data="{k}={_xml_attr(v)}"/>'
                 for k, v in self.values.items()]
        # FreeSWITCH's own variable: relative prompt names are found under sound_prefix
        lines.append(f'  <X-PRE-PROCESS cmd="set" data="sound_prefix={self.sounds}"/>')
        (conf / "test-vars.xml").write_text("<include>\n" + "\n".join(lines) + "\n</include>\n")
        (conf / "logfile.conf.xml").write_text(f"""\
<configuration name="logfile.conf" description="File Logging">
  <settings><param name="rotate-on-hup" value="true"/></settings>
  <profiles>
    <profile name="default">
      <settings>
        <param name="logfile" value="{self.log_path}"/>
        <param name="rollover" value="0"/>
        <param name="uuid" value="true"/>
      </settings>
      <mappings><map name="all" value="{self._levels()}"/></mappings>
    </profile>
  </profiles>
</configuration>
""")
        (conf / "sofia.conf.xml").write_text(f"""\
<configuration name="sofia.conf" description="sofia Endpoint">
  <global_settings>
    <param name="log-level" value="0"/>
  </global_settings>
  <profiles>
    <X-PRE-PROCESS cmd="include" data="{DEPLOY / 'sofia-profile-whistle.xml'}"/>
  </profiles>
</configuration>
""")
        snippets = list(CONFIG_SNIPPETS)
        if self.static_users is not None:
            # the baseline: no xml_curl bindings, the users from static XML
            snippets.remove("xml_curl.conf.xml")
            (conf / "xml_curl.conf.xml").write_text(
                '<configuration name="xml_curl.conf" description="cURL XML Gateway">\n'
                "  <bindings/>\n</configuration>\n")
        if self.second_bridge_url:
            # the shipped snippet with its second pair of bindings uncommented, as the
            # operator does for two bridges (deploy/README.md)
            text = (DEPLOY / "xml_curl.conf.xml").read_text()
            begin, end = "<!-- second bridge: begin", "second bridge: end -->"
            if begin not in text or end not in text:
                raise ValueError("xml_curl.conf.xml: no commented second bridge")
            (conf / "xml_curl-two-bridges.conf.xml").write_text(
                text.replace(begin, "").replace(end, ""))
            snippets.remove("xml_curl.conf.xml")
        includes = [f'    <X-PRE-PROCESS cmd="include" data="{DEPLOY / s}"/>' for s in snippets]
        if self.second_bridge_url:
            includes.append('    <X-PRE-PROCESS cmd="include" '
                            'data="xml_curl-two-bridges.conf.xml"/>')
        if self.static_users is not None:
            includes.append('    <X-PRE-PROCESS cmd="include" data="xml_curl.conf.xml"/>')
        includes += ['    <X-PRE-PROCESS cmd="include" data="logfile.conf.xml"/>',
                     '    <X-PRE-PROCESS cmd="include" data="sofia.conf.xml"/>']
        (conf / "freeswitch.xml").write_text(f"""\
<?xml version="1.0"?>
<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="include" data="{DEPLOY / 'vars-whistle.xml'}"/>
  <X-PRE-PROCESS cmd="include" data="test-vars.xml"/>
  <section name="configuration" description="Various Configuration">
{chr(10).join(includes)}
  </section>
  <section name="dialplan" description="Regex/XML Dialplan">
    <X-PRE-PROCESS cmd="include" data="{DEPLOY / 'dialplan-default.xml'}"/>
  </section>
  <section name="directory" description="User Directory">
{self._static_directory()}
  </section>
</document>
""")

    def _levels(self) -> str:
        order = ["debug", "info", "notice", "warning", "err", "crit", "alert"]
        return ",".join(order[order.index(self.log_level):])

    def _static_directory(self) -> str:
        if not self.static_users:
            return ""
        out = []
        for realm, users in self.static_users.items():
            out.append(f'    <domain name="{_xml_attr(realm)}">')
            out += [f'      <user id="{_xml_attr(user)}"><params><param name="password" '
                    f'value="{_xml_attr(password)}"/></params></user>'
                    for user, password in users.items()]
            out.append("    </domain>")
        return "\n".join(out)

    # -- life -----------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> FreeSwitch:
        self.write_config()
        # a killed FreeSWITCH leaves its pid file behind: never mistake it for the new one
        (self.dir / "run" / "freeswitch.pid").unlink(missing_ok=True)
        fs, _ = binaries()
        d = self.dir
        argv = [str(fs), "-nc", "-nonat", "-nonatmap",
                "-conf", str(d / "conf"), "-log", str(d / "log"), "-db", str(d / "db"),
                "-run", str(d / "run"), "-temp", str(d / "temp"), "-sounds", str(d / "sounds"),
                "-recordings", str(d / "recordings"), "-storage", str(d / "storage"),
                "-cache", str(d / "cache")]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{self.name}: freeswitch exited {out.returncode}: "
                               f"{out.stdout[-1500:]}{out.stderr[-1500:]}")
        self.pid = self._wait_pid(timeout)
        self._wait_ready(timeout)
        return self

    def _wait_pid(self, timeout: float) -> int:
        pid_file = self.dir / "run" / "freeswitch.pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                return int(pid_file.read_text().strip())
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no pid file after {timeout}s:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name}: FreeSWITCH exited while starting:\n"
                                   f"{self.log_tail()}")
            status = self.cli("status", check=False)
            if "is ready" in status and re.search(
                    r"^\s*whistle\s+profile\s.*RUNNING", self.cli("sofia status", check=False),
                    re.MULTILINE):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: not ready after {timeout}s ({status.strip()!r}):\n"
                           f"{self.log_tail()}")

    def cli(self, command: str, *, check: bool = True, timeout: float = 20.0) -> str:
        """``fs_cli -x command`` through this instance's event socket; the output."""
        _, cli = binaries()
        try:
            out = subprocess.run([str(cli), "-H", "127.0.0.1", "-P", str(self.esl_port),
                                  "-p", self.esl_password, "-x", command],
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            if check:
                raise
            return ""
        if check and out.returncode != 0:
            raise RuntimeError(f"fs_cli -x {command!r}: {out.stdout}{out.stderr}")
        return out.stdout

    def alive(self) -> bool:
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # a daemon is not our child: a zombie cannot linger, but check its state anyway
        with contextlib.suppress(OSError):
            return Path(f"/proc/{self.pid}/stat").read_text().split()[2] != "Z"
        return True

    def wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return not self.alive()

    def kill(self) -> None:
        """SIGKILL, as a crash would; returns once the process is gone."""
        if self.pid is not None and self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.wait_exit(10)

    def stop(self, timeout: float = 20.0) -> None:
        """``shutdown`` through fs_cli, then wait for the process; SIGTERM/SIGKILL if not."""
        if self.pid is None or not self.alive():
            return
        self.cli("shutdown", check=False, timeout=5)
        if self.wait_exit(timeout):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if not self.wait_exit(5):
            self.kill()

    def restart(self, timeout: float = 60.0) -> None:
        """Start again with the same directories and ports (after :meth:`kill`/:meth:`stop`)."""
        self.pid = None
        self.start(timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def keep_log(self, label: str | None = None) -> Path | None:
        """Copy the log to test-output/ (done on failure); returns where."""
        if not self.log_path.exists():
            return None
        OUTPUT.mkdir(exist_ok=True)
        target = OUTPUT / f"freeswitch-{label or self.name}-{os.getpid()}.log"
        shutil.copyfile(self.log_path, target)
        sipp = self.dir / "sipp"       # what each SIPp sent and received, beside it
        if sipp.is_dir():
            shutil.copytree(sipp, OUTPUT / f"sipp-{label or self.name}-{os.getpid()}",
                            dirs_exist_ok=True)
        return target

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- SIPp

_STATUS = re.compile(r"^SIP/2\.0 (\d{3})", re.MULTILINE)
_REQUEST = re.compile(r"^([A-Z]+) sip:\S+ SIP/2\.0", re.MULTILINE)


@dataclass
class SippResult:
    """One SIPp run: its exit code and what went over the wire, in order."""

    scenario: str
    returncode: int
    messages: str
    errors: str
    argv: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def exchanges(self) -> list[tuple[str, str]]:
        """``[("sent"|"received", first line)]`` from SIPp's message log."""
        out = []
        for block in re.split(r"^-+ [\d.: -]+\n", self.messages, flags=re.MULTILINE):
            head = [line for line in block.splitlines() if line.strip()]
            if len(head) < 2:
                continue
            direction = "received" if "received" in head[0] else "sent"
            out.append((direction, head[1].strip()))
        return out

    def received(self) -> list[str]:
        """Status codes and request methods SIPp received, in order (``"401"``, ``"BYE"``)."""
        found = []
        for direction, line in self.exchanges():
            if direction != "received":
                continue
            status = _STATUS.match(line)
            request = _REQUEST.match(line)
            found.append(status.group(1) if status else request.group(1) if request else line)
        return found

    def final_status(self, method: str = "INVITE") -> str | None:
        """The last final (>= 200) response SIPp received for ``method``."""
        last = None
        for block in self.messages.split("\n\n"):
            status = _STATUS.search(block)
            if status and int(status.group(1)) >= 200 and re.search(
                    rf"^CSeq:\s*\d+\s+{method}\s*$", block, re.MULTILINE | re.IGNORECASE):
                last = status.group(1)
        return last

    def describe(self) -> str:
        return (f"sipp {self.scenario} exited {self.returncode}; received {self.received()}\n"
                f"errors: {self.errors[-2000:]}\nmessages (tail):\n{self.messages[-3000:]}")


class Sipp:
    """SIPp against one FreeSWITCH: ``run`` a scenario to its end, or ``start`` one in the
    background (a UAS waiting for a call) and ``wait`` for it."""

    def __init__(self, fs: FreeSwitch, workdir: Path | None = None) -> None:
        self.fs = fs
        self.dir = workdir or fs.dir / "sipp"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def argv(self, scenario: str, *, port: int, media_port: int | None = None,
             service: str | None = None, user: str | None = None,
             password: str | None = None, variables: dict[str, Any] | None = None,
             calls: int = 1, timeout: float = 30, server: bool = False,
             extra: list[str] | None = None) -> tuple[list[str], Path, Path]:
        self._n += 1
        stem = self.dir / f"{self._n:03d}-{Path(scenario).stem}"
        messages, errors = Path(f"{stem}.messages.log"), Path(f"{stem}.errors.log")
        argv = ["sipp"]
        if not server:
            argv.append(f"127.0.0.1:{self.fs.sip_port}")
        argv += ["-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port),
                 "-mp", str(media_port or sipp_media_port()),
                 # its remote-control socket too: the default 8888 (then 8889...) is shared
                 # by every SIPp on the box, and a busy one left SIPp never binding its port
                 "-cp", str(free_port((socket.SOCK_DGRAM,))),
                 # a registered phone gets FreeSWITCH's message-waiting NOTIFY (and may get
                 # OPTIONS, INFO, UPDATE): answered 200 by SIPp itself, as a phone would,
                 # instead of ending the scenario as an unexpected message
                 "-aa",
                 "-m", str(calls), "-timeout", f"{int(timeout)}s", "-timeout_error",
                 "-nostdin", "-trace_msg", "-message_file", str(messages),
                 "-trace_err", "-error_file", str(errors)]
        if calls == 1:
            argv += ["-l", "1"]
        if service:
            argv += ["-s", service]
        if user:
            argv += ["-au", user, "-ap", password or ""]
        for key, value in (variables or {}).items():
            argv += ["-set", key, str(value)]
        return argv + list(extra or []), messages, errors

    def refusal(self, code: int, reason: str) -> str:
        """A copy of uas_reject.xml answering ``code reason`` (SIPp checks status codes when
        it loads a scenario, so they cannot be variables); returns its path."""
        path = self.dir / f"uas_reject_{code}.xml"
        text = (SCENARIOS / "uas_reject.xml").read_text()
        path.write_text(text.replace("SIP/2.0 CODE REASON", f"SIP/2.0 {int(code)} {reason}"))
        return str(path)

    def run(self, scenario: str, **kwargs: Any) -> SippResult:  # noqa: ANN401
        timeout = float(kwargs.get("timeout", 30))
        argv, messages, errors = self.argv(scenario, **kwargs)
        proc = subprocess.run(argv, cwd=self.dir, capture_output=True, text=True,
                              timeout=timeout + 30)
        return _result(scenario, proc.returncode, messages, errors, argv)

    def start(self, scenario: str, *, server: bool = True,
              **kwargs: Any) -> Background:  # noqa: ANN401
        """Run ``scenario`` in the background: a UAS (``server``) or a UAC to wait for."""
        argv, messages, errors = self.argv(scenario, server=server, **kwargs)
        proc = subprocess.Popen(argv, cwd=self.dir, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        return Background(scenario, proc, messages, errors, argv)


#: Where Debian's sip-tester puts SIPp's RFC 2833 DTMF captures (dtmf_2833_<key>.pcap).
DTMF_PCAPS = Path("/usr/share/sip-tester")


def copy_dtmf_pcaps(into: Path) -> bool:
    """Copy SIPp's DTMF captures next to the scenarios' working directory (they name them
    relatively); False when this SIPp install has none."""
    pcaps = sorted(DTMF_PCAPS.glob("dtmf_2833_*.pcap"))
    for pcap in pcaps:
        shutil.copyfile(pcap, into / pcap.name)
    return bool(pcaps)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _result(scenario: str, rc: int, messages: Path, errors: Path,
            argv: list[str]) -> SippResult:
    return SippResult(scenario, rc, _read(messages), _read(errors), argv)


@dataclass
class Background:
    """A SIPp running in the background (a UAS)."""

    scenario: str
    proc: subprocess.Popen
    messages: Path
    errors: Path
    argv: list[str]

    def listening(self, port: int) -> bool:
        return not _bindable(port, (socket.SOCK_DGRAM,))

    def wait(self, timeout: float = 60) -> SippResult:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            rc = -1
        return _result(self.scenario, rc, self.messages, self.errors, self.argv)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1,
               what: str = "condition") -> Any:  # noqa: ANN401
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- Whistle

def bridge_health(port: int) -> str:
    """The bridge's /health text ('' when it does not answer)."""
    import requests

    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).text
    except requests.RequestException:
        return ""


class Platform:
    """A private FreeSWITCH and the Whistle that answers it: a bridge process on the port
    the instance's mod_xml_curl asks, connected to its event socket, plus router and
    call-control workers (the registrar is the caller's: tests share a session worker).

    Processes are :class:`tests.support.Process` (logs in test-output/), so the test
    environment (vhost, Redis db, CouchDB prefix) is theirs.
    """

    def __init__(self, name: str = "fs", *, workers: bool = True,
                 bridge_env: dict[str, str] | None = None, log_level: str = "debug",
                 bridges: int = 1) -> None:
        self.name = name
        self.http_port = free_port((socket.SOCK_STREAM,))
        # redundant bridges (bridges=2): the second on a port of its own, listed in the
        # instance's xml_curl as the second binding; both hold a lease on the node
        self.http_ports = [self.http_port] + [free_port((socket.SOCK_STREAM,))
                                              for _ in range(bridges - 1)]
        self.fs = FreeSwitch(f"http://127.0.0.1:{self.http_port}", name=name,
                             log_level=log_level,
                             second_bridge_url=(f"http://127.0.0.1:{self.http_ports[1]}"
                                                if bridges > 1 else None))
        self.sipp = Sipp(self.fs)
        self.with_workers = workers
        self.bridge_env = bridge_env or {}
        self.bridge: Any = None
        self.bridges: list[Any] = []
        self.workers: list[Any] = []

    def start(self) -> Platform:
        from tests import support

        try:
            self.fs.start()
            self.start_bridge()
            if self.with_workers:
                self.workers = [
                    support.start_worker("router", name=f"{self.name}-router", pool="threads",
                                         concurrency=8),
                    support.start_worker("callflow", name=f"{self.name}-callflow",
                                         pool="gevent", concurrency=100)]
        except BaseException:
            self.stop(keep_log=True)
            raise
        return self

    def start_bridge(self) -> None:
        import sys

        from tests import support

        lease = {"WHISTLE_BRIDGE_LEASE_MS": "2000"} if len(self.http_ports) > 1 else {}
        self.bridges = [support.Process(
            f"{self.name}-bridge" + (f"-{i + 1}" if i else ""),
            [sys.executable, "-m", "switch_bridge"],
            env={"WHISTLE_FS_NODES": self.fs.esl_node,
                 "WHISTLE_HTTP_LISTEN": f"127.0.0.1:{port}", **lease, **self.bridge_env})
            for i, port in enumerate(self.http_ports)]
        self.bridge = self.bridges[0]
        self.wait_connected()
        for port in self.http_ports[1:]:
            wait_until(lambda p=port: f"node 127.0.0.1:{self.fs.esl_port} connected"
                       in bridge_health(p), 60, what=f"{self.name} bridge on {port} connected")

    def wait_connected(self, timeout: float = 60) -> None:
        """Until the bridge answers /health with AMQP up and this node connected."""
        node = f"node 127.0.0.1:{self.fs.esl_port} connected"
        wait_until(lambda: node in bridge_health(self.http_port), timeout,
                   what=f"{self.name} bridge connected to FreeSWITCH")

    def stop(self, keep_log: bool = False) -> None:
        for process in [*self.workers, *(self.bridges or [self.bridge])]:
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop()
        if keep_log:
            self.fs.keep_log()
        self.fs.cleanup()
