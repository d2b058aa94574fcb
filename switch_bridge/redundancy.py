"""Redundant bridges: any number of bridges may list one FreeSWITCH node, one is active.

Who is active for a node is a **lease in Redis** (a component every Whistle install already
runs), one per node, keyed by the node's FreeSWITCH hostname (``whistle:bridge:lease:<host>``;
the keys: ``whistle_tasks/core/leases.py``), so two bridges that reach one switch by
different addresses still share it). The value is
the holder's Server-ID, with a time to live of ``WHISTLE_BRIDGE_LEASE_MS``.

* **Acquire**: ``SET NX PX`` and, in the same Lua script, ``INCR`` of the node's fencing
  counter: every holder gets a token larger than any before it. The script also returns
  the node's **checkpoint** (the Core-UUID and ``Event-Sequence`` of the last event the
  previous holder had published and RabbitMQ had confirmed).
* **Renew**: every :data:`RENEW_MS` (100 ms) one Lua script extends the lease if it is
  still ours and writes our checkpoint, refused if a larger token has written one (the
  fencing token guards the checkpoint).
* **Self-limit**: the holder acts (publishes, answers, originates, executes) only until
  ``t_sent + lease - guard`` by its own monotonic clock, ``t_sent`` taken *before* the
  renew was sent: it stops before the lease can have expired in Redis, so two actives
  never publish at once unless the clocks' rates differ by more than the guard
  (``lease / 4``). A hung holder (SIGSTOP, a long GC) wakes up past that instant and
  stands down without doing anything.
* **Standby**: connected to the node like the active, it receives every event and keeps
  the last ``WHISTLE_BRIDGE_WINDOW`` of them (Core-UUID, sequence, event), publishing
  nothing. It tries to acquire every 100 ms; when it gets the lease it **republishes the
  window's events after the checkpoint** (through the same extensions, so a translated
  event is the same message), then runs the node sync (registrations, channels: the calls
  under control are controlled again with their own control queues) and starts serving
  originate requests. A checkpoint of another Core-UUID than the window's means
  FreeSWITCH restarted: the window's events of the new process are all republished.
* **Release**: a bridge stopping, losing its event socket to the node, or unable to reach
  RabbitMQ for longer than a lease, writes its last checkpoint and deletes its lease at
  once, so a standby takes over within 100 ms. A standby that cannot reach RabbitMQ does
  not take over.

Consumers see every event at least once: those the old active published after its last
checkpoint are published again (duplicates, bounded by what one renew period and the
unconfirmed messages hold). ``WHISTLE_BRIDGE_LEASE_MS=0`` turns all this off: the bridge
is active for its nodes, as a single bridge always was.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import redis

from switch_bridge.freeswitch import inventory
from switch_bridge.freeswitch.esl.node import EslError, EslNode
from switch_bridge.freeswitch.esl.protocol import Event
from switch_bridge.metrics import Metrics
from whistle_tasks.core.leases import checkpoint_key, fence_key, lease_key, members_key
from whistle_tasks.core.leases import text as _text
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

RENEW_MS = 100
ACTIVE, STANDBY = "active", "standby"

# KEYS: lease, fence, checkpoint; ARGV: me, lease ms
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('INCR', KEYS[2])
  local ck = redis.call('HMGET', KEYS[3], 'core', 'seq', 'owner')
  return {token, ck[1] or '', ck[2] or '', ck[3] or ''}
end
return false
"""
# KEYS: lease, checkpoint; ARGV: me, lease ms, core, seq, token, release (1/0)
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local fenced = tonumber(redis.call('HGET', KEYS[2], 'token') or '0')
if tonumber(ARGV[5]) < fenced then return 0 end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], 'core', ARGV[3], 'seq', ARGV[4], 'token', ARGV[5],
             'owner', ARGV[1])
end
if ARGV[6] == '1' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


@dataclass
class Seen:
    core: str
    seq: int
    event: Event


class Window:
    """The last events of one node, in arrival order (bounded)."""

    def __init__(self, size: int) -> None:
        self.items: deque[Seen] = deque(maxlen=max(size, 1))

    def add(self, event: Event) -> None:
        seq = event.get("Event-Sequence") or ""
        if seq.isdigit():
            self.items.append(Seen(event.get("Core-UUID") or "", int(seq), event))

    def __len__(self) -> int:
        return len(self.items)

    def after(self, core: str, seq: int | None) -> tuple[list[Seen], str]:
        """The events after checkpoint ``(core, seq)`` and how the window meets it:
        ``exact`` (the checkpoint is in the window), ``none`` (no checkpoint yet: all),
        ``restart`` (another FreeSWITCH process: all), ``short`` (the window begins after
        the checkpoint: all it has, and some events between may be missing)."""
        items = list(self.items)
        if not core or seq is None:
            return items, "none"
        last = None
        for index, seen in enumerate(items):
            if seen.core == core and seen.seq <= seq:
                last = index
        if last is not None:
            return items[last + 1:], "exact"
        if not any(s.core == core for s in items):
            return items, "restart"
        return items, "short"


@dataclass
class NodeLease:
    node: EslNode
    window: Window
    host: str | None = None
    role: str = STANDBY
    token: int = 0
    valid_until: float = 0.0
    since: float = field(default_factory=time.monotonic)
    members_at: float = 0.0
    greenlet: gevent.Greenlet | None = None


class Redundancy:
    """The leases of one bridge over its nodes (see the module docstring).

    ``replay(node, event)``: run one event through the extensions as if it had just come
    (the host's hook, without the gate); ``on_role(node, role)``: the node became active
    or standby here.
    """

    def __init__(self, *, redis_url: str, lease_ms: int, window: int, server_id: str,
                 metrics: Metrics, marks: Callable[[str], Any],
                 replay: Callable[[EslNode, Event], None],
                 on_role: Callable[[EslNode, str], None],
                 amqp_up: Callable[[], bool] = lambda: True) -> None:
        self.enabled = lease_ms > 0
        self.lease_ms = lease_ms
        self.guard_s = lease_ms / 4000.0
        self.window_size = window
        self.server_id = server_id
        self.metrics = metrics
        self.marks = marks
        self.replay = replay
        self.on_role = on_role
        self.amqp_up = amqp_up
        self._amqp_down_since: float | None = None
        self.leases: dict[str, NodeLease] = {}
        self.stats = {"takeovers": 0, "replayed": 0, "stepped_down": 0, "released": 0,
                      "redis_errors": 0, "short_windows": 0}
        self._stopping = False
        self._last_error: str | None = None
        self.redis = (redis.Redis.from_url(
            redis_url, socket_timeout=max(lease_ms / 4000.0, 0.1),
            socket_connect_timeout=max(lease_ms / 4000.0, 0.1))
            if self.enabled else None)
        if self.redis is not None:
            self._acquire = self.redis.register_script(_ACQUIRE)
            self._renew = self.redis.register_script(_RENEW)

    # -- what the host asks -------------------------------------------------------------
    def add(self, node: EslNode) -> None:
        self.leases[node.name] = NodeLease(node, Window(self.window_size if self.enabled
                                                        else 1))

    def acting(self, node: EslNode) -> bool:
        """True while this bridge may act for ``node`` (always, without leases)."""
        if not self.enabled:
            return True
        lease = self.leases.get(node.name)
        return (lease is not None and lease.role == ACTIVE
                and time.monotonic() < lease.valid_until)

    def admit(self, node: EslNode, event: Event) -> bool:
        """An event arrived: kept in the node's window; True when it is ours to handle."""
        if not self.enabled:
            return True
        lease = self.leases.get(node.name)
        if lease is None:
            return True
        lease.window.add(event)
        return self.acting(node)

    def role(self, node: EslNode) -> str:
        if not self.enabled:
            return ACTIVE
        lease = self.leases.get(node.name)
        return ACTIVE if lease is not None and self.acting(node) else STANDBY

    def window_len(self, node: EslNode) -> int:
        lease = self.leases.get(node.name)
        return len(lease.window) if lease is not None and self.enabled else 0

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled:
            return
        for lease in self.leases.values():
            lease.greenlet = gevent.spawn(self._run, lease)

    def stop(self) -> None:
        """Hand every node over at once: last checkpoint written, lease deleted."""
        self._stopping = True
        for lease in self.leases.values():
            if lease.greenlet is not None:
                lease.greenlet.kill(block=True, timeout=2)
            if lease.role == ACTIVE:
                self._release(lease, "the bridge stops")

    # -- the lease greenlet ---------------------------------------------------------------
    def _run(self, lease: NodeLease) -> None:
        while not self._stopping:
            began = time.monotonic()
            try:
                self._tick(lease)
                self._last_error = None
            except (redis.RedisError, OSError) as exc:
                self.stats["redis_errors"] += 1
                self.metrics.errors.labels("lease_redis").inc()
                text = f"{type(exc).__name__}: {exc}"
                if text != self._last_error:
                    self._last_error = text
                    log.error("lease of FreeSWITCH %s: Redis unreachable (%s)%s",
                              lease.node.name, text,
                              "; standing down when the lease runs out"
                              if lease.role == ACTIVE else "; cannot take over")
            if lease.role == ACTIVE and time.monotonic() >= lease.valid_until:
                self._step_down(lease, "the lease could not be renewed in time")
            gevent.sleep(max(0.0, RENEW_MS / 1000.0 - (time.monotonic() - began)))

    def _tick(self, lease: NodeLease) -> None:
        node = lease.node
        if not node.connected:
            if lease.role == ACTIVE:
                self._release(lease, f"lost its event socket to {node.name}")
            return
        host = node.fs_hostname or self._hostname(node)
        if host is None:
            return
        if lease.host != host:
            if lease.role == ACTIVE:
                self._release(lease, f"the node is now {host}")
            lease.host = host
        self._member(lease)
        sent = time.monotonic()
        if self.amqp_up():
            self._amqp_down_since = None
        elif self._amqp_down_since is None:
            self._amqp_down_since = sent
        amqp_down = (self._amqp_down_since is not None
                     and sent - self._amqp_down_since >= self.lease_ms / 1000.0)
        if lease.role == ACTIVE and amqp_down:
            self._release(lease, "RabbitMQ unreachable for longer than a lease")
            return
        if lease.role != ACTIVE and self._amqp_down_since is not None:
            return                  # we could not publish: leave the node to another
        if lease.role == ACTIVE:
            if self._renew_lease(lease, release=False):
                lease.valid_until = sent + self.lease_ms / 1000.0 - self.guard_s
            else:
                self._step_down(lease, "another bridge holds the lease")
            return
        got = self._acquire(keys=[lease_key(host), fence_key(host), checkpoint_key(host)],
                            args=[self.server_id, self.lease_ms])
        if got:
            lease.valid_until = sent + self.lease_ms / 1000.0 - self.guard_s
            token, core, seq, owner = (int(got[0]), _text(got[1]), _text(got[2]),
                                       _text(got[3]))
            self._take_over(lease, token, core, int(seq) if seq.isdigit() else None, owner)

    def _hostname(self, node: EslNode) -> str | None:
        try:
            node.fs_hostname = inventory.hostname(node.api("hostname", timeout=2))
        except (EslError, inventory.InventoryError) as exc:
            log.debug("FreeSWITCH %s: hostname not known yet: %s", node.name, exc)
        return node.fs_hostname

    def _member(self, lease: NodeLease) -> None:
        """Say once a second who we are and what we are for this node (``whistle status``)."""
        now = time.monotonic()
        if now - lease.members_at < 1.0 or self.redis is None or lease.host is None:
            return
        lease.members_at = now
        key = members_key(lease.host)
        pipe = self.redis.pipeline()
        pipe.hset(key, self.server_id, f"{self.role(lease.node)} {time.time():.3f}")
        pipe.pexpire(key, 60_000)
        pipe.execute()

    def _renew_lease(self, lease: NodeLease, *, release: bool) -> bool:
        mark = self.marks(lease.node.name)
        core, seq = mark if mark else ("", 0)
        assert lease.host is not None  # noqa: S101 - set before any lease is held
        done = self._renew(keys=[lease_key(lease.host), checkpoint_key(lease.host)],
                           args=[self.server_id, self.lease_ms, core, seq, lease.token,
                                 "1" if release else "0"])
        return bool(done)

    def _take_over(self, lease: NodeLease, token: int, core: str, seq: int | None,
                   previous: str) -> None:
        """We hold the lease: republish what the previous holder may not have, then act.
        Nothing here yields, so no live event slips between the replay and the switch."""
        lease.token = token
        events, how = lease.window.after(core, seq)
        if how == "short":
            self.stats["short_windows"] += 1
            self.metrics.errors.labels("lease_window_short").inc()
            log.error("FreeSWITCH %s: the window (%d events) begins after the checkpoint "
                      "%s/%s: events between may be lost (raise WHISTLE_BRIDGE_WINDOW)",
                      lease.node.name, len(lease.window), core, seq)
        for seen in events:
            self.replay(lease.node, seen.event)
        lease.role = ACTIVE
        lease.since = time.monotonic()
        self.stats["takeovers"] += 1
        self.stats["replayed"] += len(events)
        log.warning("bridge %s active for FreeSWITCH %s (%s), token %d, after %s: %d events "
                    "republished after checkpoint %s/%s (%s)", self.server_id,
                    lease.node.name, lease.host, token, previous or "no previous holder",
                    len(events), core or "-", "-" if seq is None else seq, how)
        self.on_role(lease.node, ACTIVE)

    def _step_down(self, lease: NodeLease, why: str) -> None:
        if lease.role != ACTIVE:
            return
        lease.role = STANDBY
        lease.valid_until = 0.0
        self.stats["stepped_down"] += 1
        log.warning("bridge %s stands by for FreeSWITCH %s: %s", self.server_id,
                    lease.node.name, why)
        self.on_role(lease.node, STANDBY)

    def _release(self, lease: NodeLease, why: str) -> None:
        """Give the lease back now (last checkpoint written), then stand by."""
        try:
            if lease.host is not None and self.redis is not None:
                self._renew_lease(lease, release=True)
                self.stats["released"] += 1
        except (redis.RedisError, OSError) as exc:
            log.warning("lease of FreeSWITCH %s not released (%s): it lapses by itself",
                        lease.node.name, exc)
        self._step_down(lease, why)
