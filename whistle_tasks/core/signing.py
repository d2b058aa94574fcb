"""Signed media tokens: what a media URL carries so that it opens exactly one attachment.

A token names the account (``""``: the system-wide prompts), the document, the attachment,
what it allows (``read`` or ``write``) and until when, and is signed with HMAC-SHA256 under
the media secret. The media service trusts nothing else in a request: a token for one
account's message can never be turned into another's (the account is inside the signed
payload, and the service reads only that account's database), an expired or altered token
is refused::

    token = sign(secret, MediaGrant("a1...", "msg-1", "message.wav", "read", expires))
    grant = verify(secret, token)     # TokenError when forged, altered or expired

Form: ``<payload>.<signature>``, both unpadded base64url; the payload is compact JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass

OPERATIONS = ("read", "write")


class TokenError(ValueError):
    """A token that is malformed, forged, altered or expired (the reason says which)."""


@dataclass(frozen=True)
class MediaGrant:
    account_id: str   # "" for the system-wide prompts (database system_media)
    doc_id: str
    name: str         # the attachment
    op: str           # read | write
    expires: int      # Unix seconds
    version: str = ""  # the attachment's digest when issued: a new greeting, a new URL


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode("utf-8"), payload.encode("ascii"),
                         hashlib.sha256).digest())


def sign(secret: str, grant: MediaGrant) -> str:
    if not secret:
        raise ValueError("no media secret to sign with")
    if grant.op not in OPERATIONS:
        raise ValueError(f"media grant op must be one of {OPERATIONS}, not {grant.op!r}")
    payload = _b64(json.dumps(asdict(grant), separators=(",", ":"), sort_keys=True)
                   .encode("utf-8"))
    return f"{payload}.{_mac(secret, payload)}"


def verify(secret: str, token: str, *, now: float | None = None) -> MediaGrant:
    """The grant of a genuine, unexpired token; :class:`TokenError` otherwise."""
    if not secret:
        raise TokenError("no media secret to verify with")
    payload, dot, signature = (token or "").partition(".")
    if not dot or not payload or not signature or len(token) > 2048:
        raise TokenError("malformed token")
    if not hmac.compare_digest(_mac(secret, payload), signature):
        raise TokenError("bad signature")
    try:
        fields = json.loads(_unb64(payload))
        grant = MediaGrant(**fields)
    except (ValueError, TypeError) as exc:
        raise TokenError(f"malformed payload ({type(exc).__name__})") from None
    if grant.op not in OPERATIONS or not isinstance(grant.expires, int):
        raise TokenError("malformed payload")
    if grant.expires < (time.time() if now is None else now):
        raise TokenError("expired")
    return grant


def bucket_expiry(ttl: int, now: float | None = None) -> int:
    """An expiry at least ``ttl`` and at most ``2 * ttl`` seconds away, the same for every
    grant made within one ``ttl``-long window: the same prompt gets the same URL for a
    while, so FreeSWITCH's HTTP cache serves it without asking again."""
    ttl = max(1, int(ttl))
    now = time.time() if now is None else now
    return (int(now) // ttl + 2) * ttl
