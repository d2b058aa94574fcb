"""A FreeSWITCH stand-in at the event-socket wire, for every bridge test.

A real TCP server that speaks ESL framing as FreeSWITCH does (``auth/request``, the
password check, ``command/reply`` / ``api/response``, ``text/event-plain`` and
``text/event-json``, ``text/disconnect-notice``). It runs on plain threads and sockets,
so it works from a pytest process that is not monkey-patched (the bridge under test may
run gevent in the same process) and, if the process *is* patched, on greenlets.

What it can do for a test:

* record every command it receives, parsed (``.commands``, ``wait_for_command``);
* answer ``api`` (configurable bodies, default ``+OK\\n`` as FreeSWITCH ends them),
  ``bgapi`` (immediate ``+OK Job-UUID`` echoing the client's ``Job-UUID``, then a
  ``BACKGROUND_JOB`` after a delay, body configurable), ``sendmsg`` (``+OK`` and, when
  asked, CHANNEL_EXECUTE + CHANNEL_EXECUTE_COMPLETE with ``Application-UUID`` = the sent
  ``event-uuid``, now or when the test releases them), ``sendevent`` (``+OK <uuid>``),
  ``exit``;
* send events: synthetic ones (``send_event``/``heartbeat``, encoded the way FreeSWITCH
  encodes them) or the event frames of a real capture (``replay``), optionally cut at
  random byte boundaries; only to connections subscribed to them, like FreeSWITCH;
* misbehave: ``drop()`` connections, ``silent = True`` (no byte written: a hung node),
  ``send_raw()`` broken frames, ``rude = True`` (ACL rejection), ``disconnect()``;
* hold what a node holds, and answer the commands that ask for it in FreeSWITCH's own
  formats (captured in ``fixtures/freeswitch/nodesync``): ``registrations``
  (:class:`Registration`: ``sofia xmlstatus`` / ``sofia xmlstatus profile <p> reg``),
  ``channels`` (:class:`Channel`, with variables: ``show channels as json``,
  ``uuid_getvar``, ``uuid_setvar``, ``status``), ``hostname``, ``strmicroepoch``,
  ``xml_flush_cache`` (recorded in ``flushed``). A ``bgapi originate`` that succeeds adds
  its channel. Answers configured in ``api_responses`` win over these.

Waiting helpers poll with ``sleep`` (constructor argument): pass ``gevent.sleep`` when
the caller runs gevent without monkey-patching, so the hub keeps running while it waits.
"""

from __future__ import annotations

import itertools
import json
import queue
import random
import socket
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote

from switch_bridge.freeswitch.esl.protocol import Frame, FrameParser, parse_event

HeaderValue = str | int | float | Sequence[str]
Headers = Mapping[str, HeaderValue] | Iterable[tuple[str, HeaderValue]]

_FS_SAFE = "/,()~*"  # left unencoded by switch_url_encode (besides A-Z a-z 0-9 . - _)
_EXIT_NOTICE = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


# ------------------------------------------------------------------ encoding helpers


def fs_url_encode(value: str) -> str:
    """Encode a header value like FreeSWITCH's ``switch_url_encode`` (space → ``%20``)."""
    return quote(value, safe=_FS_SAFE)


def _pairs(headers: Headers) -> list[tuple[str, HeaderValue]]:
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def _plain_value(value: HeaderValue) -> str:
    if isinstance(value, list | tuple):
        return "ARRAY::" + "|:".join(str(v) for v in value)
    return str(value)


def encode_event_plain(headers: Headers, body: str | bytes | None = None) -> bytes:
    """A complete ``text/event-plain`` frame (repeated headers allowed as pairs)."""
    lines = [f"{name}: {fs_url_encode(_plain_value(value))}\n"
             for name, value in _pairs(headers)]
    raw_body = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    if raw_body:
        lines.append(f"Content-Length: {len(raw_body)}\n")
        inner = "".join(lines).encode("utf-8") + b"\n" + raw_body
    else:
        inner = "".join(lines).encode("utf-8") + b"\n"
    return (f"Content-Length: {len(inner)}\nContent-Type: text/event-plain\n\n"
            .encode("ascii") + inner)


def encode_event_json(headers: Headers, body: str | bytes | None = None) -> bytes:
    """A complete ``text/event-json`` frame; repeated keys are written repeatedly."""
    members = []
    for name, value in _pairs(headers):
        plain = list(value) if isinstance(value, list | tuple) else str(value)
        members.append(f"{json.dumps(name)}:"
                       f"{json.dumps(plain, ensure_ascii=False, separators=(',', ':'))}")
    text_body = body.decode("utf-8") if isinstance(body, bytes) else body
    if text_body:
        members.append(f'"Content-Length":"{len(text_body.encode("utf-8"))}"')
        members.append(f'"_body":{json.dumps(text_body, ensure_ascii=False)}')
    inner = ("{" + ",".join(members) + "}").encode("utf-8")
    return (f"Content-Length: {len(inner)}\nContent-Type: text/event-json\n\n"
            .encode("ascii") + inner)


def encode_event(headers: Headers, body: str | bytes | None = None, fmt: str = "plain") -> bytes:
    if fmt == "json":
        return encode_event_json(headers, body)
    return encode_event_plain(headers, body)


def reply_frame(text: str, extra: Iterable[tuple[str, str]] = ()) -> bytes:
    head = f"Content-Type: command/reply\nReply-Text: {text}\n"
    head += "".join(f"{n}: {v}\n" for n, v in extra)
    return (head + "\n").encode("utf-8")


def api_response_frame(body: str) -> bytes:
    raw = body.encode("utf-8")
    return f"Content-Type: api/response\nContent-Length: {len(raw)}\n\n".encode() + raw


def load_capture_events(path: str | Path) -> list[Frame]:
    """The event frames of a capture file (its auth and command replies left out)."""
    frames = FrameParser().feed(Path(path).read_bytes())
    return [f for f in frames if f.content_type.startswith("text/event-")]


# ------------------------------------------------------------------ recorded commands


@dataclass
class Command:
    """One command received from a client, parsed."""

    conn: int
    line: str
    header_list: list[tuple[str, str]]
    body: bytes = b""
    at: float = field(default_factory=time.monotonic)

    @property
    def verb(self) -> str:
        return self.line.split(" ", 1)[0]

    @property
    def args(self) -> str:
        parts = self.line.split(" ", 1)
        return parts[1] if len(parts) > 1 else ""

    @property
    def headers(self) -> dict[str, str]:
        """Header names lower-cased (FreeSWITCH reads them case-insensitively)."""
        out: dict[str, str] = {}
        for name, value in self.header_list:
            out.setdefault(name.lower(), value)
        return out

    @property
    def app_arg(self) -> str | None:
        """The execute argument as FreeSWITCH would read it (header, else text body)."""
        headers = self.headers
        arg = headers.get("execute-app-arg")
        if not arg and headers.get("content-type", "").lower() == "text/plain":
            return self.body.decode("utf-8", "replace")
        return arg


@dataclass
class Registration:
    """One registration the stand-in holds (what sofia keeps per contact)."""

    user: str
    realm: str
    contact: str                     # as the phone sent it, e.g. '"" <sip:1000@h:5060>'
    expires_at: float                # Unix seconds
    call_id: str = field(default_factory=lambda: f"{uuidlib.uuid4().hex[:8]}@127.0.0.1")
    agent: str = "standin-phone"
    network_ip: str = "127.0.0.1"
    network_port: int = 5060
    profile: str = "internal"


@dataclass
class Channel:
    """One channel in progress on the stand-in."""

    uuid: str
    name: str = "sofia/internal/1000@127.0.0.1:5060"
    variables: dict[str, str] = field(default_factory=dict)
    application: str = "park"
    created: float = field(default_factory=time.time)


def _xml_text(value: str) -> str:
    """``switch_amp_encode``: & < > " ' as entities."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


@dataclass
class _HeldExecute:
    conn: _Conn
    uuid: str
    app: str
    arg: str | None
    event_uuid: str
    response: str | None = None
    variables: dict[str, str] | None = None


class _Conn:
    """One client connection: a reader thread (commands) and a writer thread (a queue).

    Every write goes through the queue, so callers never block on a full socket (a gevent
    test thread writing while its own hub is the reader would otherwise deadlock) and the
    order of replies, events and closes is the order they were asked for.
    """

    def __init__(self, server: EslStandIn, sock: socket.socket, cid: int) -> None:
        self.server = server
        self.sock = sock
        self.id = cid
        self.authed = False
        self.fmt: str | None = None
        self.names: set[str] = set()
        self.closing = False
        self.closed = False
        self.pending = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[bytes, float] | None] = queue.SimpleQueue()

    def wants(self, name: str, subclass: str | None) -> bool:
        if self.fmt is None or not self.authed:
            return False
        if "ALL" in self.names:
            return True
        if name not in self.names:
            return False
        # as mod_event_socket: a CUSTOM event goes out only if its subclass was named
        return name != "CUSTOM" or subclass is None or subclass in self.names

    def send(self, data: bytes, pause: float = 0.0) -> bool:
        """Queue ``data`` (dropped while the server is silent or the connection closing)."""
        if self.server.silent or self.closing:
            return False
        with self._lock:
            self.pending += 1
        self._queue.put((data, pause))
        return True

    def close(self) -> None:
        """Close after what is already queued has been written."""
        if not self.closing:
            self.closing = True
            self._queue.put(None)

    def write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            data, pause = item
            try:
                if not self.closed:
                    self.sock.sendall(data)
            except OSError:
                self.closing = True
                self._close_now()
            finally:
                with self._lock:
                    self.pending -= 1
            if pause:
                time.sleep(pause)
        self._close_now()

    def _close_now(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# ------------------------------------------------------------------ the server


class EslStandIn:
    """A FreeSWITCH event socket on ``127.0.0.1:<port>`` (port 0 picks a free one)."""

    def __init__(
        self,
        password: str = "ClueCon",  # noqa: S107 - FreeSWITCH's well-known default
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = "standin",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.password = password
        self.host = host
        self._requested_port = port
        self.hostname = hostname
        self.core_uuid = str(uuidlib.uuid4())
        self.sleep = sleep
        # behaviour knobs (tests set them directly)
        self.silent = False
        self.rude = False
        self.api_responses: dict[str, str | Callable[[str], str]] = {}
        self.api_default = "+OK\n"
        self.api_delay = 0.0
        self.bgapi_results: dict[str, str | Callable[[str], str]] = {}
        self.bgapi_delay = 0.05
        self.bgapi_refusal: str | None = None  # e.g. "-ERR ..." instead of the Job-UUID
        self.sendmsg_reply = "+OK"
        self.auto_complete = False
        self.hold_completions = False
        self.complete_delay = 0.0
        self.application_response = "_none_"
        self.app_responses: dict[str, str] = {}
        # extra headers on an application's CHANNEL_EXECUTE_COMPLETE, e.g.
        # {"play_and_get_digits": {"variable_collected_digits": "1001"}}
        self.app_variables: dict[str, dict[str, str]] = {}
        # per-execute answers: hook(call uuid, app, arg) -> None (the defaults above) or a
        # dict with any of "response", "variables" (extra headers), "delay" (seconds before
        # the completion), "hold" (keep it until release()), "hangup" (a cause: the channel
        # hangs up instead of completing, as a caller hanging up in the middle)
        self.execute_hook: Callable[[str, str, str | None], dict | None] | None = None
        # what the node holds (see the module docstring)
        self.registrations: list[Registration] = []
        self.channels: dict[str, Channel] = {}
        self.profiles: list[str] = ["internal"]   # the modern captures' profile
        self.max_sessions = 2000
        self.flushed: list[str] = []     # xml_flush_cache arguments, in order
        # state
        self.commands: list[Command] = []
        self.accepted = 0
        self.authenticated = 0
        self.auth_failures = 0
        self._conns: dict[int, _Conn] = {}
        self._held: list[_HeldExecute] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1000)
        self._ids = itertools.count(1)
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    # -- lifecycle

    def start(self) -> EslStandIn:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self.host, self._requested_port))
        server.listen(64)
        server.settimeout(0.1)
        self._server = server
        self._stopped.clear()
        self._spawn(self._accept_loop, "esl-standin-accept")
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._server is not None:
            self._server.close()
        for conn in self.connections:
            conn.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        self._threads.clear()

    def __enter__(self) -> EslStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the stand-in first"
        return self._server.getsockname()[1]

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def connections(self) -> list[_Conn]:
        with self._lock:
            return [c for c in self._conns.values() if not c.closing]

    @property
    def subscribed(self) -> list[_Conn]:
        return [c for c in self.connections if c.fmt is not None]

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- the wire

    def _accept_loop(self) -> None:
        server = self._server
        assert server is not None
        while not self._stopped.is_set():
            try:
                sock, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self, sock, next(self._ids))
            with self._lock:
                self._conns[conn.id] = conn
                self.accepted += 1
            self._spawn(conn.write_loop, f"esl-standin-write-{conn.id}")
            self._spawn(self._serve, f"esl-standin-conn-{conn.id}", conn)

    def _serve(self, conn: _Conn) -> None:
        try:
            if self.rude:
                body = b"Access Denied, go away.\n"
                conn.send(b"Content-Type: text/rude-rejection\nContent-Length: "
                          + str(len(body)).encode() + b"\n\n" + body)
                return
            conn.send(b"Content-Type: auth/request\n\n")
            buf = b""
            while not conn.closing and not self._stopped.is_set():
                try:
                    data = conn.sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while True:
                    parsed = _take_command(buf)
                    if parsed is None:
                        break
                    command_bytes, buf = parsed
                    command = _parse_command(conn.id, command_bytes)
                    with self._lock:
                        self.commands.append(command)
                    self._handle(conn, command)
                    if conn.closing:
                        return
        finally:
            conn.close()

    def _handle(self, conn: _Conn, cmd: Command) -> None:
        verb = cmd.verb.lower()
        if not conn.authed:
            if verb == "auth" and cmd.args == self.password:
                conn.authed = True
                with self._lock:
                    self.authenticated += 1
                conn.send(reply_frame("+OK accepted"))
            else:
                with self._lock:
                    self.auth_failures += 1
                conn.send(reply_frame("-ERR invalid"))
                conn.close()
            return
        if verb == "events":
            fmt, _, names = cmd.args.partition(" ")
            if fmt not in ("plain", "json", "xml"):
                conn.send(reply_frame("-ERR invalid format"))
                return
            conn.fmt = fmt
            conn.names.update(names.split())
            conn.send(reply_frame(f"+OK event listener enabled {fmt}"))
        elif verb == "api":
            if self.api_delay:
                time.sleep(self.api_delay)
            conn.send(api_response_frame(self._lookup(self.api_responses, cmd.args,
                                                      self._model_api)))
        elif verb == "bgapi":
            job = cmd.headers.get("job-uuid") or str(uuidlib.uuid4())
            if self.bgapi_refusal is not None:
                conn.send(reply_frame(self.bgapi_refusal))
                return
            conn.send(reply_frame(f"+OK Job-UUID: {job}", [("Job-UUID", job)]))
            result = self._lookup(self.bgapi_results, cmd.args, self._originated)
            self._later(self.bgapi_delay, self._background_job, conn, job, cmd.args, result)
        elif verb == "sendmsg":
            self._sendmsg(conn, cmd)
        elif verb == "sendevent":
            conn.send(reply_frame(f"+OK {uuidlib.uuid4()}"))
        elif verb == "exit":
            conn.send(reply_frame("+OK bye"))
            self._disconnect(conn)
        elif verb == "nixevent":
            conn.names.difference_update(cmd.args.split())
            conn.send(reply_frame("+OK events nixed"))
        elif verb == "noevents":
            conn.names.clear()
            conn.send(reply_frame("+OK no longer listening for events"))
        elif verb == "filter":
            header, _, value = cmd.args.partition(" ")
            conn.send(reply_frame(f"+OK filter added. [{header}]=[{value}]"))
        elif verb == "linger":
            conn.send(reply_frame("+OK will linger"))
        elif verb == "myevents":
            conn.send(reply_frame("+OK Events Enabled"))
        else:
            conn.send(reply_frame("-ERR command not found"))

    # -- what the node holds, in FreeSWITCH's formats

    def _model_api(self, command: str) -> str:
        verb, _, args = command.partition(" ")
        words = args.split()
        if verb == "hostname":
            return self.hostname
        if verb == "strmicroepoch" and not args:
            return str(int(time.time() * 1_000_000))
        if verb == "sofia" and words == ["xmlstatus"]:
            return self._xml_profiles()
        if verb == "sofia" and len(words) == 4 and words[:2] == ["xmlstatus", "profile"] \
                and words[3] == "reg":
            if words[2] not in self.profiles:
                return "Invalid Profile!\n"
            return self._xml_registrations(words[2])
        if verb == "show" and args == "channels as json":
            return self._json_channels()
        if verb == "status":
            return self._status()
        if verb == "uuid_getvar" and len(words) == 2:
            channel = self.channels.get(words[0])
            if channel is None:
                return "-ERR No such channel!\n"
            return channel.variables.get(words[1], "_undef_")
        if verb == "uuid_setvar" and len(words) >= 2:
            channel = self.channels.get(words[0])
            if channel is None:
                return "-ERR No such channel!\n"
            channel.variables[words[1]] = " ".join(words[2:])
            return "+OK\n"
        if verb == "uuid_kill" and words:
            return "+OK\n" if self.channels.pop(words[0], None) else "-ERR No such channel!\n"
        if verb == "xml_flush_cache":
            with self._lock:
                self.flushed.append(args)
            return "+OK cleared 0 entries\n"
        return self.api_default

    def _xml_profiles(self) -> str:
        rows = "".join(f"<profile>\n<name>{p}</name>\n<type>profile</type>\n"
                       f"<data>sip:mod_sofia@127.0.0.1:5060</data>\n<state>RUNNING (0)</state>\n"
                       f"</profile>\n" for p in self.profiles)
        return f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<profiles>\n{rows}</profiles>\n'

    def _xml_registrations(self, profile: str) -> str:
        now = time.time()
        out = ['<?xml version="1.0" encoding="ISO-8859-1"?>\n<profile>\n  <registrations>\n']
        for reg in list(self.registrations):
            if reg.profile != profile or reg.expires_at <= now:
                continue
            left = int(reg.expires_at - now)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(reg.expires_at))
            out.append(
                "    <registration>\n"
                f"        <call-id>{reg.call_id}</call-id>\n"
                f"        <user>{reg.user}@{reg.realm}</user>\n"
                f"        <contact>{_xml_text(reg.contact)}</contact>\n"
                f"        <agent>{_xml_text(reg.agent)}</agent>\n"
                f"        <status>Registered(UDP)(unknown) exp({when}) expsecs({left})</status>\n"
                "        <ping-status>Reachable</ping-status>\n"
                "        <ping-time>0.00</ping-time>\n"
                f"        <host>{self.hostname}</host>\n"
                f"        <network-ip>{reg.network_ip}</network-ip>\n"
                f"        <network-port>{reg.network_port}</network-port>\n"
                f"        <sip-auth-user>{fs_url_encode(reg.user)}</sip-auth-user>\n"
                f"        <sip-auth-realm>{reg.realm}</sip-auth-realm>\n"
                f"        <mwi-account>{reg.user}@{reg.realm}</mwi-account>\n"
                "    </registration>\n")
        out.append("  </registrations>\n</profile>\n")
        return "".join(out)

    def _json_channels(self) -> str:
        channels = list(self.channels.values())
        if not channels:
            return '{"row_count": 0}\n'
        rows = [{"uuid": c.uuid, "direction": "outbound",
                 "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.created)),
                 "created_epoch": str(int(c.created)), "name": c.name, "state": "CS_EXECUTE",
                 "cid_name": "Outbound Call", "cid_num": "1000", "ip_addr": "", "dest": "1000",
                 "application": c.application, "application_data": "", "dialplan": "",
                 "context": "default", "hostname": self.hostname, "callstate": "ACTIVE",
                 "call_uuid": c.uuid} for c in channels]
        return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))

    def _status(self) -> str:
        n = len(self.channels)
        return ("UP 0 years, 0 days, 0 hours, 1 minute, 0 seconds, 0 milliseconds, "
                "0 microseconds\n"
                "FreeSWITCH (Version 1.11.3-dev+standin) is ready\n"
                f"{n} session(s) since startup\n"
                f"{n} session(s) - peak {n}, last 5min {n} \n"
                "0 session(s) per Sec out of max 200, peak 0, last 5min 0 \n"
                f"{self.max_sessions} session(s) max\n"
                "min idle cpu 0.00/98.00\n"
                "Current Stack Size/Max 240K/8192K\n")

    def _originated(self, command: str) -> str:
        """A ``bgapi originate`` that works: its channel (``origination_uuid``) is held."""
        import re

        found = re.search(r"origination_uuid=([0-9a-fA-F-]+)", command)
        call = found.group(1) if found else str(uuidlib.uuid4())
        if command.startswith("originate"):
            self.channels[call] = Channel(call)
        return f"+OK {call}\n"

    def register(self, user: str, realm: str, contact: str, expires: int = 300,
                 **options: object) -> Registration:
        """Hold a registration (no event: send ``sofia::register`` yourself if wanted)."""
        reg = Registration(user, realm, contact, time.time() + expires, **options)  # type: ignore[arg-type]
        self.registrations.append(reg)
        return reg

    @staticmethod
    def _lookup(table: Mapping[str, str | Callable[[str], str]], command: str,
                default: str | Callable[[str], str]) -> str:
        """The longest configured prefix of ``command`` wins."""
        answer = default
        best = -1
        for prefix, value in table.items():
            if command.startswith(prefix) and len(prefix) > best:
                answer, best = value, len(prefix)
        return answer(command) if callable(answer) else answer

    def _later(self, delay: float, func: Callable[..., None], *args: object) -> None:
        if delay <= 0:
            func(*args)
            return
        timer = threading.Timer(delay, func, args)
        timer.daemon = True
        timer.start()

    def _background_job(self, conn: _Conn, job: str, command: str, result: str) -> None:
        name, _, arg = command.partition(" ")
        headers = self.event_headers("BACKGROUND_JOB", [
            ("Job-UUID", job), ("Job-Command", name), ("Job-Command-Arg", arg),
        ], calling=("mod_event_socket.c", "api_exec", 1580))
        self._emit(conn, headers, result)

    def _sendmsg(self, conn: _Conn, cmd: Command) -> None:
        headers = cmd.headers
        conn.send(reply_frame(self.sendmsg_reply))
        if not self.sendmsg_reply.startswith("+OK"):
            return
        if headers.get("call-command", "execute") != "execute":
            return
        held = _HeldExecute(conn, cmd.args, headers.get("execute-app-name", ""), cmd.app_arg,
                            headers.get("event-uuid") or str(uuidlib.uuid4()))
        script = self.execute_hook(held.uuid, held.app, held.arg) if self.execute_hook else None
        if script is not None:
            self._scripted(held, script)
            return
        if not (self.auto_complete or self.hold_completions):
            return
        self._emit(conn, self._execute_headers("CHANNEL_EXECUTE", held))
        if self.hold_completions:
            with self._lock:
                self._held.append(held)
        else:
            self._later(self.complete_delay, self._complete, held)

    def _execute_headers(self, name: str, held: _HeldExecute) -> list[tuple[str, str]]:
        extra = [("Channel-State", "CS_EXECUTE"), ("Channel-Call-State", "ACTIVE"),
                 ("Unique-ID", held.uuid), ("Channel-Call-UUID", held.uuid),
                 ("Answer-State", "answered"), ("Application", held.app)]
        if held.arg:
            extra.append(("Application-Data", held.arg))
        if name == "CHANNEL_EXECUTE_COMPLETE":
            response = held.response if held.response is not None else \
                self.app_responses.get(held.app, self.application_response)
            extra.append(("Application-Response", response))
            extra += list((held.variables if held.variables is not None
                           else self.app_variables.get(held.app, {})).items())
        extra.append(("Application-UUID", held.event_uuid))
        return self.event_headers(name, extra,
                                  calling=("switch_core_session.c",
                                           "switch_core_session_exec", 2976))

    def _complete(self, held: _HeldExecute) -> None:
        self._emit(held.conn, self._execute_headers("CHANNEL_EXECUTE_COMPLETE", held))

    def _scripted(self, held: _HeldExecute, script: dict) -> None:
        self._emit(held.conn, self._execute_headers("CHANNEL_EXECUTE", held))
        held.response = script.get("response")
        held.variables = dict(script.get("variables") or {})
        if script.get("hold"):
            with self._lock:
                self._held.append(held)
            return
        if script.get("hangup"):
            self._later(float(script.get("delay") or 0), self.hangup_call, held.uuid,
                        str(script["hangup"]), held)
            return
        self._later(float(script.get("delay") or 0), self._complete, held)

    def hangup_call(self, call_uuid: str, cause: str = "NORMAL_CLEARING",
                    running: _HeldExecute | None = None) -> None:
        """The channel hangs up (the caller hung up): the running application completes
        (as FreeSWITCH breaks it), then CHANNEL_HANGUP, CHANNEL_HANGUP_COMPLETE and
        CHANNEL_DESTROY."""
        def event(name: str) -> None:
            self.send_event(name, [("Unique-ID", call_uuid), ("Channel-Call-UUID", call_uuid),
                                   ("Hangup-Cause", cause), ("Channel-State", "CS_HANGUP")])

        with self._lock:
            held = [h for h in self._held if h.uuid == call_uuid]
            self._held = [h for h in self._held if h.uuid != call_uuid]
        event("CHANNEL_HANGUP")
        for item in held + ([running] if running is not None else []):
            item.response = item.response or "_none_"
            self._complete(item)
        event("CHANNEL_HANGUP_COMPLETE")
        event("CHANNEL_DESTROY")

    def release(self, event_uuid: str | None = None) -> int:
        """Send the held CHANNEL_EXECUTE_COMPLETEs (all, or the one for ``event_uuid``)."""
        with self._lock:
            chosen = [h for h in self._held if event_uuid in (None, h.event_uuid)]
            self._held = [h for h in self._held if h not in chosen]
        for held in chosen:
            self._complete(held)
        return len(chosen)

    @property
    def held(self) -> list[str]:
        with self._lock:
            return [h.event_uuid for h in self._held]

    def _disconnect(self, conn: _Conn, linger: bool = False) -> None:
        head = "Content-Type: text/disconnect-notice\n"
        if linger:
            head += "Content-Disposition: linger\n"
        conn.send(f"{head}Content-Length: {len(_EXIT_NOTICE)}\n\n".encode() + _EXIT_NOTICE)
        conn.close()

    # -- events

    def event_headers(
        self,
        name: str,
        extra: Headers = (),
        *,
        subclass: str | None = None,
        calling: tuple[str, str, int] = ("standin.c", "standin_event", 1),
    ) -> list[tuple[str, HeaderValue]]:
        """The header list FreeSWITCH puts on every event, then ``extra``."""
        now = time.time()
        headers: list[tuple[str, HeaderValue]] = []
        if subclass is not None:
            headers.append(("Event-Subclass", subclass))
        headers += [
            ("Event-Name", name),
            ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname),
            ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", "127.0.0.1"),
            ("FreeSWITCH-IPv6", "::1"),
            ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))),
            ("Event-Date-GMT", formatdate(now, usegmt=True)),
            ("Event-Date-Timestamp", str(int(now * 1_000_000))),
            ("Event-Calling-File", calling[0]),
            ("Event-Calling-Function", calling[1]),
            ("Event-Calling-Line-Number", str(calling[2])),
            ("Event-Sequence", str(next(self._seq))),
        ]
        headers += _pairs(extra)
        return headers

    def _emit(self, conn: _Conn, headers: Headers, body: str | bytes | None = None) -> bool:
        pairs = _pairs(headers)
        first = dict(pairs)
        name = str(first.get("Event-Name", ""))
        subclass = first.get("Event-Subclass")
        if not conn.wants(name, None if subclass is None else str(subclass)):
            return False
        return conn.send(encode_event(pairs, body, conn.fmt or "plain"))

    def send_event(
        self,
        name_or_headers: str | Headers,
        extra: Headers = (),
        *,
        body: str | bytes | None = None,
        subclass: str | None = None,
        conn: int | None = None,
    ) -> int:
        """Send an event to every subscribed connection (or only ``conn``).

        Pass an event name (the usual headers are added, then ``extra``) or a complete
        header list/dict. Encoded per connection in the format it subscribed with.
        Returns the number of connections it was written to.
        """
        if isinstance(name_or_headers, str):
            headers = self.event_headers(name_or_headers, extra, subclass=subclass)
        else:
            headers = _pairs(name_or_headers) + _pairs(extra)
        return sum(self._emit(c, headers, body) for c in self._targets(conn))

    def heartbeat(self, conn: int | None = None, **overrides: str) -> int:
        """A HEARTBEAT as FreeSWITCH sends it every 20 s (override e.g. Session_Count=)."""
        values = {
            "Event-Info": "System Ready",
            "Up-Time": "0 years, 0 days, 0 hours, 1 minute, 0 seconds, 0 milliseconds, "
                       "0 microseconds",
            "FreeSWITCH-Version": "1.11.3-dev+standin",
            "Uptime-msec": "60000",
            "Session-Count": "0",
            "Max-Sessions": "1000",
            "Session-Per-Sec": "30",
            "Session-Per-Sec-Last": "0",
            "Session-Per-Sec-Max": "0",
            "Session-Per-Sec-FiveMin": "0",
            "Session-Since-Startup": "0",
            "Session-Peak-Max": "0",
            "Session-Peak-FiveMin": "0",
            "Idle-CPU": "98.600000",
        }
        for key, value in overrides.items():
            values[key.replace("_", "-")] = str(value)
        headers = self.event_headers("HEARTBEAT", list(values.items()),
                                     calling=("switch_core.c", "send_heartbeat", 95))
        return sum(self._emit(c, headers) for c in self._targets(conn))

    def replay(
        self,
        path: str | Path,
        *,
        split: bool = False,
        seed: int | None = None,
        max_chunk: int = 1500,
        pause: float = 0.0005,
        conn: int | None = None,
        respect_subscription: bool = True,
    ) -> int:
        """Send the event frames of a capture file, bytes unchanged.

        ``split=True`` writes them in chunks cut at random byte boundaries (1 to
        ``max_chunk`` bytes, ``pause`` seconds apart) so the client sees frames torn
        anywhere. Writing happens in the connection's writer thread: this returns at once
        with the number of events queued per connection (the largest); ``flush()`` waits.
        """
        frames = load_capture_events(path)
        sent = 0
        for target in self._targets(conn):
            chosen = [f for f in frames if not respect_subscription or self._wanted(target, f)]
            data = b"".join(f.to_bytes() for f in chosen)
            if split:
                rng = random.Random(seed)  # noqa: S311 - test traffic shaping
                pos = 0
                while pos < len(data):
                    size = rng.randint(1, max_chunk)
                    if not target.send(data[pos:pos + size], pause):
                        break
                    pos += size
            else:
                target.send(data)
            sent = max(sent, len(chosen))
        return sent

    @staticmethod
    def _wanted(conn: _Conn, frame: Frame) -> bool:
        event = parse_event(frame)
        return event is not None and conn.wants(event.name, event.subclass)

    def send_raw(self, data: bytes, conn: int | None = None) -> int:
        """Write bytes as they are (broken frames, partial frames...)."""
        return sum(c.send(data) for c in self._targets(conn, subscribed_only=False))

    def drop(self, conn: int | None = None) -> int:
        """Close connections abruptly (no disconnect-notice): FreeSWITCH died."""
        targets = self._targets(conn, subscribed_only=False)
        for target in targets:
            target.close()
        return len(targets)

    def disconnect(self, conn: int | None = None, linger: bool = False) -> int:
        """Send ``text/disconnect-notice`` and close, as FreeSWITCH does on shutdown."""
        targets = self._targets(conn, subscribed_only=False)
        for target in targets:
            self._disconnect(target, linger)
        return len(targets)

    def _targets(self, conn: int | None, subscribed_only: bool = True) -> list[_Conn]:
        pool = self.subscribed if subscribed_only else self.connections
        return [c for c in pool if conn is None or c.id == conn]

    # -- waiting (polls with self.sleep so a gevent hub keeps running)

    def flush(self, timeout: float = 10) -> None:
        """Wait until everything queued on every connection has been written."""
        self.wait_for(lambda: all(c.pending == 0 for c in self.connections), timeout,
                      "writes flushed")

    def wait_for(self, predicate: Callable[[], object], timeout: float = 5,
                 what: str = "condition") -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"stand-in: {what} not met within {timeout}s")
            self.sleep(0.005)

    def wait_for_command(self, predicate: Callable[[Command], bool] | str,
                         timeout: float = 5) -> Command:
        """The first recorded command matching ``predicate`` (or starting with a str)."""
        if isinstance(predicate, str):
            prefix = predicate
            predicate = lambda c: c.line.startswith(prefix)  # noqa: E731

        def find() -> Command | None:
            with self._lock:
                return next((c for c in self.commands if predicate(c)), None)

        return self.wait_for(find, timeout, "command")  # type: ignore[return-value]

    def wait_for_connections(self, count: int = 1, timeout: float = 5,
                             subscribed: bool = True) -> list[_Conn]:
        pool = (lambda: self.subscribed) if subscribed else (lambda: self.connections)
        self.wait_for(lambda: len(pool()) >= count, timeout, f"{count} connection(s)")
        return pool()


def _take_command(buf: bytes) -> tuple[bytes, bytes] | None:
    """Split one client command (header block + optional body) off ``buf``."""
    normalized_end = buf.find(b"\n\n")
    crlf_end = buf.find(b"\r\n\r\n")
    if normalized_end < 0 and crlf_end < 0:
        return None
    if crlf_end >= 0 and (normalized_end < 0 or crlf_end < normalized_end):
        head, start = buf[:crlf_end], crlf_end + 4
    else:
        head, start = buf[:normalized_end], normalized_end + 2
    length = 0
    for line in head.split(b"\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                length = max(0, int(value.strip()))
            except ValueError:
                length = 0
    if len(buf) - start < length:
        return None
    return buf[:start + length], buf[start + length:]


def _parse_command(conn: int, raw: bytes) -> Command:
    head, _, rest = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = head.decode("utf-8", "replace").split("\n")
    header_list = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        header_list.append((name.strip(), value.strip()))
    body_length = 0
    for name, value in header_list:
        if name.lower() == "content-length" and value.isdigit():
            body_length = int(value)
    return Command(conn, lines[0], header_list, raw[len(raw) - body_length:] if body_length
                   else b"")
