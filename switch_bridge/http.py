"""The bridge's HTTP side: mod_xml_curl's ``POST /fs/directory`` and ``/fs/dialplan``,
``GET /metrics`` and ``GET /health``, served by gevent's WSGI server.

Every response leaves in one write with ``TCP_NODELAY`` on the accepted socket: without
it, FreeSWITCH's libcurl would wait for a delayed ACK (~40 ms, DESIGN.md) on every lookup.
Only configured clients may call (IP networks, optional basic auth): others get 403.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any

from gevent.pywsgi import WSGIHandler, WSGIServer

from whistle_tasks.util.log import get_logger

log = get_logger(__name__)

MAX_BODY = 1 << 20
XML = "text/xml"

Endpoint = Callable[[bytes, dict[str, Any]], tuple[int, str, bytes]]


class NoDelayHandler(WSGIHandler):
    def handle(self) -> None:
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        super().handle()

    def log_request(self) -> None:  # access logs would cost more than the answer itself
        return


class AccessPolicy:
    """Which clients may call: IP networks (``127.0.0.1,10.0.0.0/8``) and optional basic auth."""

    def __init__(self, allow: str, auth: str = "") -> None:
        self.networks = [ipaddress.ip_network(part.strip(), strict=False)
                         for part in allow.split(",") if part.strip()]
        self.auth = auth

    def allows(self, environ: dict[str, Any]) -> bool:
        try:
            addr = ipaddress.ip_address(environ.get("REMOTE_ADDR", "").split("%", 1)[0])
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if not any(addr in net for net in self.networks):
            return False
        if not self.auth:
            return True
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(given.encode(), self.auth.encode())


class HttpFront:
    """A WSGI app routing the paths above to the bridge's endpoint functions."""

    def __init__(self, policy: AccessPolicy, endpoints: dict[str, Endpoint],
                 on_forbidden: Callable[[str, str], None] | None = None) -> None:
        self.policy = policy
        self.endpoints = endpoints
        self.on_forbidden = on_forbidden

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if not self.policy.allows(environ):
            if self.on_forbidden:
                self.on_forbidden(path, environ.get("REMOTE_ADDR", "?"))
            return _respond(start_response, 403, "text/plain", b"forbidden\n")
        endpoint = self.endpoints.get(path)
        if endpoint is None:
            return _respond(start_response, 404, "text/plain", b"not found\n")
        body = b""
        if method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                length = MAX_BODY + 1
            body = environ["wsgi.input"].read(min(length, MAX_BODY + 1))
        elif method != "GET":
            return _respond(start_response, 405, "text/plain", b"method not allowed\n")
        status, content_type, payload = endpoint(body, environ)
        return _respond(start_response, status, content_type, payload)


_REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}


def _respond(start_response: Callable[..., Any], status: int, content_type: str,
             payload: bytes) -> list[bytes]:
    start_response(f"{status} {_REASONS.get(status, 'OK')}",
                   [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
    return [payload]


def make_server(listen: str, app: HttpFront) -> WSGIServer:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return WSGIServer((host, int(port)), app, handler_class=NoDelayHandler, log=None,
                      error_log=log)
