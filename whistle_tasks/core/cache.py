"""The two-tier TTL cache of the registrar, the router and the bridge.

Tier 1 is this process's own dictionary: a hit costs a dict look-up and a clock read
(well under a microsecond), so an auth storm of re-registering phones costs no I/O at all.
Tier 2 is Redis, shared by every process: what one worker loaded from CouchDB the others
find there (one round trip) instead of asking CouchDB again. A value found in Redis is
copied into the local tier for at most what Redis has left of its TTL, so no process keeps
an entry longer than the process that set it asked for.

Redis is an optimisation, never a dependency: when it is stopped, refuses connections or
times out, the cache carries on with the local tier alone. The first failure logs ONE
warning for the whole process (per Redis URL, whatever the number of caches), each failed
call is counted in ``stats["redis_errors"]``, and for ``RETRY_INTERVAL_S`` after a failure
Redis is not tried at all (``stats["redis_skipped"]``), so an outage does not add a
connect timeout to every call. The first call after that interval tries again; when it
works, one info line says Redis is back.

Values are stored in Redis as JSON (``SET whistle:<namespace>:<key> <json> EX <ttl>``).
To keep both tiers identical, a shared cache keeps locally the JSON round trip of what it
stores (tuples become lists, int dict keys become strings); a value that JSON cannot
encode raises ``TypeError``/``ValueError`` at ``set`` (a programming error). Values
returned are shared with the cache: treat them as read-only. A ``shared=False`` cache
keeps values as they are.

Local eviction is FIFO by last write (an ``OrderedDict`` popped from the front), which is
O(1) and keeps a hit free of bookkeeping; with one TTL per cache the oldest write is also
the first to expire. Expired entries are dropped when met.

Safe under threads and gevent: reads are single dict operations (atomic under the GIL),
writes take a lock (gevent's when monkey-patched), and the Redis client is created lazily
per process (recreated after ``fork``) with redis-py's thread-safe connection pool. In a
gevent process, monkey-patch before the first call so sockets yield. ``stats`` counters
are best-effort under threads (an increment may rarely be lost), good enough for metrics.

:class:`VersionedHashes` is the other shape, for data written by many processes at once
(registrations): one Redis hash per key whose fields keep their newest version, compared
and written atomically by a Lua script, with the same outage handling.

:class:`BatchedLoader` is for what misses both tiers: the keys that a process's threads
miss at the same time are read from the system of record together, in one multi-key read
(a group commit: no timer; a lone miss is read at once).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from whistle_tasks.core.config import redact_url, settings
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

KEY_PREFIX = "whistle"
RETRY_INTERVAL_S = 1.0
CONNECT_TIMEOUT_S = 0.5
OP_TIMEOUT_S = 1.0
_SCAN_COUNT = 1000
_DELETE_BATCH = 500
_REDIS_SCHEMES = ("redis", "rediss", "unix")


class _Missing:
    """The type of ``MISSING``: "no value", distinct from a cached ``None``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_now = time.monotonic


class _Link:
    """One Redis URL in this process: its client (connection pool) and its outage state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pid = os.getpid()
        # retries=0: a retry loop in the client would multiply an outage's cost per call.
        # A pooled socket that the server closed (Redis restarted) needs no retry: the
        # pool checks a connection when handing it out and reconnects a dead one.
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=OP_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self.down_until = 0.0
        self.outage_since: float | None = None
        self.outage_errors = 0
        self._lock = threading.Lock()

    def available(self) -> bool:
        return self.down_until == 0.0 or _now() >= self.down_until

    def failed(self, exc: BaseException, command: str) -> None:
        with self._lock:
            now = _now()
            self.down_until = now + RETRY_INTERVAL_S
            first = self.outage_since is None
            if first:
                self.outage_since = now
            self.outage_errors += 1
        if first:
            log.warning("redis %s unavailable (%s: %s: %s); caching in this process only, "
                        "retrying every %.1f s", redact_url(self.url), command,
                        type(exc).__name__, exc, RETRY_INTERVAL_S)

    def succeeded(self) -> None:
        if self.outage_since is None and self.down_until == 0.0:
            return
        with self._lock:
            since, errors = self.outage_since, self.outage_errors
            self.down_until, self.outage_since, self.outage_errors = 0.0, None, 0
        if since is not None:
            log.info("redis %s is back after %.1f s (%d failed calls)",
                     redact_url(self.url), _now() - since, errors)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001, S110 - closing a dead link must not raise
            pass


_links: dict[str, _Link] = {}
_links_lock = threading.Lock()


def _link_for(url: str) -> _Link:
    link = _links.get(url)
    if link is None or link.pid != os.getpid():
        with _links_lock:
            link = _links.get(url)
            if link is None or link.pid != os.getpid():
                link = _links[url] = _Link(url)
    return link


def _after_fork_in_child() -> None:
    """A forked child must not use its parent's sockets, locks or outage state."""
    global _links, _links_lock
    _links = {}
    _links_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def reset_connections() -> None:
    """Close this process's Redis connections and forget outage state (tests, reloads)."""
    with _links_lock:
        links = list(_links.values())
        _links.clear()
    for link in links:
        link.close()


def _glob_escape(text: str) -> str:
    """``text`` matched literally by Redis's glob (``SCAN MATCH``)."""
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


def _expiry(ttl: float) -> dict[str, int]:
    if isinstance(ttl, int):
        return {"ex": ttl}
    return {"px": max(1, int(ttl * 1000))}


class Cache:
    """A namespaced two-tier cache; see the module docstring.

    ``ttl`` (seconds, default ``settings.cache_ttl``) is how long an entry lives in both
    tiers; ``local_ttl`` caps its life in the local tier (default: ``ttl``);
    ``local_size`` bounds the local tier (default ``settings.local_cache_size``).
    ``shared=False`` (or an empty ``redis_url``) makes a process-local cache.
    """

    def __init__(self, namespace: str, ttl: float | None = None, redis_url: str | None = None,
                 local_ttl: float | None = None, local_size: int | None = None,
                 shared: bool = True) -> None:
        if not namespace or not isinstance(namespace, str):
            raise ValueError(f"a cache needs a non-empty namespace, got {namespace!r}")
        self.namespace = namespace
        self.ttl = self._check_ttl(settings.cache_ttl if ttl is None else ttl)
        self.local_ttl = self._check_ttl(self.ttl if local_ttl is None else local_ttl)
        self.local_size = settings.local_cache_size if local_size is None else local_size
        if not isinstance(self.local_size, int) or self.local_size < 1:
            raise ValueError(f"local_size must be a positive int, got {self.local_size!r}")
        url = (settings.redis_url if redis_url is None else redis_url) if shared else ""
        if url and urlsplit(url).scheme not in _REDIS_SCHEMES:
            raise ValueError(f"not a Redis URL: {redact_url(url)!r}")
        self.redis_url = url
        self.shared = bool(url)
        self._prefix = f"{KEY_PREFIX}:{namespace}:"
        self._local: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._write_lock = threading.Lock()
        self._inflight: dict[str, list[Any]] = {}  # key -> [lock, waiters]
        self._inflight_lock = threading.Lock()
        self.stats: dict[str, int] = {
            "hits_local": 0, "hits_shared": 0, "misses": 0, "redis_errors": 0,
            "redis_skipped": 0, "evictions": 0, "decode_errors": 0,
        }

    def __repr__(self) -> str:
        where = redact_url(self.redis_url) if self.shared else "local only"
        return f"Cache({self.namespace!r}, ttl={self.ttl}, {where}, {len(self._local)} local)"

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str, default: Any = MISSING) -> Any:
        """The value of ``key``: local tier, then Redis (copied to the local tier)."""
        entry = self._local.get(key)
        if entry is not None:
            if entry[0] > _now():
                self.stats["hits_local"] += 1
                return entry[1]
            self._drop_expired(key, entry)
        if self.shared:
            value = self._get_shared(key)
            if value is not MISSING:
                self.stats["hits_shared"] += 1
                return value
        self.stats["misses"] += 1
        return default

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The cached values among ``keys`` (absent keys are left out); one Redis round
        trip (``MGET``) for all the local misses."""
        found: dict[str, Any] = {}
        wanted: list[str] = []
        now = _now()
        for key in keys:
            entry = self._local.get(key)
            if entry is not None and entry[0] > now:
                found[key] = entry[1]
                self.stats["hits_local"] += 1
            elif key not in found:
                wanted.append(key)
        wanted = list(dict.fromkeys(wanted))
        if wanted and self.shared:
            rkeys = [self._rkey(key) for key in wanted]

            def mget(client: redis.Redis) -> list[Any]:
                pipe = client.pipeline(transaction=False)
                pipe.mget(rkeys)
                for rkey in rkeys:
                    pipe.pttl(rkey)
                return pipe.execute()

            replies = self._call("MGET", mget)
            if replies is not MISSING:
                raws, pttls = replies[0], replies[1:]
                for key, raw, pttl in zip(wanted, raws, pttls, strict=True):
                    value = self._promote(key, raw, pttl)
                    if value is not MISSING:
                        found[key] = value
                        self.stats["hits_shared"] += 1
        self.stats["misses"] += sum(1 for key in wanted if key not in found)
        return found

    def get_or_load(self, key: str, loader: Callable[[], Any], ttl: float | None = None) -> Any:
        """The cached value, or ``loader()``'s result, cached (unless it is ``MISSING``).

        Concurrent callers for the same key in this process wait for one loader instead of
        all calling it (an auth storm must not become a CouchDB storm). If the loader
        raises, the exception propagates and nothing is cached.
        """
        value = self.get(key)
        if value is not MISSING:
            return value
        with self._inflight_lock:
            slot = self._inflight.get(key)
            if slot is None:
                slot = self._inflight[key] = [threading.Lock(), 0]
            slot[1] += 1
        try:
            with slot[0]:
                entry = self._local.get(key)  # loaded by the caller we waited for?
                if entry is not None and entry[0] > _now():
                    return entry[1]
                value = loader()
                if value is not MISSING:
                    value = self._set(key, value, ttl)
                return value
        finally:
            with self._inflight_lock:
                slot[1] -= 1
                if slot[1] == 0:
                    self._inflight.pop(key, None)

    # -- writes --------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` in both tiers for ``ttl`` seconds (default: the cache's)."""
        self._set(key, value, ttl)

    def set_many(self, items: dict[str, Any], ttl: float | None = None) -> None:
        """Store several values in both tiers; one pipelined Redis round trip."""
        ttl = self._check_ttl(self.ttl if ttl is None else ttl)
        if not self.shared:
            for key, value in items.items():
                self._store_local(key, value, min(ttl, self.local_ttl))
            return
        encoded = {key: self._encode(value) for key, value in items.items()}
        for key, raw in encoded.items():
            self._store_local(key, json.loads(raw), min(ttl, self.local_ttl))
        if not encoded:
            return

        def pipelined_set(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key, raw in encoded.items():
                pipe.set(self._rkey(key), raw, **_expiry(ttl))
            return pipe.execute()

        self._call("SET", pipelined_set)

    def delete(self, key: str) -> None:
        """Remove ``key`` from both tiers (other processes' local tiers keep theirs until
        they expire or a change broadcast makes them call ``delete_local``)."""
        self._local.pop(key, None)
        if self.shared:
            rkey = self._rkey(key)
            self._call("DEL", lambda client: client.delete(rkey))

    def delete_local(self, key: str) -> None:
        """Remove ``key`` from this process's tier only (on a change broadcast)."""
        self._local.pop(key, None)

    def clear_local(self) -> None:
        """Empty this process's tier."""
        with self._write_lock:
            self._local.clear()

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` from both tiers (``SCAN MATCH``).

        Returns the number of distinct keys removed from either tier (0 for a prefix that
        matched nothing). Meant for flushes, not for the hot path.
        """
        removed: set[str] = set()
        with self._write_lock:
            for key in [k for k in self._local if isinstance(k, str) and k.startswith(prefix)]:
                self._local.pop(key, None)
                removed.add(key)
        if self.shared:
            pattern = _glob_escape(self._prefix + prefix) + "*"
            cut = len(self._prefix.encode())

            def scan_and_delete(client: redis.Redis) -> list[bytes]:
                deleted: list[bytes] = []
                batch: list[bytes] = []
                for rkey in client.scan_iter(match=pattern, count=_SCAN_COUNT):
                    batch.append(rkey)
                    if len(batch) >= _DELETE_BATCH:
                        client.delete(*batch)
                        deleted.extend(batch)
                        batch = []
                if batch:
                    client.delete(*batch)
                    deleted.extend(batch)
                return deleted

            deleted = self._call("SCAN", scan_and_delete)
            if deleted is not MISSING:
                removed.update(rkey[cut:].decode("utf-8", "surrogatepass") for rkey in deleted)
        return len(removed)

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _check_ttl(ttl: Any) -> float:
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
            raise ValueError(f"a cache TTL must be a positive number of seconds, got {ttl!r}")
        return ttl

    def _rkey(self, key: str) -> bytes:
        if not isinstance(key, str):
            raise TypeError(f"cache keys are str, not {type(key).__name__}: {key!r}")
        return (self._prefix + key).encode("utf-8", "surrogatepass")

    @staticmethod
    def _encode(value: Any) -> str:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"cannot cache a value JSON cannot encode: {exc}") from None

    def _set(self, key: str, value: Any, ttl: float | None) -> Any:
        """Store in both tiers; returns the value as the local tier now holds it."""
        ttl = self._check_ttl(self.ttl if ttl is None else ttl)
        if not self.shared:
            self._store_local(key, value, min(ttl, self.local_ttl))
            return value
        rkey = self._rkey(key)
        raw = self._encode(value)
        value = json.loads(raw)
        self._store_local(key, value, min(ttl, self.local_ttl))
        self._call("SET", lambda client: client.set(rkey, raw, **_expiry(ttl)))
        return value

    def _store_local(self, key: str, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        entry = (_now() + ttl, value)
        local = self._local
        with self._write_lock:
            local.pop(key, None)  # re-inserted at the end: FIFO by last write
            while len(local) >= self.local_size:
                local.popitem(last=False)
                self.stats["evictions"] += 1
            local[key] = entry

    def _drop_expired(self, key: str, entry: tuple[float, Any]) -> None:
        with self._write_lock:
            if self._local.get(key) is entry:
                del self._local[key]

    def _get_shared(self, key: str) -> Any:
        rkey = self._rkey(key)

        def get_with_ttl(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.get(rkey)
            pipe.pttl(rkey)
            return pipe.execute()

        reply = self._call("GET", get_with_ttl)
        if reply is MISSING:
            return MISSING
        return self._promote(key, reply[0], reply[1])

    def _promote(self, key: str, raw: bytes | None, pttl: int) -> Any:
        """Decode a Redis value and copy it to the local tier for what Redis has left."""
        if raw is None:
            return MISSING
        try:
            value = json.loads(raw)
        except ValueError as exc:  # someone else's value under our key
            self.stats["decode_errors"] += 1
            log.warning("cache %s: key %r in redis is not JSON (%s); ignored",
                        self.namespace, key, exc)
            return MISSING
        if pttl == -1:  # no expiry in Redis (set by something else): the local cap applies
            self._store_local(key, value, self.local_ttl)
        elif pttl > 0:
            self._store_local(key, value, min(self.local_ttl, pttl / 1000.0))
        return value

    def _call(self, command: str, operation: Callable[[redis.Redis], Any]) -> Any:
        """Run ``operation`` on Redis; ``MISSING`` if Redis is down or it failed."""
        return _call_redis(self, command, operation)


# ----------------------------------------------------------------------------------------
# Versioned hashes: several writers, the newest version of each field wins


_MERGE = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expire_at = 0
if ARGV[1] == '1' then
  redis.call('HSET', key, '~', '0|')
  expire_at = now + tonumber(ARGV[2])
end
local written = 0
for i = 3, #ARGV, 4 do
  local field, version, until_ms = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local current = redis.call('HGET', key, field)
  local newer = true
  if current then
    local stored = tonumber(string.sub(current, 1, (string.find(current, '|', 1, true) or 1) - 1))
    newer = stored == nil or stored < version
  end
  if newer then
    redis.call('HSET', key, field, ARGV[i + 1] .. '|' .. ARGV[i + 3])
    written = written + 1
  end
  if until_ms > expire_at then expire_at = until_ms end
end
local pttl = redis.call('PTTL', key)
if pttl == -1 or (pttl >= 0 and now + pttl < expire_at) then
  redis.call('PEXPIREAT', key, expire_at)
end
return written
"""

_REMOVE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 0 end
local stored = tonumber(string.sub(current, 1, (string.find(current, '|', 1, true) or 1) - 1))
if stored ~= nil and stored > tonumber(ARGV[2]) then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
"""

_COMPLETE = "~"


class VersionedHashes:
    """Redis hashes (``whistle:<namespace>:<key>``) whose fields are written by many
    processes at once and keep the newest version each: a Lua script compares the version
    (a number, e.g. an event's timestamp) with the stored one and writes only a newer one,
    atomically, so concurrent writers can never put an older value back.

    A hash is *complete* once a full load (:meth:`merge` with ``complete=True``, from the
    system of record) has been merged into it: :meth:`get` returns ``None`` for a hash
    that is not (a writer may have created it with one field while the others exist only
    in the database), and the reader loads it. A hash lives until its latest field's
    ``until`` (Unix seconds); a complete empty one for ``empty_ttl`` seconds.

    Redis is optional as for :class:`Cache`: when it is away every call returns what
    "absent" means (``get`` → None, writes → None) and the caller reads the database.
    """

    def __init__(self, namespace: str, redis_url: str | None = None) -> None:
        self.namespace = namespace
        self.redis_url = settings.redis_url if redis_url is None else redis_url
        self._prefix = f"{KEY_PREFIX}:{namespace}:"
        self.stats: dict[str, int] = {"redis_errors": 0, "redis_skipped": 0, "stale_writes": 0}
        self._scripts: dict[str, Any] = {}

    def _rkey(self, key: str) -> str:
        return self._prefix + key

    def _script(self, client: redis.Redis, name: str, source: str) -> Any:  # noqa: ANN401
        script = self._scripts.get(name)
        if script is None or script.registered_client is not client:
            script = self._scripts[name] = client.register_script(source)
        return script

    def merge(self, key: str, items: Iterable[tuple[str, float, float, str]], *,
              complete: bool = False, empty_ttl: float = 30) -> int | None:
        """Write ``(field, version, until, value)`` items, each only if newer than what the
        field holds; returns how many were written (None: Redis is away)."""
        argv: list[Any] = ["1" if complete else "0", int(empty_ttl * 1000)]
        for field, version, until, value in items:
            if field == _COMPLETE:
                raise ValueError(f"{_COMPLETE!r} is the completeness marker, not a field")
            argv += [field, repr(float(version)), int(until * 1000), value]
        if len(argv) == 2 and not complete:
            return 0
        rkey = self._rkey(key)
        written = _call_redis(self, "EVALSHA", lambda client: self._script(
            client, "merge", _MERGE)(keys=[rkey], args=argv, client=client))
        if written is MISSING:
            return None
        self.stats["stale_writes"] += (len(argv) - 2) // 4 - int(written)
        return int(written)

    def get(self, key: str) -> dict[str, str] | None:
        """``{field: value}`` of a complete hash; None when it is not (load it)."""
        rkey = self._rkey(key)
        raw = _call_redis(self, "HGETALL", lambda client: client.hgetall(rkey))
        if raw is MISSING or not raw or _COMPLETE.encode() not in raw:
            return None
        out: dict[str, str] = {}
        for field, value in raw.items():
            name = field.decode("utf-8", "surrogatepass")
            if name == _COMPLETE:
                continue
            out[name] = value.decode("utf-8", "surrogatepass").split("|", 1)[1]
        return out

    def remove(self, key: str, field: str, version: float) -> bool:
        """Remove ``field`` unless it holds a version newer than ``version``."""
        rkey = self._rkey(key)
        done = _call_redis(self, "EVALSHA", lambda client: self._script(
            client, "remove", _REMOVE)(keys=[rkey], args=[field, repr(float(version))],
                                       client=client))
        return done is not MISSING and bool(done)

    def delete(self, *keys: str) -> None:
        """Forget whole hashes (the next reader loads them again)."""
        if keys:
            rkeys = [self._rkey(k) for k in keys]
            _call_redis(self, "DEL", lambda client: client.delete(*rkeys))


def _call_redis(owner: Cache | VersionedHashes, command: str,
                operation: Callable[[redis.Redis], Any]) -> Any:  # noqa: ANN401
    """Run ``operation`` on ``owner``'s Redis; ``MISSING`` if Redis is away or it failed
    (one warning per outage for the whole process, see the module docstring)."""
    link = _link_for(owner.redis_url)
    if not link.available():
        owner.stats["redis_skipped"] += 1
        return MISSING
    try:
        result = operation(link.client)
    except (redis.RedisError, OSError) as exc:
        owner.stats["redis_errors"] += 1
        if isinstance(exc, redis.ResponseError):  # the server answered: not an outage
            log.warning("cache %s: redis %s failed: %s", owner.namespace, command, exc)
        else:
            link.failed(exc, command)
        return MISSING
    link.succeeded()
    return result


class _Slot:
    """One key waiting in a :class:`BatchedLoader`."""

    __slots__ = ("done", "error", "event", "lead", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.done = False
        self.lead = False
        self.value: Any = None
        self.error: BaseException | None = None


class BatchedLoader:
    """Concurrent cold reads of many keys as few multi-key reads (a group commit).

    ``load_many(keys)`` reads several keys at once (e.g. a CouchDB view POSTed ``keys``)
    and returns ``{key: value}``. :meth:`get` is called by many threads or greenlets at
    once; while one read is in flight, the keys asked meanwhile wait and go together into
    the next one, which one of their callers makes. Nothing waits for a timer: a lone
    caller reads its key at once; under load each read carries every key missed during
    the one before (at most ``max_batch``). The same key asked twice at once is read once.
    An error of a read is raised to every caller whose key was in it.
    """

    def __init__(self, load_many: Callable[[list[Any]], dict[Any, Any]],
                 max_batch: int = 500, wait_s: float = 30.0) -> None:
        self.load_many = load_many
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._waiting: dict[Any, _Slot] = {}
        self._reading = False
        self.stats = {"reads": 0, "keys": 0}

    def get(self, key: Any) -> Any:  # noqa: ANN401 - whatever load_many returns
        """The value ``load_many`` gave for ``key`` (None when it gave none)."""
        with self._lock:
            slot = self._waiting.get(key)
            if slot is None:
                slot = self._waiting[key] = _Slot()
            lead = not self._reading
            self._reading = True
        while True:
            if lead:
                lead = False
                self._read_batch()
            woke = slot.event.wait(self.wait_s)
            with self._lock:
                if slot.done:
                    break
                if slot.lead:  # handed the next read: make it (it holds this key)
                    slot.lead = False
                    slot.event.clear()
                    lead = True
                    continue
            if not woke:
                raise TimeoutError(f"no read of {key!r} within {self.wait_s}s")
            # another caller of this key took the lead it was handed: wait for its read
        if slot.error is not None:
            raise slot.error
        return slot.value

    def _read_batch(self) -> None:
        with self._lock:
            keys = list(self._waiting)[:self.max_batch]
            batch = {k: self._waiting.pop(k) for k in keys}
        values: dict[Any, Any] = {}
        error: BaseException | None = None
        try:
            values = self.load_many(keys)
        except Exception as exc:  # noqa: BLE001 - handed to every caller of these keys
            error = exc
        self.stats["reads"] += 1
        self.stats["keys"] += len(keys)
        with self._lock:
            for key, slot in batch.items():
                slot.value = values.get(key)
                slot.error = error
                slot.done = True
                slot.event.set()
            if self._waiting:  # asked meanwhile: one of them makes the next read
                following = next(iter(self._waiting.values()))
                following.lead = True
                following.event.set()
            else:
                self._reading = False
