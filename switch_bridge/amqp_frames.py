"""AMQP 0-9-1 ``basic.publish`` frames, encoded in bulk for the outbox.

py-amqp builds and writes each published message on its own (one syscall, and Python
struct work per frame): at an event firehose that was half of the bridge's time. The
outbox instead encodes a batch of messages here and hands the socket one write. The frames
are exactly what py-amqp would send (method ``basic.publish``, a content header with the
properties py-amqp serializes — cached per distinct property set — and body frames split at
``frame_max``); py-amqp still owns the connection, reads the confirms and writes nothing
else on it meanwhile (no heartbeats: the outbox connects with ``heartbeat=0``).
"""

from __future__ import annotations

from struct import pack
from typing import Any

from amqp import Message

FRAME_END = b"\xce"
_BASIC = 60
_PUBLISH = 40


def _shortstr(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"AMQP short string over 255 bytes: {value[:40]!r}...")
    return bytes([len(raw)]) + raw


class PublishEncoder:
    """Encodes ``basic.publish`` messages for one channel of one connection."""

    def __init__(self, channel_id: int, frame_max: int) -> None:
        self.channel_id = channel_id
        self.chunk = frame_max - 8   # a frame's payload: frame_max minus header and end
        self._properties: dict[tuple, bytes] = {}
        self._routes: dict[tuple[str, str], bytes] = {}

    def properties(self, headers: dict[str, Any] | None, props: dict[str, Any]) -> bytes:
        """The serialized property list (flags + values), as py-amqp writes it."""
        if headers:
            return Message(b"", application_headers=headers, **props)._serialize_properties()
        key = tuple(sorted(props.items()))
        cached = self._properties.get(key)
        if cached is None:
            cached = Message(b"", **props)._serialize_properties()
            self._properties[key] = cached
        return cached

    def method(self, exchange: str, key: str) -> bytes:
        """The whole method frame of ``basic.publish`` to (exchange, key)."""
        route = (exchange, key)
        frame = self._routes.get(route)
        if frame is None:
            payload = (pack(">HHH", _BASIC, _PUBLISH, 0) + _shortstr(exchange) + _shortstr(key)
                       + b"\x00")   # mandatory = immediate = false
            frame = pack(">BHI", 1, self.channel_id, len(payload)) + payload + FRAME_END
            if len(self._routes) < 10_000:
                self._routes[route] = frame
        return frame

    def encode(self, body: bytes, exchange: str, key: str, headers: dict[str, Any] | None,
               props: dict[str, Any], out: list[bytes]) -> None:
        """Append the frames of one message to ``out``."""
        channel = self.channel_id
        out.append(self.method(exchange, key))
        header = pack(">HHQ", _BASIC, 0, len(body)) + self.properties(headers, props)
        out.append(pack(">BHI", 2, channel, len(header)))
        out.append(header)
        out.append(FRAME_END)
        for start in range(0, len(body), self.chunk):
            part = body[start:start + self.chunk]
            out.append(pack(">BHI", 3, channel, len(part)))
            out.append(part)
            out.append(FRAME_END)
