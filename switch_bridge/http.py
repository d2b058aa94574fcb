"""The bridge's HTTP side: mod_xml_curl's ``POST /fs/directory`` and ``/fs/dialplan``,
``GET /metrics`` and ``GET /health``.

A gevent ``StreamServer`` with the ``httptools`` parser (llhttp, the C parser of Node.js,
maintained by the uvloop project): every lookup is a new TCP connection from FreeSWITCH's
libcurl, and gevent's WSGI server spent more on parsing headers through ``email.parser``
and building a WSGI environ than the bridge spent answering (measured: 590 µs of bridge CPU
per cached lookup with pywsgi). The answer leaves in one write with ``TCP_NODELAY`` on the
accepted socket: without it, libcurl waits for a delayed ACK (~40 ms, docs/design.md).

Only configured clients may call (IP networks, optional basic auth): others get 403.
Malformed HTTP gets 400, a body over 1 MiB gets 413, a client that stalls is cut off.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import httptools
from gevent.server import StreamServer

from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

MAX_BODY = 1 << 20
MAX_HEAD = 64 << 10
IO_TIMEOUT = 10.0
XML = "text/xml"

#: an endpoint: (body, request) -> (status, content type, payload); ``request`` holds
#: ``REMOTE_ADDR``, ``REQUEST_METHOD``, ``PATH_INFO`` and ``HTTP_<NAME>`` headers
Endpoint = Callable[[bytes, dict[str, Any]], tuple[int, str, bytes]]

_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}


class AccessPolicy:
    """Which clients may call: IP networks (``127.0.0.1,10.0.0.0/8``) and optional basic auth."""

    def __init__(self, allow: str, auth: str = "") -> None:
        self.networks = [ipaddress.ip_network(part.strip(), strict=False)
                         for part in allow.split(",") if part.strip()]
        self.auth = auth
        self._allowed: dict[str, bool] = {}

    def address_allowed(self, address: str) -> bool:
        known = self._allowed.get(address)
        if known is not None:
            return known
        try:
            addr = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        allowed = any(addr in net for net in self.networks)
        if len(self._allowed) < 10_000:
            self._allowed[address] = allowed
        return allowed

    def allows(self, request: dict[str, Any]) -> bool:
        if not self.address_allowed(request.get("REMOTE_ADDR", "")):
            return False
        if not self.auth:
            return True
        header = request.get("HTTP_AUTHORIZATION", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(given.encode(), self.auth.encode())


class _Request:
    """One request as the parser saw it."""

    __slots__ = ("url", "headers", "body", "size", "too_big", "keep_alive", "method")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.too_big = False
        self.keep_alive = False
        self.method = ""


class _Connection:
    """httptools callbacks for one connection: complete requests queue up in ``ready``
    (a client may pipeline several in one segment)."""

    __slots__ = ("parser", "current", "ready")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.current = _Request()
        self.ready: list[_Request] = []

    def on_message_begin(self) -> None:
        self.current = _Request()

    def on_url(self, url: bytes) -> None:
        self.current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers["HTTP_" + name.decode("latin-1").upper().replace("-", "_")] = \
            value.decode("latin-1")

    def on_headers_complete(self) -> None:
        # read now: llhttp resets these for the next message once this one completes
        self.current.keep_alive = self.parser.should_keep_alive()
        self.current.method = self.parser.get_method().decode("latin-1")

    def on_body(self, body: bytes) -> None:
        req = self.current
        req.size += len(body)
        if req.size > MAX_BODY:
            req.too_big = True
        else:
            req.body.append(body)

    def on_message_complete(self) -> None:
        self.ready.append(self.current)


def response(status: int, content_type: str, payload: bytes, *, close: bool) -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\n"
            f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n")
    return head.encode("latin-1") + payload


class HttpFront:
    """Routes the paths above to the bridge's endpoint functions, enforcing the policy."""

    def __init__(self, policy: AccessPolicy, endpoints: dict[str, Endpoint],
                 on_forbidden: Callable[[str, str], None] | None = None,
                 on_bad_request: Callable[[str, str], None] | None = None) -> None:
        self.policy = policy
        self.endpoints = endpoints
        self.on_forbidden = on_forbidden
        self.on_bad_request = on_bad_request

    def handle(self, sock: socket.socket, address: tuple[Any, ...]) -> None:
        """One connection: requests until the client closes or asks to (libcurl's way)."""
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        sock.settimeout(IO_TIMEOUT)
        remote = str(address[0]) if address else ""
        conn = _Connection()
        pending = 0
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                pending += len(data)
                try:
                    conn.parser.feed_data(data)
                except httptools.HttpParserError as exc:
                    self._bad(remote, f"malformed HTTP: {exc}")
                    _refuse(sock, response(400, "text/plain", b"bad request\n", close=True))
                    return
                if conn.current.too_big or pending > MAX_HEAD + MAX_BODY:
                    self._bad(remote, "request body over 1 MiB")
                    _refuse(sock, response(413, "text/plain", b"too large\n", close=True))
                    return
                if not conn.ready:
                    continue
                pending = 0
                answers = []
                keep = True
                for req in conn.ready:
                    path = req.url.split(b"?", 1)[0].decode("latin-1")
                    request = {"REMOTE_ADDR": remote, "REQUEST_METHOD": req.method,
                               "PATH_INFO": path, **req.headers}
                    status, content_type, payload = self.dispatch(
                        req.method, path, b"".join(req.body), request)
                    keep = req.keep_alive
                    answers.append(response(status, content_type, payload, close=not keep))
                    if not keep:
                        break
                conn.ready.clear()
                sock.sendall(b"".join(answers))
                if not keep:
                    return
        except OSError:
            pass  # the client went away or stalled: nothing to answer
        finally:
            sock.close()

    def dispatch(self, method: str, path: str, body: bytes,
                 request: dict[str, Any]) -> tuple[int, str, bytes]:
        if not self.policy.allows(request):
            if self.on_forbidden:
                self.on_forbidden(path, request.get("REMOTE_ADDR", "?"))
            return 403, "text/plain", b"forbidden\n"
        endpoint = self.endpoints.get(path)
        if endpoint is None:
            return 404, "text/plain", b"not found\n"
        if method not in ("GET", "POST"):
            return 405, "text/plain", b"method not allowed\n"
        try:
            return endpoint(body, request)
        except Exception:
            log.exception("%s %s failed", method, path)
            return 500, "text/plain", b"internal error\n"

    def _bad(self, remote: str, why: str) -> None:
        log.warning("bad HTTP request from %s: %s", remote, why)
        if self.on_bad_request:
            self.on_bad_request(remote, why)


def _refuse(sock: socket.socket, answer: bytes) -> None:
    """Send an error and close gently: stop writing, then read (and drop) what the client
    is still sending for a moment, so the kernel does not reset the connection before the
    client has read the answer."""
    sock.sendall(answer)
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        drained = 0
        while drained < 4 * MAX_BODY and sock.recv(65536):
            drained += 65536
    except OSError:
        pass


def make_server(listen: str, front: HttpFront) -> StreamServer:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return StreamServer((host, int(port)), front.handle, backlog=1024)
