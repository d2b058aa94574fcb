"""One logger setup for every Whistle process (the seed's ``?LOG`` macro).

Every line carries the call id of the work in hand (``0000000000`` when there is none),
the module and the line number::

    2026-11-26 10:49:58,123 INFO [3f1c...] registrar.tasks:88 authn_req for 1000@example.com

The call id lives in a context variable, so it follows a greenlet (gevent keeps one context
per greenlet) or a thread. Use :func:`call_id` around the handling of one call::

    with call_id(msg.get("Call-ID")):
        log.info("routing")

A filter masks anything that looks like a secret (``password=...``, ``"Auth-Password": ...``,
URL credentials) as a last line of defence; code must still never log secrets on purpose.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.handlers
import re
import sys
from collections.abc import Iterator

DEFAULT_CALL_ID = "0000000000"
_call_id: contextvars.ContextVar[str] = contextvars.ContextVar("whistle_call_id",
                                                               default=DEFAULT_CALL_ID)

FORMAT = "%(asctime)s %(levelname)s [%(call_id)s] %(name)s:%(lineno)d %(message)s"
SYSLOG_FORMAT = "whistle[%(process)d]: %(levelname)s [%(call_id)s] %(name)s:%(lineno)d %(message)s"

_QUOTED = r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^"'\s,}&]+)"""
_SECRET_PATTERNS = [
    # "Auth-Password": "x y" / 'a1-hash': 'x' / password=x
    re.compile(r"""(?i)((?:auth-password|password|a1[-_]hash|passwd|secret)["']?\s*[:=]\s*)"""
               + _QUOTED),
    # ESL "auth <password>" commands (but not "auth failed for ...")
    re.compile(r"(?i)(\bauth\s+)(?!(?:succeeded|failed|ok|error|request|rejected|for|of|by|"
               r"to|with|is|was)\b)(\S+)"),
    # URL credentials
    re.compile(r"(?i)(://[^:/@\s]+:)([^@\s]+)(@)"),
    # HTTP Authorization headers
    re.compile(r"(?i)(\bauthorization\s*[:=]\s*(?:basic|bearer)\s+)(\S+)"),
]


def _mask(match: re.Match[str]) -> str:
    value = match.group(2)
    quote = value[0] if value[:1] in ("'", '"') and len(value) > 1 else ""
    tail = match.group(3) if match.lastindex and match.lastindex >= 3 else ""
    return f"{match.group(1)}{quote}****{quote}{tail}"


def redact(text: str) -> str:
    """Mask secret-looking values in ``text``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_mask, text)
    return text


def current_call_id() -> str:
    return _call_id.get()


def set_call_id(value: str | None) -> contextvars.Token[str]:
    """Set the call id of the current context; returns the token to reset it."""
    return _call_id.set(value or DEFAULT_CALL_ID)


@contextlib.contextmanager
def call_id(value: str | None) -> Iterator[None]:
    """Tag every log line inside the block with ``value``."""
    token = _call_id.set(value or DEFAULT_CALL_ID)
    try:
        yield
    finally:
        _call_id.reset(token)


class CallIdFilter(logging.Filter):
    """Adds ``record.call_id`` and masks secrets in the rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = _call_id.get()
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not kill logging
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        return True


class RedactingFormatter(logging.Formatter):
    """Masks secrets in the whole line, tracebacks included (added after the filter)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_configured = False


def setup(level: str = "INFO", target: str = "stderr") -> None:
    """Configure the root logger once per process (later calls only change the level)."""
    global _configured
    root = logging.getLogger()
    root.setLevel(level.upper())
    if _configured:
        return
    _configured = True
    if target == "syslog":
        address = "/dev/log"
        handler: logging.Handler = logging.handlers.SysLogHandler(address=address)
        handler.setFormatter(RedactingFormatter(SYSLOG_FORMAT))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(RedactingFormatter(FORMAT))
    handler.addFilter(CallIdFilter())
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)


def get_logger(name: str) -> logging.Logger:
    """A module's logger: ``log = get_logger(__name__)``."""
    return logging.getLogger(name)
