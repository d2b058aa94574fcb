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

import schemas.base


def _hostname() -> str:
    return socket.gethostname()


def setting(default: Any, doc: str, *, secret: bool = False,  # noqa: ANN401
            factory: Any = None) -> Any:  # noqa: ANN401
    """One documented setting (its doc goes to the README table)."""
    meta = {"doc": doc, "secret": secret}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """All settings. Build with :func:`load` (reads the environment)."""

    # services
    amqp_url: str = setting("amqp://guest:guest@127.0.0.1:5672//",
        "RabbitMQ URL (the vhost is the path).")
    redis_url: str = setting("redis://127.0.0.1:6379/0",
        "Redis URL for the shared cache (the db number is the path).")
    couch_url: str = setting("http://127.0.0.1:5984",
        "CouchDB (or pouchdb-server) URL; credentials may be in it.")
    couch_prefix: str = setting("",
        "Prefix of every CouchDB database name (tests use one).")
    node: str = setting(None,
        "This process's node name in API messages (`Node`).", factory=_hostname)
    # logging
    log_level: str = setting("INFO",
        "DEBUG, INFO, WARNING or ERROR.")
    log_target: str = setting("stderr",
        "`stderr` or `syslog`.")
    # caches
    cache_ttl: int = setting(900,
        "Seconds a cached credential/account/number lives.")
    local_cache_size: int = setting(200_000,
        "Entries kept in each process's own cache tier.")
    prime_credentials: int = setting(10_000,
        "Most device credentials a registrar/router worker loads into its cache when it "
        "starts (registered devices first, read 5,000 a page); 0: none, every first "
        "look-up reads CouchDB.")
    # registrar
    reg_expiry_interval: int = setting(30,
        "Seconds between registration expiry runs (beat).")
    reg_expires_deviation: int = setting(180,
        "Seconds added to `Expires` before a registration is gone.")
    # workers
    worker_pools: str = setting(
        "registrar=threads:8,router=threads:8,callflow=gevent:500,maintenance=threads:2,"
        "cdr=threads:2,notify=threads:4",
        "Celery pool and concurrency of each whapp's workers (`whapp=pool:n`, comma-separated).")
    quorum_queues: bool = setting(False,
        "Declare the whapp queues as RabbitMQ quorum queues (clusters; see deploy/rabbitmq).")
    callflow_modules: str = setting("",
        "Your Python modules of callflow modules and call apps (`@module`, `@call_app`), "
        "comma-separated.")
    fixed_clock: str = setting("",
        "An ISO date-time callflows take as now (`temporal_route` demos, tests); empty: the clock.")
    task_events: bool = setting(True,
        "Workers send task events (what Flower shows live).")
    workers_per_queue: str = setting("",
        "Worker processes per whapp, e.g. `registrar=2,router=2` (default 1 each).")
    # bridge
    fs_nodes: str = setting("127.0.0.1:8021:ClueCon",
        "FreeSWITCH event sockets, `host:port:password` comma-separated.")
    http_listen: str = setting("127.0.0.1:8090",
        "Address the bridge's mod_xml_curl/metrics HTTP server binds.")
    http_allow: str = setting("127.0.0.1,::1",
        "Client IPs/networks allowed to call the bridge (comma-separated CIDRs).")
    http_auth: str = setting("",
        "`user:password` for HTTP basic auth on the bridge (empty: none).", secret=True)
    answer_budget_ms: int = setting(2500,
        "Milliseconds the bridge waits for a whapp's answer.")
    auth_cache_ttl: int = setting(300,
        "Seconds the bridge keeps credentials per (realm, user).")
    directory_cacheable_ms: int = setting(0,
        "Milliseconds FreeSWITCH may keep a directory answer (`cacheable`); 0: it asks "
        "every time. A device/account change flushes it on every node either way.")
    event_buffer: int = setting(100_000,
        "Messages the bridge holds while RabbitMQ is away.")
    esl_heartbeat_timeout: int = setting(60,
        "Seconds without any event before an ESL node is reconnected.")
    esl_format: str = setting("json",
        "Event format asked of FreeSWITCH: `json` or `plain`.")
    bridge_lease_ms: int = setting(0,
        "Milliseconds of a bridge's lease on a FreeSWITCH node (Redis): several bridges may "
        "list one node, one is active, a standby takes over when the lease lapses. "
        "0 (the default): no lease, this bridge alone is active for its nodes (no Redis "
        "needed to publish); 2000 is a good value for redundant bridges.")
    bridge_window: int = setting(20_000,
        "Events a standby bridge keeps per node, to republish those after the active's "
        "last checkpoint when it takes over.")
    spool_dir: str = setting("",
        "Directory where the bridge spools what it must publish while RabbitMQ is "
        "unreachable (published in order on reconnect, also after a bridge restart); "
        "empty: memory only (`WHISTLE_EVENT_BUFFER`).")
    spool_max_mb: int = setting(512,
        "Megabytes the spool may hold; beyond, new messages are dropped (counted).")
    record_dir: str = setting("/tmp",  # noqa: S108 - a directory on the FreeSWITCH node
        "Directory on the FreeSWITCH nodes where calls are recorded until `store` uploads "
        "them (a `record` of `recording://NAME`).")
    # media service (voicemail messages, greetings, prompts over HTTP)
    media_listen: str = setting("127.0.0.1:8095",
        "Address the media service binds (`whistle up` runs it under gunicorn).")
    media_url: str = setting("http://127.0.0.1:8095",
        "The media service's URL as FreeSWITCH reaches it (plays and uploads go there).")
    media_secret: str = setting("",
        "Key signing media URLs (HMAC); empty: one made once and kept in CouchDB "
        "(`system_config`, document `media`).", secret=True)
    media_url_ttl: int = setting(3600,
        "Seconds a signed media URL is valid at least (at most twice that).")
    media_max_bytes: int = setting(16_777_216,
        "Largest recording or prompt the media service accepts (bytes).")
    media_workers: int = setting(2,
        "Processes of the media service (gunicorn, 8 threads each).")
    # notifications
    smtp_url: str = setting("",
        "SMTP relay for voicemail to e-mail: `smtp://[user:password@]host[:port]` "
        "(`?starttls=1`), or `smtps://...`; empty: no mail is sent.")
    mail_from: str = setting("whistle@localhost",
        "The From address of Whistle's mails.")
    # maintenance
    compact_interval: int = setting(3600,
        "Seconds between automatic compaction runs (beat); 0 turns them off.")
    compact_min_data: int = setting(131072,
        "Compact a database only when its data size exceeds this (bytes).")
    compact_min_ratio: float = setting(0.25,
        "... and when (disk - data) / disk exceeds this.")
    compact_parallel: int = setting(2,
        "Databases compacted at the same time.")
    flower_address: str = setting("127.0.0.1:5555",
        "Where `whistle up` runs Flower.")
    # call detail records
    cdr_retention_months: int = setting(12,
        "Months of CDR databases kept (the current one included); older ones are dropped "
        "whole. 0 keeps all.")
    cdr_batch: int = setting(500,
        "Hangup events written to CouchDB in one bulk request by the cdr worker.")
    cdr_linger_ms: int = setting(200,
        "Milliseconds the cdr worker waits to fill a batch before writing what it has.")
    # the REST API
    api_listen: str = setting("127.0.0.1:8000",
        "Address the REST API (and its console) binds under `whistle up` / `whistle api`.")
    api_workers: int = setting(2,
        "gunicorn worker processes of the API (gevent workers).")
    api_max_body: int = setting(1_048_576,
        "Largest request body the API accepts (bytes); larger ones get 413.")

    def pool_of(self, whapp: str) -> tuple[str, int]:
        """``(pool, concurrency)`` of a whapp's workers, from ``worker_pools``."""
        for item in self.worker_pools.split(","):
            name, _, spec = item.strip().partition("=")
            if name == whapp and spec:
                pool, _, n = spec.partition(":")
                return pool, int(n or 1)
        return "threads", 4

    def workers_of(self, whapp: str) -> int:
        """How many worker processes serve a whapp (``workers_per_queue``, default 1)."""
        for item in self.workers_per_queue.split(","):
            name, _, n = item.strip().partition("=")
            if name == whapp and n:
                return int(n)
        return 1

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


#: old variable names still read when the new one is not set: old name -> field
RENAMED = {"WHISTLE_WHAPP_MODULES": "callflow_modules"}


def load(environ: dict[str, str] | None = None) -> Settings:
    """Read every ``WHISTLE_*`` variable; unknown or malformed values raise ``ValueError``."""
    env = os.environ if environ is None else environ
    renamed = {env_name(new): env[old] for old, new in RENAMED.items()
               if old in env and env_name(new) not in env}
    env = {**env, **renamed} if renamed else env
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
schemas.base.set_default_node(settings.node)
