"""The one settings object of Whistle: every knob is a ``WHISTLE_*`` environment variable.

Defaults are for one box (everything on 127.0.0.1). The README's configuration table is
generated from ``FIELDS`` below (``whistle config``), so the two cannot drift apart.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _hostname() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class Settings:
    """All settings. Build with :func:`load` (reads the environment)."""

    # services
    amqp_url: str = field(default="amqp://guest:guest@127.0.0.1:5672//",
                          metadata={"doc": "RabbitMQ URL (the vhost is the path)."})
    redis_url: str = field(default="redis://127.0.0.1:6379/0",
                           metadata={"doc": "Redis URL for the shared cache (the db number is the path)."})
    couch_url: str = field(default="http://127.0.0.1:5984",
                           metadata={"doc": "CouchDB (or pouchdb-server) URL; credentials may be in it."})
    couch_prefix: str = field(default="",
                              metadata={"doc": "Prefix of every CouchDB database name (tests use one)."})
    node: str = field(default_factory=_hostname,
                      metadata={"doc": "This process's node name in API messages (`Node`)."})
    # logging
    log_level: str = field(default="INFO", metadata={"doc": "DEBUG, INFO, WARNING or ERROR."})
    log_target: str = field(default="stderr", metadata={"doc": "`stderr` or `syslog`."})
    # caches
    cache_ttl: int = field(default=900,
                           metadata={"doc": "Seconds a cached credential/account/number lives."})
    local_cache_size: int = field(default=200_000,
                                  metadata={"doc": "Entries kept in each process's own cache tier."})
    # registrar
    reg_expiry_interval: int = field(default=30,
                                     metadata={"doc": "Seconds between registration expiry runs (beat)."})
    reg_expires_deviation: int = field(default=180,
                                       metadata={"doc": "Seconds added to `Expires` before a registration is gone."})
    # workers
    worker_pool: str = field(default="gevent",
                             metadata={"doc": "Celery pool of whapp workers (`gevent`, `solo`, `prefork`)."})
    worker_concurrency: int = field(default=200,
                                    metadata={"doc": "Greenlets (or processes) per whapp worker."})
    workers_per_queue: str = field(default="",
                                   metadata={"doc": "Worker processes per whapp, e.g. `registrar=2,router=2` (default 1 each)."})
    # bridge
    fs_nodes: str = field(default="127.0.0.1:8021:ClueCon",
                          metadata={"doc": "FreeSWITCH event sockets, `host:port:password` comma-separated."})
    http_listen: str = field(default="127.0.0.1:8090",
                             metadata={"doc": "Address the bridge's mod_xml_curl/metrics HTTP server binds."})
    http_allow: str = field(default="127.0.0.1,::1",
                            metadata={"doc": "Client IPs/networks allowed to call the bridge (comma-separated CIDRs)."})
    http_auth: str = field(default="",
                           metadata={"doc": "`user:password` for HTTP basic auth on the bridge (empty: none).", "secret": True})
    answer_budget_ms: int = field(default=2500,
                                  metadata={"doc": "Milliseconds the bridge waits for a whapp's answer."})
    auth_cache_ttl: int = field(default=300,
                                metadata={"doc": "Seconds the bridge keeps credentials per (realm, user)."})
    event_buffer: int = field(default=100_000,
                              metadata={"doc": "Messages the bridge holds while RabbitMQ is away."})
    esl_heartbeat_timeout: int = field(default=60,
                                       metadata={"doc": "Seconds without any event before an ESL node is reconnected."})
    esl_format: str = field(default="json",
                            metadata={"doc": "Event format asked of FreeSWITCH: `json` or `plain`."})
    # maintenance
    compact_interval: int = field(default=3600,
                                  metadata={"doc": "Seconds between automatic compaction runs (beat)."})
    compact_min_data: int = field(default=131072,
                                  metadata={"doc": "Compact a database only when its data size exceeds this (bytes)."})
    compact_min_ratio: float = field(default=0.25,
                                     metadata={"doc": "... and when (disk - data) / disk exceeds this."})
    compact_parallel: int = field(default=2,
                                  metadata={"doc": "Databases compacted at the same time."})
    flower_address: str = field(default="127.0.0.1:5555",
                                metadata={"doc": "Where `whistle up` runs Flower."})

    def couch_db(self, name: str) -> str:
        """The real database name for a logical one (applies ``couch_prefix``)."""
        return f"{self.couch_prefix}{name}"

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict, with secrets and URL passwords masked (safe to log or print)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = "****"
            elif isinstance(value, str) and "://" in value:
                value = redact_url(value)
            elif f.name == "fs_nodes":
                value = ",".join(
                    ":".join(part.split(":")[:2] + ["****"]) for part in value.split(",") if part
                )
            out[f.name] = value
        return out


def redact_url(url: str) -> str:
    """``amqp://guest:guest@host//`` → ``amqp://guest:****@host//``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:****@{netloc[-1]}"))


def env_name(field_name: str) -> str:
    return "WHISTLE_" + field_name.upper()


def _convert(raw: str, default: Any) -> Any:  # noqa: ANN401
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def load(environ: dict[str, str] | None = None) -> Settings:
    """Read every ``WHISTLE_*`` variable; unknown or malformed values raise ``ValueError``."""
    env = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {}
    defaults = Settings()
    for f in fields(Settings):
        name = env_name(f.name)
        if name in env:
            try:
                kwargs[f.name] = _convert(env[name], getattr(defaults, f.name))
            except ValueError as exc:
                raise ValueError(f"{name}: cannot read {env[name]!r}: {exc}") from None
    return Settings(**kwargs)


def docs_table() -> str:
    """The README configuration table (markdown)."""
    defaults = Settings()
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        default = getattr(defaults, f.name) if f.name != "node" else "(hostname)"
        rows.append(f"| `{env_name(f.name)}` | `{default}` | {f.metadata.get('doc', '')} |")
    return "\n".join(rows)


settings: Settings = load()
