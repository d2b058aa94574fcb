"""A FreeSWITCH stand-in at mod_xml_curl's wire: real captured POST bodies, posted as
FreeSWITCH posts them (same headers, a new connection each time).

A test may change some fields of a real body (its realm, its user) so it can use its own
account; the body is re-encoded the way FreeSWITCH encodes (``switch_url_encode``: spaces
as ``%20``, ``. - _ / , ( ) ~ *`` left as they are), keeping every other byte and the
order of the fields.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import quote, unquote

SAFE = ".-_/,()~*"


def encode(value: str) -> str:
    return quote(value, safe=SAFE)


def rewrite(body: bytes, changes: dict[str, str]) -> bytes:
    """Replace the values of some fields of a form body, leaving the rest byte for byte;
    fields the body does not have are added at the end (as FreeSWITCH appends variables)."""
    out = []
    missing = dict(changes)
    for pair in body.split(b"&"):
        name, sep, value = pair.partition(b"=")
        key = unquote(name.decode())
        if key in changes:
            value = encode(changes[key]).encode()
            missing.pop(key, None)
        out.append(name + sep + value)
    out += [f"{encode(k)}={encode(v)}".encode() for k, v in missing.items()]
    return b"&".join(out)


def load(fixtures: Path, case: str, stem: str) -> bytes:
    """A captured body: ``load(fixtures_dir, "a_register_unregister", "xmlcurl_01_...")``."""
    return (fixtures / "modern" / case / f"{stem}.body").read_bytes()


def post(port: int, path: str, body: bytes, *, host: str = "127.0.0.1",
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST as FreeSWITCH's libcurl does; returns (status, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={
            "Host": f"{host}:{port}", "User-Agent": "freeswitch-xml/1.0", "Accept": "*/*",
            "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
