"""The media service: voicemail messages, greetings and prompts over HTTP, from CouchDB.

A WSGI application (``application``), served by gunicorn (``whistle up`` runs it as
``media``; ``whistle run media`` alone). Every request carries a signed token
(:mod:`whistle_tasks.core.signing`) that names one account, one document, one attachment
and one operation; nothing else in the request is trusted:

    GET|HEAD /media/<token>/<file>   the attachment (FreeSWITCH plays it through
                                      mod_http_cache: ``http_cache://<this URL>``)
    PUT      /media/<token>/<file>   store the body as the attachment (FreeSWITCH's
                                      ``http_put`` of a recording, the ``store`` command)
    GET      /health                 ``ok``

The document is read from the token's account database only, and must belong to that
account (``pvt_account_id``), so a token for one account's message never opens another's.
An upload must declare a length within ``WHISTLE_MEDIA_MAX_BYTES`` and be a PCM WAV file
(:mod:`whistle_tasks.core.audio`; the content decides, not the declared type); its duration
and size are written beside it in the document (``pvt_media.<file>``).

Refusals are answered with the status that says why (403 a bad or expired token or the
wrong operation, 404 nothing there, 411/413 no or too large a length, 415 not WAV, 503
CouchDB away), logged with the document (never the token: it is a credential) and counted.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from whistle_tasks.core import audio
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import CouchError, NotFound, Unavailable, get_couch
from whistle_tasks.core.log import get_logger
from whistle_tasks.core.signing import MediaGrant, TokenError, verify
from whistle_tasks.data import media

log = get_logger(__name__)

#: the documents whose attachments the service serves and stores
MEDIA_DOC_TYPES = frozenset({"voicemail_message", "vmbox", "media"})
CHUNK = 64 * 1024

StartResponse = Callable[..., Any]

#: per-process counters: "<status>" and "refused.<reason>"
counters: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()


def count(name: str) -> None:
    with _lock:
        counters[name] += 1


class Refused(Exception):
    """A request that gets a non-2xx answer: ``status``, and a reason for the body/log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


STATUS_TEXT = {200: "OK", 201: "Created", 400: "Bad Request", 403: "Forbidden",
               404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
               413: "Content Too Large", 415: "Unsupported Media Type",
               500: "Internal Server Error", 503: "Service Unavailable"}


def _status(code: int) -> str:
    return f"{code} {STATUS_TEXT.get(code, 'Error')}"


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI entry point."""
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "")
    try:
        if path == "/health":
            return _send(start_response, 200, b"ok\n", "text/plain")
        parts = path.split("/")
        if len(parts) != 4 or parts[1] != "media" or not parts[2]:
            raise Refused(404, "no such path")
        token = parts[2]
        if method in ("GET", "HEAD"):
            return _read(environ, start_response, token, head=method == "HEAD")
        if method == "PUT":
            return _write(environ, start_response, token)
        raise Refused(405, f"method {method} not allowed")
    except Refused as exc:
        count(str(exc.status))
        count(f"refused.{exc.reason.split(':', 1)[0]}")
        log.warning("media %s refused (%d): %s", method, exc.status, exc.reason)
        body = json.dumps({"error": exc.reason}).encode() + b"\n"
        headers = [("Allow", "GET, HEAD, PUT")] if exc.status == 405 else []
        return _send(start_response, exc.status, body, "application/json", headers)
    except Unavailable as exc:
        count("503")
        log.error("media %s: CouchDB unavailable: %s", method, exc)
        return _send(start_response, 503, b'{"error": "storage unavailable"}\n',
                     "application/json", [("Retry-After", "5")])
    except CouchError as exc:
        count("500")
        log.error("media %s: CouchDB error: %s", method, exc)
        return _send(start_response, 500, b'{"error": "storage error"}\n', "application/json")


def _send(start_response: StartResponse, status: int, body: bytes, content_type: str,
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(_status(status), [("Content-Type", content_type),
                                     ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


def _grant(token: str, op: str) -> MediaGrant:
    try:
        grant = verify(media.secret(), token)
    except TokenError as exc:
        raise Refused(403, f"token: {exc}") from None
    if grant.op != op:
        raise Refused(403, f"token: allows {grant.op}, not {op}")
    return grant


def _document(grant: MediaGrant) -> dict[str, Any]:
    """The grant's document, if it is a media document of the grant's account."""
    try:
        doc = get_couch().get(media.database(grant.account_id), grant.doc_id)
    except NotFound:
        raise Refused(404, f"no document {grant.doc_id}") from None
    if doc.get("pvt_deleted") or doc.get("pvt_type") not in MEDIA_DOC_TYPES:
        raise Refused(404, f"no media document {grant.doc_id}")
    if grant.account_id and doc.get("pvt_account_id") != grant.account_id:
        raise Refused(403, f"document {grant.doc_id} is not the account's")
    return doc


def _read(environ: dict[str, Any], start_response: StartResponse, token: str, *,
          head: bool) -> Iterable[bytes]:
    grant = _grant(token, "read")
    doc = _document(grant)
    stub = media.attachment_of(doc, grant.name)
    if stub is None:
        raise Refused(404, f"document {grant.doc_id} has no {grant.name}")
    headers = [("Content-Type", str(stub.get("content_type") or audio.WAV)),
               ("Cache-Control", f"private, max-age={max(0, grant.expires - int(time.time()))}")]
    if stub.get("length") is not None:
        headers.append(("Content-Length", str(stub["length"])))
    if stub.get("digest"):
        headers.append(("ETag", f'"{stub["digest"]}"'))
    if head:
        start_response(_status(200), headers)
        count("200")
        return []
    try:
        resp = get_couch().get_attachment(media.database(grant.account_id), grant.doc_id,
                                          grant.name)
    except NotFound:
        raise Refused(404, f"document {grant.doc_id} has no {grant.name}") from None
    start_response(_status(200), headers)
    count("200")
    log.info("media read %s/%s", grant.doc_id, grant.name)
    return _stream(resp)


def _stream(resp: Any) -> Iterator[bytes]:  # noqa: ANN401 - a requests.Response
    try:
        yield from resp.iter_content(CHUNK)
    finally:
        resp.close()


def _body(environ: dict[str, Any]) -> bytes:
    raw = environ.get("CONTENT_LENGTH") or ""
    if not raw.strip().isdigit():
        raise Refused(411, "length: a Content-Length is required")
    length = int(raw)
    if length > settings.media_max_bytes:
        raise Refused(413, f"length: {length} bytes is over the limit of "
                           f"{settings.media_max_bytes}")
    if length == 0:
        raise Refused(415, "type: an empty body is no audio")
    stream = environ["wsgi.input"]
    chunks, left = [], length
    while left > 0:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            raise Refused(400, "body: shorter than its Content-Length")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write(environ: dict[str, Any], start_response: StartResponse,
           token: str) -> Iterable[bytes]:
    grant = _grant(token, "write")
    try:
        audio.check_declared(environ.get("CONTENT_TYPE") or "")
    except audio.AudioError as exc:
        raise Refused(415, f"type: {exc}") from None
    doc = _document(grant)
    data = _body(environ)
    try:
        length_ms = audio.wav_length_ms(data)
    except audio.AudioError as exc:
        raise Refused(415, f"type: {exc}") from None
    db = media.database(grant.account_id)
    couch = get_couch()
    try:
        couch.put_attachment(db, grant.doc_id, grant.name, data, audio.WAV)
    except NotFound:
        raise Refused(404, f"no document {grant.doc_id}") from None
    facts = {"length_ms": length_ms, "bytes": len(data), "content_type": audio.WAV,
             "stored_at": int(time.time())}

    def note(current: dict[str, Any] | None) -> dict[str, Any] | None:
        if current is None:
            return None
        return {**current, "pvt_media": {**(current.get("pvt_media") or {}),
                                         grant.name: facts}}

    couch.update(db, grant.doc_id, note)
    count("201")
    log.info("media stored %s/%s (%s, %d bytes, %d ms)", grant.doc_id, grant.name,
             doc.get("pvt_type"), len(data), length_ms)
    body = json.dumps({"ok": True, "id": grant.doc_id, "name": grant.name, **facts}).encode()
    return _send(start_response, 201, body + b"\n", "application/json")

