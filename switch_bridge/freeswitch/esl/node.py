"""One inbound event-socket connection to one FreeSWITCH node, kept alive (gevent).

``EslNode`` owns a greenlet that connects, authenticates, subscribes and then reads
frames until the connection dies, and starts over with exponential back-off and full
jitter (a fleet of bridges must not reconnect in step after a FreeSWITCH restart). A
node that is down, slow or silent only ever blocks its own greenlet.

Back-off: a node that has never answered (a typo in ``WHISTLE_FS_NODES``, a switch not
installed yet) is retried ever more slowly, up to ``backoff_max`` (30 s). A node that was
healthy (it connected at least once) is retried with a cap of ``backoff_max_healthy``
(5 s): it is a FreeSWITCH restarting or an event socket reloaded, and everything it does
meanwhile (registrations, calls) is only learnt once we are back (see
``extensions/node_sync.py``), so we come back within seconds of it, not half a minute.

States: ``connecting`` (the first attempt), ``connected``, ``down`` (the connection was
lost or an attempt failed; retries happen in this state). One log line per state change
with its reason; a failing retry logs only when its reason differs from the last one (at
DEBUG otherwise), so a node that stays down costs one line, not three per attempt.

Liveness: FreeSWITCH sends ``HEARTBEAT`` every 20 s when subscribed, so a connection
that delivers no frame at all for ``heartbeat_timeout`` seconds is treated as dead
(a half-open TCP connection otherwise looks healthy forever). ``text/disconnect-notice``
also ends the session.

Commands share the event connection. FreeSWITCH answers commands strictly in the order
they were received (``command/reply`` or ``api/response``), so each command appends a
waiter to a FIFO under the same lock that writes its bytes; the reader hands each reply
to the oldest waiter. A waiter whose caller timed out stays in the FIFO so later replies
still reach the right caller. When the connection drops every waiter fails at once with
``EslNotConnected``; a command issued while the node is down fails immediately.

Only gevent's own socket module is used, so the node works whether or not the process
is monkey-patched; every method must be called from the gevent hub's thread.
"""

from __future__ import annotations

import logging
import random
import socket
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Callable, Iterable

import gevent
import gevent.event
import gevent.lock
from gevent import socket as gsocket

from switch_bridge.freeswitch.esl import protocol
from switch_bridge.freeswitch.esl.protocol import Event, EventParseError, Frame, FrameParser
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

STATE_CONNECTING = "connecting"
STATE_CONNECTED = "connected"
STATE_DOWN = "down"

YIELD_EVERY = 16
_EVENT_TYPES = frozenset(("text/event-json", "text/event-plain"))
_REPLY_TYPES = frozenset(("command/reply", "api/response"))


class EslError(Exception):
    """Base class of the node's errors."""


class EslNotConnected(EslError):
    """The node is not connected, or the connection was lost before the reply came."""


class EslTimeout(EslError):
    """No reply (or no frame at all) within the allowed time."""


class EslCommandError(EslError):
    """FreeSWITCH refused a command (``-ERR ...``)."""


class EslAuthError(EslError):
    """FreeSWITCH refused our password, or our address (``text/rude-rejection``)."""


class _SessionEnd(EslError):
    """FreeSWITCH said goodbye (``text/disconnect-notice``)."""


EventCallback = Callable[["EslNode", Event], None]
StateCallback = Callable[["EslNode", str], None]


class EslNode:
    """A self-healing inbound ESL connection. ``start()`` it and read its counters."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        name: str | None = None,
        on_event: EventCallback,
        on_state: StateCallback | None = None,
        event_names: Iterable[str],
        fmt: str = "json",
        heartbeat_timeout: float = 60,
        connect_timeout: float = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30,
        backoff_max_healthy: float = 5,
        recv_size: int = 256 * 1024,
        rng: random.Random | None = None,
    ) -> None:
        if fmt not in protocol.EVENT_FORMATS:
            raise ValueError(f"event format must be one of {protocol.EVENT_FORMATS}, not {fmt!r}")
        names = list(event_names)
        self.host = host
        self.port = int(port)
        self.name = name or f"{host}:{port}"
        self.fmt = fmt
        self.event_names = names
        self.on_event = on_event
        self.on_state = on_state
        self.heartbeat_timeout = float(heartbeat_timeout)
        self.connect_timeout = float(connect_timeout)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.backoff_max_healthy = float(backoff_max_healthy)
        self.recv_size = recv_size
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        # encoded once: bad names or a bad password fail here, not in the greenlet
        self._auth_cmd = protocol.auth(password)
        self._subscribe_cmd = protocol.events(fmt, names)
        if "HEARTBEAT" not in names and "ALL" not in names:
            log.warning("ESL %s: HEARTBEAT not subscribed; an idle node will look dead after "
                        "%ss", self.name, heartbeat_timeout)

        self.state = STATE_DOWN
        self.connected = False
        self.fs_hostname: str | None = None
        self.last_heartbeat: dict[str, str] = {}
        self.last_heartbeat_at: float | None = None
        # what the node carries: from its last HEARTBEAT, or from what the node sync read
        # when we connected (whichever is newer); its sofia profiles (node sync)
        self.sessions: int | None = None
        self.max_sessions: int | None = None
        self.sip_profiles: list[str] = []
        self.connected_since: float | None = None
        self.last_error: str | None = None
        self._logged_error: str | None = None   # the failure last logged (one line each)
        # counters
        self.events = 0
        self.reconnects = 0
        self.connects = 0
        self.frame_errors = 0
        self.event_errors = 0
        self.callback_errors = 0
        self.auth_failures = 0
        self.stray_replies = 0

        self._sock: gsocket.socket | None = None
        self._parser = FrameParser(on_error=self._frame_error)
        self._frames: deque[Frame] = deque()
        self._waiters: deque[gevent.event.AsyncResult] = deque()
        self._write_lock = gevent.lock.Semaphore()
        self._connected_evt = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<EslNode {self.name} {self.state}>"

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> EslNode:
        """Spawn the connection greenlet (idempotent)."""
        if self._greenlet is None or self._greenlet.dead:
            self._stopping = False
            self._set_state(STATE_CONNECTING)
            self._greenlet = gevent.spawn(self._run)
            self._greenlet.name = f"esl-{self.name}"
        return self

    def stop(self, timeout: float = 5) -> None:
        """Close the connection and stop reconnecting; pending commands fail."""
        self._stopping = True
        self._close_socket()
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None and not greenlet.dead and greenlet is not gevent.getcurrent():
            greenlet.kill(block=True, timeout=timeout)
        self._fail_waiters("node stopped")
        self._set_state(STATE_DOWN)

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block (cooperatively) until connected; False on timeout."""
        return bool(self._connected_evt.wait(timeout))

    def stats(self) -> dict[str, object]:
        """A snapshot for metrics and health checks."""
        return {
            "name": self.name,
            "state": self.state,
            "connected": self.connected,
            "fs_hostname": self.fs_hostname,
            "events": self.events,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "frame_errors": self.frame_errors,
            "event_errors": self.event_errors,
            "callback_errors": self.callback_errors,
            "auth_failures": self.auth_failures,
            "stray_replies": self.stray_replies,
            "pending_replies": len(self._waiters),
            "last_heartbeat_at": self.last_heartbeat_at,
            "last_error": self.last_error,
        }

    # ----------------------------------------------------------------- commands

    def command(self, data: bytes, timeout: float = 5) -> Frame:
        """Send one encoded command (see ``protocol``) and return its reply frame."""
        if not self.connected or self._sock is None:
            raise EslNotConnected(f"ESL {self.name} is {self.state}")
        waiter = gevent.event.AsyncResult()
        with self._write_lock:
            sock = self._sock
            if not self.connected or sock is None:
                raise EslNotConnected(f"ESL {self.name} is {self.state}")
            self._waiters.append(waiter)
            try:
                with gevent.Timeout(timeout, EslTimeout(f"ESL {self.name}: write blocked "
                                                        f"for {timeout}s")):
                    sock.sendall(data)
            except (OSError, EslTimeout) as exc:
                # a partial write corrupts the stream: this connection is finished
                self._abort(f"write failed: {exc}")
                raise EslNotConnected(f"ESL {self.name}: write failed: {exc}") from None
        try:
            return waiter.get(timeout=timeout)
        except gevent.Timeout:
            raise EslTimeout(f"ESL {self.name}: no reply to {_verb(data)!r} within "
                             f"{timeout}s") from None

    def api(self, cmd: str, timeout: float = 5) -> str:
        """``api <cmd>``: the reply body (e.g. ``+OK\\n``, ``-ERR No such channel!\\n``).

        ``api`` holds the whole connection until FreeSWITCH answers: use ``bgapi`` for
        anything slow (originate).
        """
        frame = self.command(protocol.api(cmd), timeout)
        if frame.content_type != "api/response":
            raise EslCommandError(f"api {cmd.split(' ', 1)[0]}: "
                                  f"{frame.get('Reply-Text') or frame.content_type}")
        return frame.body_text

    def bgapi(self, cmd: str, job_uuid: str | None = None, timeout: float = 5) -> str:
        """``bgapi <cmd>``: returns the Job-UUID; the result arrives as BACKGROUND_JOB."""
        job = job_uuid or str(uuidlib.uuid4())
        frame = self.command(protocol.bgapi(cmd, job), timeout)
        reply = frame.get("Reply-Text", "") or ""
        if not reply.startswith("+OK"):
            raise EslCommandError(f"bgapi {cmd.split(' ', 1)[0]}: {reply or frame.content_type}")
        return frame.get("Job-UUID") or job

    def sendevent(self, name: str, headers: list[tuple[str, str]], timeout: float = 5) -> str:
        """``sendevent <name>``: fire an event inside FreeSWITCH; returns the Reply-Text
        (``+OK <event uuid>``)."""
        frame = self.command(protocol.sendevent(name, headers), timeout)
        return frame.get("Reply-Text", "") or ""

    def sendmsg(
        self,
        uuid: str,
        app: str,
        arg: str | None = None,
        *,
        event_uuid: str | None = None,
        event_lock: bool = False,
        loops: int | None = None,
        timeout: float = 5,
    ) -> str:
        """``sendmsg <uuid>`` execute: returns the Reply-Text (``+OK`` or ``-ERR ...``).

        The outcome of the application itself arrives later as CHANNEL_EXECUTE_COMPLETE
        with ``Application-UUID`` = ``event_uuid``.
        """
        data = protocol.sendmsg(uuid, app, arg, event_uuid=event_uuid,
                                event_lock=event_lock, loops=loops)
        frame = self.command(data, timeout)
        return frame.get("Reply-Text", "") or ""

    # ----------------------------------------------------------------- the greenlet

    def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            connects_before = self.connects
            try:
                self._session()
            except gevent.GreenletExit:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything
                if not self._stopping:
                    self._session_failed(exc)
            finally:
                self._teardown()
            if self._stopping:
                break
            if self.connects > connects_before:  # it worked for a while: start gently again
                attempt = 0
            gevent.sleep(self.retry_delay(attempt))
            attempt = min(attempt + 1, 32)
            self.reconnects += 1

    def retry_delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (0 = the first after a failure): full
        jitter under an exponential cap, which is a few seconds once the node has been
        healthy (see the module docstring)."""
        ceiling = self.backoff_max_healthy if self.connects else self.backoff_max
        cap = min(ceiling, self.backoff_initial * (2 ** attempt))
        return self._rng.uniform(0, cap)

    def _session(self) -> None:
        """One connection, from connect to its end (always ends with an exception)."""
        with gevent.Timeout(self.connect_timeout,
                            EslTimeout(f"connect timed out after {self.connect_timeout}s")):
            sock = gsocket.create_connection((self.host, self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._parser.reset()
        self._frames.clear()

        deadline = time.monotonic() + self.connect_timeout
        frame = self._next_frame(deadline)
        if frame.content_type == "text/rude-rejection":
            raise EslAuthError(f"address rejected by FreeSWITCH ACL: {frame.body_text.strip()}")
        if frame.content_type != "auth/request":
            raise EslError(f"expected auth/request, got {frame.content_type or 'no type'}")
        sock.sendall(self._auth_cmd)
        reply = self._next_reply(deadline)
        if not reply.startswith("+OK"):
            raise EslAuthError(f"password refused ({reply or 'no reply text'})")
        sock.sendall(self._subscribe_cmd)
        reply = self._next_reply(deadline)
        if not reply.startswith("+OK"):
            raise EslError(f"subscription refused ({reply or 'no reply text'})")

        self.connects += 1
        self.connected = True
        self.connected_since = time.time()
        self._logged_error = None
        self._connected_evt.set()
        self._set_state(STATE_CONNECTED, f"{self.fmt} events subscribed")
        self._read_loop(sock)

    def _next_frame(self, deadline: float) -> Frame:
        sock = self._sock
        assert sock is not None  # noqa: S101 - set by _session
        while not self._frames:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EslTimeout("handshake timed out")
            with gevent.Timeout(remaining, EslTimeout("handshake timed out")):
                data = sock.recv(self.recv_size)
            if not data:
                raise EslNotConnected("connection closed by FreeSWITCH during handshake")
            self._frames.extend(self._parser.feed(data))
        return self._frames.popleft()

    def _next_reply(self, deadline: float) -> str:
        while True:
            frame = self._next_frame(deadline)
            kind = frame.content_type
            if kind == "command/reply":
                return frame.get("Reply-Text", "") or ""
            if kind == "text/rude-rejection":
                raise EslAuthError(f"rejected: {frame.body_text.strip()}")
            if kind == "text/disconnect-notice":
                raise EslNotConnected("FreeSWITCH disconnected during handshake")
            # anything else before the reply (log/data...) is not ours to answer

    def _read_loop(self, sock: gsocket.socket) -> None:
        last_frame = time.monotonic()
        frames = list(self._frames)  # read along with the handshake's last reply
        self._frames.clear()
        dispatch = self._dispatch
        while True:
            for count, frame in enumerate(frames, 1):
                dispatch(frame)
                if count % YIELD_EVERY == 0:
                    # a burst of events must not starve the other greenlets (the HTTP
                    # lookups FreeSWITCH is waiting on, the other nodes, the publisher)
                    gevent.sleep(0)
            remaining = last_frame + self.heartbeat_timeout - time.monotonic()
            if remaining <= 0:
                raise EslTimeout(f"no frame for {self.heartbeat_timeout:g}s (no HEARTBEAT): "
                                 "connection presumed dead")
            timer = gevent.Timeout.start_new(remaining)
            try:
                data = sock.recv(self.recv_size)
            except gevent.Timeout as exc:
                if exc is not timer:
                    raise
                frames = []
                continue
            finally:
                timer.close()
            if not data:
                raise EslNotConnected("connection closed by FreeSWITCH")
            frames = self._parser.feed(data)
            if frames:
                last_frame = time.monotonic()

    def _dispatch(self, frame: Frame) -> None:
        kind = frame.content_type
        if kind in _EVENT_TYPES:
            try:
                event = protocol.parse_event(frame)
            except EventParseError as exc:
                self.event_errors += 1
                log.warning("ESL %s: unreadable event skipped: %s", self.name, exc)
                return
            if event is None:
                return
            self.events += 1
            headers = event.headers
            hostname = headers.get("FreeSWITCH-Hostname")
            if hostname is not None:
                self.fs_hostname = hostname
            if headers.get("Event-Name") == "HEARTBEAT":
                self.last_heartbeat = dict(headers)
                self.last_heartbeat_at = time.time()
                self.sessions = _count(headers.get("Session-Count"), self.sessions)
                self.max_sessions = _count(headers.get("Max-Sessions"), self.max_sessions)
            try:
                self.on_event(self, event)
            except Exception:  # noqa: BLE001 - a consumer bug must not kill the connection
                self.callback_errors += 1
                log.exception("ESL %s: on_event failed for %s", self.name, event.name)
        elif kind in _REPLY_TYPES:
            if self._waiters:
                self._waiters.popleft().set(frame)
            else:
                self.stray_replies += 1
                log.warning("ESL %s: %s with nobody waiting for it", self.name, kind)
        elif kind == "text/disconnect-notice":
            raise _SessionEnd(f"FreeSWITCH sent disconnect-notice "
                              f"({frame.get('Content-Disposition') or 'no disposition'})")
        elif kind == "text/rude-rejection":
            raise EslAuthError(f"rejected: {frame.body_text.strip()}")
        elif kind != "log/data":
            log.debug("ESL %s: ignoring %s frame", self.name, kind)

    # ----------------------------------------------------------------- helpers

    def _frame_error(self, message: str) -> None:
        self.frame_errors += 1
        log.warning("ESL %s: broken frame skipped: %s", self.name, message)

    def _session_failed(self, exc: Exception) -> None:
        was_connected = self.connected
        if isinstance(exc, EslAuthError):
            # the reply text is FreeSWITCH's ("-ERR invalid"): it never contains the password
            self.auth_failures += 1
            self.last_error = f"authentication failed: {exc}"
        elif isinstance(exc, OSError | EslError):
            self.last_error = str(exc) or type(exc).__name__
        else:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("ESL %s: unexpected error", self.name, exc_info=exc)
        if was_connected or self.state != STATE_DOWN:
            return  # the state change to down says it (one line)
        if self.last_error != self._logged_error:
            self._logged_error = self.last_error
            level = logging.ERROR if isinstance(exc, EslAuthError) else logging.WARNING
            log.log(level, "ESL %s: still down: %s", self.name, self.last_error)
        else:
            log.debug("ESL %s: retry failed: %s", self.name, self.last_error)

    def _set_state(self, state: str, why: str | None = None) -> None:
        if state == self.state:
            return
        self.state = state
        if state == STATE_DOWN and not self._stopping:
            self._logged_error = self.last_error
            level = logging.ERROR if (self.last_error or "").startswith(
                "authentication failed") else logging.WARNING
            retry = self.backoff_max_healthy if self.connects else self.backoff_max
            log.log(level, "ESL %s: down: %s (retrying, at most %gs apart)", self.name,
                    self.last_error or "connection lost", retry)
        elif state == STATE_CONNECTED:
            log.info("ESL %s: connected%s", self.name, f" ({why})" if why else "")
        if self.on_state is not None:
            try:
                self.on_state(self, state)
            except Exception:  # noqa: BLE001 - observer bugs must not break the node
                log.exception("ESL %s: on_state failed", self.name)

    def _abort(self, reason: str) -> None:
        """Close the socket from a command path; the reader then tears the session down."""
        log.warning("ESL %s: aborting connection: %s", self.name, reason)
        self.connected = False
        self._close_socket()
        self._fail_waiters(reason)

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _teardown(self) -> None:
        self.connected = False
        self.connected_since = None
        self._connected_evt.clear()
        self._close_socket()
        self._fail_waiters(self.last_error or "connection lost")
        self._set_state(STATE_DOWN)

    def _fail_waiters(self, reason: str) -> None:
        if not self._waiters:
            return
        error = EslNotConnected(f"ESL {self.name}: {reason}")
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.ready():
                waiter.set_exception(error)


def _count(value: str | None, default: int | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and value.isascii() else default


def _verb(data: bytes) -> str:
    """The command word of an encoded command, for messages (never its arguments)."""
    return data.split(b"\n", 1)[0].split(b" ", 1)[0].decode("ascii", "replace")
