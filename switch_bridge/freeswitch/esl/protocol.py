"""FreeSWITCH event socket (ESL) wire protocol: framing, event parsing, command encoding.

Pure functions and one incremental parser; no sockets, no gevent, so every rule here is
tested byte for byte against the real captures in ``tests/fixtures/freeswitch/modern``.

Framing (``FrameParser``)
    A frame is a block of ``Name: value`` lines ended by the first empty line, then
    exactly ``Content-Length`` *bytes* of body (no ``Content-Length``: no body). Header
    order varies (events put ``Content-Length`` first, ``api/response`` puts
    ``Content-Type`` first), a JSON body is not followed by a newline, and a body is never
    read line by line. Broken input (a header line that is not ``Name: value``, a bad or
    oversized ``Content-Length``, a header block without ``Content-Type`` or without an
    end) is skipped and counted; the parser then looks for the next ``Content-Type:`` /
    ``Content-Length:`` (FreeSWITCH starts every frame with one of the two) and carries on.
    ``feed`` never raises, never loops without consuming input, and holds at most one
    header block plus one body in memory.

Events (``parse_event``)
    ``text/event-plain``: the body is itself a header block whose values are URL-encoded.
    It is split into lines *first* and each value decoded after: SDP values carry encoded
    CR/LF (``%0D%0A``) that would otherwise break the split. An event may carry its own
    ``Content-Length`` and a body after its headers (``BACKGROUND_JOB``, ``API``).
    ``text/event-json``: one JSON object, read with ``object_pairs_hook`` so repeated keys
    survive; ``_body`` is the body; array values are multi-values.

    Both formats give the same ``Event``: every value is a ``str``; a multi-value is the
    FreeSWITCH string ``ARRAY::a|:b`` (JSON arrays are turned into it), and
    :meth:`Event.get_list` splits it. Repeated headers are all kept (``get_all``).

Speed (the bridge must take well over 10,000 events/s on two cores; events are 2-15 KB
with ~150 headers): no per-line Python code on the hot path. A plain event is split with
``map(str.partition)`` + ``zip`` and all its values are percent-decoded in one
``binascii.a2b_qp`` call (``%XX`` becomes ``=XX``, which is quoted-printable), all in C.
That shortcut is used only when it provably equals ``urllib.parse.unquote`` per value (no
``=``, CR or LF in the values, every ``%`` decoded as an escape, no NUL decoded);
anything else takes the per-value ``unquote`` path, the reference. A JSON event goes
through one prebuilt C decoder and its pairs straight into ``dict``. Measured with
``bench/esl_parse.py`` on the real captures.

Commands (``auth`` ... ``exit``)
    Return the exact bytes to write. A value containing CR, LF or NUL would end an ESL
    header line early and let the rest of the value be read as further headers or as a
    whole new command (header/command injection). Such values raise ``ValueError``, except
    a ``sendmsg`` application argument, which then travels as a body
    (``content-type: text/plain`` + ``content-length``), the form FreeSWITCH reads an
    ``execute`` argument from when ``execute-app-arg`` is absent (``switch_ivr_parse_event``).
"""

from __future__ import annotations

import binascii
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from urllib.parse import unquote

import orjson

__all__ = [
    "EVENT_FORMATS",
    "UNDEF",
    "Event",
    "EventParseError",
    "Frame",
    "FrameParser",
    "api",
    "auth",
    "bgapi",
    "decode_values",
    "events",
    "exit_",
    "filter_",
    "iter_frames",
    "linger",
    "myevents",
    "nixevent",
    "noevents",
    "parse_event",
    "parse_json_body",
    "parse_plain_body",
    "sendevent",
    "sendmsg",
]

UNDEF = "_undef_"
ARRAY_PREFIX = "ARRAY::"
ARRAY_SEP = "|:"
EVENT_FORMATS = ("plain", "json")

DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024

# End of an outer header block: an empty line; a CR before either LF is tolerated.
_HEADER_END = re.compile(rb"\n\r?\n")
# Where FreeSWITCH frames start: used to find our footing again after broken input.
_FRAME_START = re.compile(rb"Content-(?:Type|Length): ")
_FRAME_START_MAXLEN = len(b"Content-Length: ")
# The outer header block of nearly every event frame, parsed in one regex match.
_EVENT_HEAD = re.compile(rb"Content-Length: (\d{1,12})\nContent-Type: (text/event-(?:json|plain))")
# An outer header name: an RFC 7230 token. Rejects JSON left-overs such as `{"Event-Name"`.
_HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What must never reach the wire inside one header line or command line.
_LINE_BREAKERS = re.compile(r"[\r\n\x00]")
_WHITESPACE = re.compile(r"[\s\x00]")


class EventParseError(ValueError):
    """An event frame whose body is not a valid plain or JSON event."""


# --------------------------------------------------------------------------- framing


class Frame:
    """One ESL message: its outer headers and its body bytes.

    ``headers`` maps each header name to its first value; ``header_list`` keeps every
    ``(name, value)`` pair in wire order. Outer header values are not URL-encoded on an
    inbound connection and are kept exactly as received.
    """

    __slots__ = ("headers", "header_list", "body")

    def __init__(self, header_list: list[tuple[str, str]], body: bytes = b"") -> None:
        self.header_list = header_list
        headers: dict[str, str] = {}
        for name, value in header_list:
            headers.setdefault(name, value)
        self.headers = headers
        self.body = body

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self.header_list if n == name]

    @property
    def body_text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def to_bytes(self) -> bytes:
        """The frame as FreeSWITCH would write it (headers in their original order)."""
        head = "".join(f"{n}: {v}\n" for n, v in self.header_list).encode("utf-8")
        return head + b"\n" + self.body

    def __repr__(self) -> str:
        return f"<Frame {self.content_type or '?'} body={len(self.body)}B>"


class FrameParser:
    """Incremental ESL framer: ``feed(bytes)`` returns the complete frames so far.

    Errors are counted in ``errors`` and described (most recent ``keep_errors``) in
    ``error_log``; ``on_error`` is called with each description. ``skipped_bytes``
    counts bytes dropped while resynchronising.
    """

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_error: Callable[[str], None] | None = None,
        keep_errors: int = 50,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.on_error = on_error
        self.errors = 0
        self.frames = 0
        self.skipped_bytes = 0
        self.error_log: deque[str] = deque(maxlen=keep_errors)
        self._buf = bytearray()
        self._pending: tuple[list[tuple[str, str]], int] | None = None  # headers, body length
        self._scanned = 0  # bytes of the current header block already searched for its end
        self._resync = False

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (a new connection starts clean)."""
        self._buf.clear()
        self._pending = None
        self._scanned = 0
        self._resync = False

    def _error(self, message: str) -> None:
        self.errors += 1
        self.error_log.append(message)
        if self.on_error is not None:
            try:
                self.on_error(message)
            except Exception:  # noqa: BLE001, S110 - a faulty callback must not break framing
                pass

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        out: list[Frame] = []
        pos = 0
        size = len(buf)
        known_end: re.Match[bytes] | None = None  # last header end found in this call
        while pos < size:
            if self._resync:
                match = _FRAME_START.search(buf, pos)
                if match is None:
                    # keep a tail that may be the beginning of a split marker
                    keep_from = max(pos, size - (_FRAME_START_MAXLEN - 1))
                    self.skipped_bytes += keep_from - pos
                    pos = keep_from
                    break
                self.skipped_bytes += match.start() - pos
                pos = match.start()
                self._resync = False

            if self._pending is not None:
                header_list, length = self._pending
                if size - pos < length:
                    break
                body = bytes(buf[pos:pos + length])
                pos += length
                self._pending = None
                self.frames += 1
                out.append(Frame(header_list, body))
                continue

            # blank lines between frames are harmless
            while pos < size and buf[pos] in (10, 13):
                pos += 1
            if pos >= size:
                break

            search_from = pos + max(0, self._scanned - 2)
            if known_end is not None and known_end.start() >= search_from:
                match = known_end  # resynchronising inside a block already measured
            else:
                match = known_end = _HEADER_END.search(buf, search_from)
            if match is None or match.start() - pos > self.max_header_bytes:
                if size - pos > self.max_header_bytes:
                    self._error(f"header block longer than {self.max_header_bytes} bytes "
                                "without an empty line")
                    self._scanned = 0
                    self._resync = True
                    # a frame starting before this point could not fit the limit either
                    limit_from = (size if match is None else match.start())
                    pos = max(pos + 1, limit_from - self.max_header_bytes)
                    continue
                self._scanned = size - pos
                break
            self._scanned = 0
            block_end = match.end()
            pos = self._parse_block(buf, pos, match.start(), block_end, out)
        if pos:
            del buf[:pos]
        return out

    def _parse_block(
        self, buf: bytearray, start: int, end: int, block_end: int, out: list[Frame]
    ) -> int:
        """Parse the header block ``buf[start:end]``; returns where parsing continues.

        A frame without body goes straight to ``out``; one with a body becomes pending.
        """
        block = bytes(buf[start:end])
        common = _EVENT_HEAD.fullmatch(block)
        if common is not None and 0 < int(common[1]) <= self.max_body_bytes:
            self._pending = ([("Content-Length", common[1].decode()),
                              ("Content-Type", common[2].decode())], int(common[1]))
            return block_end
        header_list: list[tuple[str, str]] = []
        line_start = 0
        block_len = len(block)
        while line_start < block_len:  # line by line, so a bad line stops the work there
            line_end = block.find(b"\n", line_start)
            if line_end < 0:
                line_end = block_len
            line = block[line_start:line_end]
            if line.endswith(b"\r"):
                line = line[:-1]
            name, sep, value = line.partition(b":")
            if not sep or not _HEADER_NAME.fullmatch(name):
                self._error(f"malformed header line {_preview(line)}")
                self._resync = True
                return start + line_start + 1
            if value.startswith(b" "):
                value = value[1:]
            header_list.append((name.decode("ascii"), value.decode("utf-8", "replace")))
            line_start = line_end + 1

        content_type = content_length = None
        for name, value in header_list:
            if name == "Content-Type" and content_type is None:
                content_type = value
            elif name == "Content-Length" and content_length is None:
                content_length = value
        if content_type is None:
            self._error("frame without Content-Type")
            self._resync = True
            return block_end
        length = 0
        if content_length is not None:
            if not content_length.isascii() or not content_length.isdigit():
                self._error(f"bad Content-Length {content_length[:40]!r} ({content_type})")
                self._resync = True
                return block_end
            length = int(content_length)
            if length > self.max_body_bytes:
                self._error(f"Content-Length {length} over the {self.max_body_bytes}-byte "
                            f"limit ({content_type})")
                self._resync = True
                return block_end
        if length:
            self._pending = (header_list, length)
        else:
            self.frames += 1
            out.append(Frame(header_list))
        return block_end


def _preview(line: bytes, limit: int = 60) -> str:
    text = line[:limit].decode("utf-8", "replace")
    return repr(text) + ("..." if len(line) > limit else "")


def iter_frames(data: bytes, parser: FrameParser | None = None) -> Iterator[Frame]:
    """All frames of a complete byte string (a capture file)."""
    yield from (parser or FrameParser()).feed(data)


# --------------------------------------------------------------------------- events


class Event:
    """A FreeSWITCH event: ordered headers (repeats kept) and an optional body.

    ``headers`` is a plain dict of the *first* value of each name (decoded). Values equal
    to ``_undef_`` (FreeSWITCH's "empty") are kept there as sent; ``get`` turns them into
    its default.
    """

    __slots__ = ("_pairs", "headers", "body")

    def __init__(self, pairs: Iterable[tuple[str, str]] | None, body: str = "",
                 headers: dict[str, str] | None = None) -> None:
        """``pairs``: every (name, value) in wire order; ``headers`` when already built.
        ``pairs=None`` with ``headers``: no name repeats, the pairs are the headers' items
        (made only if asked for)."""
        if pairs is None and headers is not None:
            self._pairs: list[tuple[str, str]] | None = None
            self.headers = headers
            self.body = body
            return
        pairs = pairs if isinstance(pairs, list) else list(pairs or ())
        if headers is None:
            headers = dict(pairs)
        if len(headers) != len(pairs):  # a repeated name: keep its first value
            headers = {}
            for name, value in pairs:
                headers.setdefault(name, value)
        self._pairs = pairs
        self.headers = headers
        self.body = body

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], body: str = "") -> Event:
        return cls(list(pairs), body)

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    @property
    def subclass(self) -> str | None:
        return self.get("Event-Subclass")

    @property
    def uuid(self) -> str | None:
        return self.get("Unique-ID")

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.headers.get(name)
        if value is None or value == UNDEF:
            return default
        return value

    def get_all(self, name: str) -> list[str]:
        if self._pairs is None:
            return [self.headers[name]] if name in self.headers else []
        return [v for n, v in self._pairs if n == name]

    def get_list(self, name: str) -> list[str]:
        """A multi-value header as a list (``ARRAY::a|:b`` → ``["a", "b"]``)."""
        value = self.get(name)
        if value is None:
            return []
        if value.startswith(ARRAY_PREFIX):
            return value[len(ARRAY_PREFIX):].split(ARRAY_SEP)
        return [value]

    def items(self) -> list[tuple[str, str]]:
        return list(self.headers.items()) if self._pairs is None else list(self._pairs)

    def __contains__(self, name: object) -> bool:
        return name in self.headers

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def __len__(self) -> int:
        return len(self.headers) if self._pairs is None else len(self._pairs)

    def __repr__(self) -> str:
        label = self.name + (f" {self.subclass}" if self.subclass else "")
        return f"<Event {label} seq={self.headers.get('Event-Sequence')} uuid={self.uuid}>"


def parse_event(frame: Frame) -> Event | None:
    """The event carried by ``frame``; ``None`` for frames that are not events.

    Raises ``EventParseError`` for an event frame whose body cannot be read.
    """
    content_type = frame.content_type
    if content_type == "text/event-json":
        return parse_json_body(frame.body)
    if content_type == "text/event-plain":
        return parse_plain_body(frame.body)
    return None


def parse_plain_body(body: bytes) -> Event:
    """A ``text/event-plain`` body: URL-encoded header block, then an optional body."""
    end = body.find(b"\n\n")
    if end < 0:
        block, rest = body.rstrip(b"\r\n"), b""
    else:
        block, rest = body[:end], body[end + 2:]
    try:
        text = block.decode("ascii")
    except UnicodeDecodeError:
        text = block.decode("utf-8", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    split = _split_fast(text) or _split_slow(text)
    if split is None:
        raise EventParseError("text/event-plain body has no header lines")
    names, raw_values = split
    values = decode_values(raw_values)
    event_body = ""
    if "Content-Length" in names:
        raw_length = values[names.index("Content-Length")]
        if not raw_length.isascii() or not raw_length.isdigit():
            raise EventParseError(f"event with a bad inner Content-Length {raw_length[:40]!r}")
        event_body = rest[:int(raw_length)].decode("utf-8", "replace")
    event = Event(list(zip(names, values, strict=True)), event_body)
    if "Event-Name" not in event.headers:
        raise EventParseError("text/event-plain body without Event-Name")
    return event


def _split_fast(text: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Split ``Name: value`` lines at their first ``": "``, in C (``map`` + ``zip``).

    Returns None when some line has no ``": "`` (never the case in FreeSWITCH output);
    the slow path then skips such lines.
    """
    names, seps, values = zip(*map(str.partition, text.split("\n"), repeat(": ")),
                              strict=True)
    if "" in seps:
        return None
    return names, values


def _split_slow(text: str) -> tuple[list[str], list[str]] | None:
    """Line by line, skipping lines that are not ``Name: value`` (hand-decoded dumps)."""
    names: list[str] = []
    values: list[str] = []
    for line in text.split("\n"):
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name:
            continue  # not a header line (e.g. a hand-decoded multi-line value)
        names.append(name)
        values.append(value[1:] if value.startswith(" ") else value)
    if not names:
        return None
    return names, values


def decode_values(values: Sequence[str]) -> Sequence[str]:
    """``urllib.parse.unquote`` of each value (UTF-8, invalid bytes replaced), fast.

    The shortcut joins the values with NUL and decodes them in one ``a2b_qp`` call. It is
    used only when provably equal to ``unquote``: no ``=``, CR or LF in the input (so
    ``a2b_qp`` sees nothing but our escapes), every ``%`` decoded as an escape (the
    output is exactly two characters shorter per ``%``), and no NUL decoded (the split
    gives back as many values as went in).
    """
    joined = "\x00".join(values)
    escapes = joined.count("%")
    if not escapes:
        return values
    if "=" not in joined and "\r" not in joined and "\n" not in joined:
        try:
            raw = binascii.a2b_qp(joined.replace("%", "="))
        except ValueError:  # non-ASCII text: take the reference path
            raw = None
        if raw is not None and len(raw) == len(joined) - 2 * escapes:
            decoded = raw.decode("utf-8", "replace").split("\x00")
            if len(decoded) == len(values):
                return decoded
    return [unquote(v) if "%" in v else v for v in values]


class _Pairs(list):
    """A JSON object as its (key, value) pairs (keeps repeated keys)."""

    __slots__ = ()


def _pairs_hook(pairs: list[tuple[str, object]]) -> _Pairs:
    return _Pairs(pairs)


# Built once: ``json.loads`` with a hook builds a new decoder (and scanner) on every call.
_JSON_DECODER = json.JSONDecoder(object_pairs_hook=_pairs_hook)


def _fast_json(body: bytes | str) -> Event | None:
    """The common case at C speed: ``orjson`` (3x the standard decoder on FreeSWITCH's
    5 KB events), used only when it provably loses nothing.

    orjson keeps the last of repeated keys; the standard decoder keeps them all. In
    FreeSWITCH's unformatted JSON every key is followed by ``":``, and a ``"`` inside a
    value is escaped, so the count of ``":`` is the number of pairs plus any ``\":`` inside
    values: when it equals the number of keys orjson found, no key repeats. Anything else
    (a repeated key, an odd value, arrays, a lone surrogate orjson refuses) goes to
    the full decoder.
    """
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        headers = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(headers) is not dict:
        return None
    if raw.count(b'":') != len(headers):
        return None  # a repeated key (CODEC, HANGUP_COMPLETE): the full decoder keeps both
    event_body = headers.pop("_body", "")
    if type(event_body) is not str:
        return None
    # arrays (multi-values) need the ARRAY:: text of the full path; without "[" there are none
    if b"[" in raw and set(map(type, headers.values())) != {str}:
        return None
    if "Event-Name" not in headers:
        raise EventParseError("text/event-json body without Event-Name")
    return Event(None, event_body, headers)


def parse_json_body(body: bytes | str) -> Event:
    """A ``text/event-json`` body: one object; repeated keys kept; ``_body`` is the body."""
    fast = _fast_json(body)
    if fast is not None:
        return fast
    try:
        text = body if isinstance(body, str) else body.decode("utf-8", "replace")
        pairs = _JSON_DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise EventParseError(f"text/event-json body is not JSON: {exc}") from None
    if not isinstance(pairs, _Pairs) or not pairs:
        raise EventParseError("text/event-json body is not a non-empty JSON object")
    headers = dict(pairs)
    event_body = ""
    if "_body" in headers:
        event_body = _as_text(headers.pop("_body"))
        pairs = _Pairs(p for p in pairs if p[0] != "_body")
    # FreeSWITCH writes strings, and arrays for multi-values ("[" is then in the text);
    # with repeated keys ``headers`` holds only the last values, so look at all of them
    if "[" in text or len(headers) != len(pairs) or set(map(type, headers.values())) != {str}:
        pairs = _Pairs((k, v if type(v) is str else _as_text(v)) for k, v in pairs)
        headers = None
    event = Event(pairs, event_body, headers)
    if "Event-Name" not in event.headers:
        raise EventParseError("text/event-json body without Event-Name")
    return event


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, _Pairs):  # a nested object: keep it as compact JSON
        return "{" + ",".join(f"{json.dumps(k)}:{_nested_json(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return ARRAY_PREFIX + ARRAY_SEP.join(_as_text(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _nested_json(value: object) -> str:
    if isinstance(value, _Pairs):
        return _as_text(value)
    if isinstance(value, list):
        return "[" + ",".join(_nested_json(v) for v in value) + "]"
    return json.dumps(value, separators=(",", ":"))


# --------------------------------------------------------------------------- commands


def _checked(value: str, what: str, *, token: bool = False) -> str:
    """Refuse values that would break out of one ESL line (header/command injection)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} is empty")
    if _LINE_BREAKERS.search(value):
        raise ValueError(f"{what} contains CR, LF or NUL (would inject ESL headers)")
    if token and _WHITESPACE.search(value):
        raise ValueError(f"{what} contains whitespace")
    return value


def _encode(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def auth(password: str) -> bytes:
    """``auth <password>``. The error for a bad password never quotes the password."""
    if not isinstance(password, str) or not password or _LINE_BREAKERS.search(password):
        raise ValueError("ESL password is empty or contains CR, LF or NUL")
    return _encode(f"auth {password}")


def events(fmt: str, names: Iterable[str]) -> bytes:
    """``events <fmt> <names...>`` (``CUSTOM`` followed by subclasses, ``ALL``, ...)."""
    if fmt not in (*EVENT_FORMATS, "xml"):
        raise ValueError(f"event format must be plain, json or xml, not {fmt!r}")
    listed = [_checked(n, "event name", token=True) for n in names]
    if not listed:
        raise ValueError("no event names to subscribe to")
    return _encode(f"events {fmt} {' '.join(listed)}")


def nixevent(names: Iterable[str]) -> bytes:
    listed = [_checked(n, "event name", token=True) for n in names]
    if not listed:
        raise ValueError("no event names to unsubscribe")
    return _encode(f"nixevent {' '.join(listed)}")


def noevents() -> bytes:
    return _encode("noevents")


def filter_(header: str, value: str) -> bytes:
    """``filter <header> <value>`` (a value starting with ``/`` is a regex)."""
    return _encode(f"filter {_checked(header, 'filter header', token=True)} "
                   f"{_checked(value, 'filter value')}")


def myevents(uuid: str, fmt: str = "plain") -> bytes:
    if fmt not in (*EVENT_FORMATS, "xml"):
        raise ValueError(f"event format must be plain, json or xml, not {fmt!r}")
    return _encode(f"myevents {_checked(uuid, 'uuid', token=True)} {fmt}")


def linger(seconds: int | None = None) -> bytes:
    return _encode("linger" if seconds is None else f"linger {int(seconds)}")


def exit_() -> bytes:
    return _encode("exit")


def api(cmd: str) -> bytes:
    """``api <cmd>``: blocks the connection until FreeSWITCH answers ``api/response``."""
    return _encode(f"api {_checked(cmd, 'api command')}")


def bgapi(cmd: str, job_uuid: str | None = None) -> bytes:
    """``bgapi <cmd>``, with our own ``Job-UUID`` when given (echoed by BACKGROUND_JOB)."""
    lines = [f"bgapi {_checked(cmd, 'bgapi command')}"]
    if job_uuid is not None:
        lines.append(f"Job-UUID: {_checked(job_uuid, 'Job-UUID', token=True)}")
    return _encode(*lines)


def sendevent(name: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """``sendevent <NAME>`` with the event's headers (their values taken as written: no
    decoding, so each must be one line)."""
    lines = [f"sendevent {_checked(name, 'event name', token=True)}"]
    for header, value in headers:
        lines.append(f"{_checked(header, 'event header', token=True)}: "
                     f"{_checked(str(value), f'value of {header}')}")
    return _encode(*lines)


def sendmsg(
    uuid: str,
    app: str,
    arg: str | None = None,
    *,
    event_uuid: str | None = None,
    event_lock: bool = False,
    loops: int | None = None,
) -> bytes:
    """``sendmsg <uuid>`` with ``call-command: execute``.

    An ``arg`` with CR or LF (or leading/trailing blanks, which FreeSWITCH would trim from
    a header) is sent as a ``text/plain`` body instead of an ``execute-app-arg`` header.
    NUL anywhere raises ``ValueError`` (FreeSWITCH would truncate the argument there).
    """
    lines = [
        f"sendmsg {_checked(uuid, 'uuid', token=True)}",
        "call-command: execute",
        f"execute-app-name: {_checked(app, 'application name', token=True)}",
    ]
    body = b""
    if arg is not None:
        if not isinstance(arg, str):
            raise TypeError(f"application argument must be a str, not {type(arg).__name__}")
        if "\x00" in arg:
            raise ValueError("application argument contains NUL")
        if "\r" in arg or "\n" in arg or arg != arg.strip(" \t"):
            body = arg.encode("utf-8")
        elif arg:
            lines.append(f"execute-app-arg: {arg}")
    if loops is not None:
        lines.append(f"loops: {int(loops)}")
    if event_lock:
        lines.append("event-lock: true")
    if event_uuid is not None:
        lines.append(f"event-uuid: {_checked(event_uuid, 'event-uuid', token=True)}")
    if body:
        lines.append("content-type: text/plain")
        lines.append(f"content-length: {len(body)}")
        return _encode(*lines) + body
    return _encode(*lines)
