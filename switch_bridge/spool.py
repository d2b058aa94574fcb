"""The outbox's disk spool: what the bridge must publish while RabbitMQ is unreachable.

Without a spool the outbox holds messages in memory (``WHISTLE_EVENT_BUFFER``) while the
broker is away: a long outage fills it (then drops, counted) and a bridge that dies
meanwhile loses it. With ``WHISTLE_SPOOL_DIR`` set, every message put while the outbox is
disconnected (and every one after it, while the spool is not empty, so the order holds) is
appended to a segment file on disk instead; once RabbitMQ is back the outbox reads them
back, oldest first, and deletes a segment when RabbitMQ has confirmed its last message. A
bridge that starts and finds segments left by its previous run publishes them first.

Format: segments ``<number>.spool`` of records ``4-byte big-endian length + JSON`` (body in
base64, exchange, routing key, headers, properties, kind, checkpoint mark). A segment is
rolled at :data:`SEGMENT_BYTES`. Past ``WHISTLE_SPOOL_MAX_MB`` new messages are refused
(the outbox counts them as dropped). A record torn by a crash in the middle of a write is
skipped (counted as ``corrupt``). What was already in memory when RabbitMQ went away (the
messages in flight) stays in memory, in front of the spool.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

SEGMENT_BYTES = 4 * 1024 * 1024
_LEN = struct.Struct(">I")


@dataclass
class Record:
    body: bytes
    exchange: str
    key: str
    headers: dict[str, Any] | None
    properties: dict[str, Any]
    kind: str
    mark: tuple[str, Any] | None
    #: set on the last record read from a segment: delete it once this one is confirmed
    segment_done: Path | None = None


def _encode(rec: Record) -> bytes:
    data = json.dumps({"b": base64.b64encode(rec.body).decode("ascii"), "e": rec.exchange,
                       "k": rec.key, "h": rec.headers, "p": rec.properties, "t": rec.kind,
                       "m": list(rec.mark) if rec.mark else None},
                      separators=(",", ":"), default=str).encode("utf-8")
    return _LEN.pack(len(data)) + data


def _decode(data: bytes) -> Record:
    raw = json.loads(data)
    mark = raw.get("m")
    if mark:
        key, value = mark
        mark = (key, tuple(value) if isinstance(value, list) else value)
    return Record(base64.b64decode(raw["b"]), raw["e"], raw["k"], raw.get("h"),
                  raw.get("p") or {}, raw.get("t") or "event", mark or None)


class Spool:
    """Append-only segments in ``directory`` (created), at most ``max_bytes`` in all."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.stats = {"spooled": 0, "unspooled": 0, "refused": 0, "corrupt": 0,
                      "left_by_previous_run": 0}
        segments = self._segments()
        self.bytes = sum(p.stat().st_size for p in segments)
        self.pending = sum(self._count(p) for p in segments)
        self.stats["left_by_previous_run"] = self.pending
        self._next = (int(segments[-1].stem) + 1) if segments else 1
        self._writer: Any = None
        self._writing: Path | None = None
        self._reading: Path | None = None
        self._offset = 0
        self._last_read = 0
        if self.pending:
            log.warning("spool %s: %d messages left by the previous run, published first",
                        self.dir, self.pending)

    def _segments(self) -> list[Path]:
        return sorted((p for p in self.dir.glob("*.spool") if p.stem.isdigit()),
                      key=lambda p: int(p.stem))

    def _count(self, path: Path) -> int:
        count, data, pos = 0, path.read_bytes(), 0
        while pos + 4 <= len(data):
            (size,) = _LEN.unpack_from(data, pos)
            if pos + 4 + size > len(data):
                break
            pos += 4 + size
            count += 1
        return count

    # -- writing ----------------------------------------------------------------------------
    def append(self, rec: Record) -> bool:
        """Write one record; False (counted) when the spool is full or the disk fails."""
        data = _encode(rec)
        if self.bytes + len(data) > self.max_bytes:
            self.stats["refused"] += 1
            return False
        try:
            if self._writer is None or (self._writing is not None and
                                        self._writing.stat().st_size >= SEGMENT_BYTES):
                self._roll()
            self._writer.write(data)
            self._writer.flush()
        except OSError as exc:
            self.stats["refused"] += 1
            log.error("spool %s: cannot write (%s)", self.dir, exc)
            return False
        self.bytes += len(data)
        self.pending += 1
        self.stats["spooled"] += 1
        return True

    def _roll(self) -> None:
        self._close_writer()
        self._writing = self.dir / f"{self._next:012d}.spool"
        self._next += 1
        self._writer = open(self._writing, "ab")  # noqa: SIM115 - kept open while written

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer, self._writing = None, None

    # -- reading ----------------------------------------------------------------------------
    def read(self, limit: int) -> list[Record]:
        """Up to ``limit`` records, oldest first; the last record read from a segment that
        is now finished carries ``segment_done`` (delete it once that one is confirmed)."""
        out: list[Record] = []
        while len(out) < limit and self.pending > 0:
            if self._reading is None:
                unread = [p for p in self._segments() if int(p.stem) > self._last_read]
                if not unread:
                    self.pending = 0
                    break
                self._reading, self._offset = unread[0], 0
            path = self._reading
            if path == self._writing:
                self._writer.flush()
            with open(path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
            first, pos = len(out), 0
            while pos + 4 <= len(data) and len(out) < limit:
                (size,) = _LEN.unpack_from(data, pos)
                if pos + 4 + size > len(data):
                    break
                try:
                    out.append(_decode(data[pos + 4:pos + 4 + size]))
                except (ValueError, KeyError, TypeError) as exc:
                    self.stats["corrupt"] += 1
                    log.error("spool %s: unreadable record skipped: %s", path, exc)
                pos += 4 + size
                self.pending -= 1
                self.stats["unspooled"] += 1
            self._offset += pos
            if len(out) >= limit and pos < len(data):
                break                                 # the rest of it next time
            if pos < len(data):
                self.stats["corrupt"] += 1            # a record torn by a crash
            if path == self._writing:
                self._close_writer()                  # the next write starts a new segment
            self._last_read = int(path.stem)
            self._reading, self._offset = None, 0
            if len(out) > first:
                out[-1].segment_done = path
            else:
                self.forget(path)
        self.pending = max(self.pending, 0)
        return out

    def forget(self, path: Path) -> None:
        """A segment's messages are all confirmed: delete it."""
        try:
            size = path.stat().st_size
            path.unlink()
            self.bytes = max(0, self.bytes - size)
        except OSError as exc:
            log.warning("spool %s: cannot delete %s: %s", self.dir, path.name, exc)

    def close(self) -> None:
        self._close_writer()


def size_bytes(megabytes: int) -> int:
    return max(megabytes, 1) * 1024 * 1024

