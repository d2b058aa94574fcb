"""Sending mail through the operator's SMTP relay (``WHISTLE_SMTP_URL``), standard library only.

``smtp://[user:password@]host[:port]`` (port 25; ``?starttls=1`` upgrades the connection
first), ``smtps://...`` (TLS from the start, port 465). :func:`send` raises
:class:`TransientMailError` when trying again later may work (the relay is down, times out,
or answers 4xx) and :class:`PermanentMailError` when it will not (5xx: a refused recipient,
bad credentials), so a task knows whether to retry. Passwords never reach an error message.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from whistle_tasks.core.config import redact_url


class MailError(Exception):
    """A mail that could not be sent."""


class TransientMailError(MailError):
    """Try again later (the relay is away, busy, or answered 4xx)."""


class PermanentMailError(MailError):
    """Trying again will not help (5xx, or a relay URL that cannot work)."""


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    tls: bool          # TLS from the start (smtps)
    starttls: bool
    user: str
    password: str

    def __str__(self) -> str:
        return f"{'smtps' if self.tls else 'smtp'}://{self.host}:{self.port}"


def parse_relay(url: str) -> Relay:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise PermanentMailError(f"WHISTLE_SMTP_URL {redact_url(url)!r} is not "
                                 "smtp://host[:port] or smtps://host[:port]")
    query = parse_qs(parts.query)
    tls = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if tls else 25)
    except ValueError:
        raise PermanentMailError(f"WHISTLE_SMTP_URL {redact_url(url)!r}: bad port") from None
    return Relay(parts.hostname, port, tls,
                 query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes"),
                 unquote(parts.username or ""), unquote(parts.password or ""))


def send(message: EmailMessage, url: str, *, timeout: float = 30.0) -> None:
    """Hand ``message`` to the relay (its To/Cc headers are the recipients)."""
    relay = parse_relay(url)
    context = ssl.create_default_context()
    try:
        if relay.tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(relay.host, relay.port, timeout=timeout,
                                                    context=context)
        else:
            client = smtplib.SMTP(relay.host, relay.port, timeout=timeout)
        with client:
            if relay.starttls:
                client.starttls(context=context)
            if relay.user:
                client.login(relay.user, relay.password)
            refused = client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise _by_code(min(codes) if codes else 550,
                       f"{relay} refused every recipient: {_codes(exc.recipients)}") from None
    except smtplib.SMTPResponseException as exc:
        raise _by_code(exc.smtp_code, f"{relay} answered {exc.smtp_code} "
                                      f"{_text(exc.smtp_error)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientMailError(f"{relay}: {type(exc).__name__}: {exc}") from None
    if refused:
        raise PermanentMailError(f"{relay} refused some recipients: {_codes(refused)}")


def _by_code(code: int, message: str) -> MailError:
    return TransientMailError(message) if 400 <= code < 500 else PermanentMailError(message)


def _text(raw: bytes | str) -> str:
    return (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))[:200]


def _codes(recipients: dict) -> str:
    return ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in recipients.items())
