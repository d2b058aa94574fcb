"""``whistle up`` (the whole platform on one box) and ``whistle check`` (are the services up?).

``whistle up`` first checks RabbitMQ, Redis and CouchDB (a process started without them
would only crash-loop) and then hands a process set built from the settings to
:class:`whistle_tasks.ops.supervisor.Supervisor`. Its output is one stream, each line prefixed
with the time and the name of the process that printed it; the supervisor's own lines
(the table of what runs where, restarts, shutdown) are named ``whistle``::

    12:00:01 whistle     | NAME         PID    STATE     RESTARTS  ADDRESS  COMMAND
    12:00:01 whistle     | registrar-1  4243   up 0.1 s  0                  celery worker -Q ...
    12:00:02 registrar-1 | 2026-11-26 12:00:02,120 INFO [0000000000] ... registrar-1@vm ready.
    12:00:09 whistle     | bridge (pid 4242) ended (exit code 1) after 0.8 s; restart #1 in 1.0 s

Secrets in service URLs are masked in every message.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from whistle_tasks.core.config import Settings, redact_url, settings
from whistle_tasks.ops.supervisor import ProcessSpec

CHECK_TIMEOUT = 3.0
_LOCAL = {"127.0.0.1", "localhost", "::1", ""}


@dataclass(frozen=True)
class ServiceCheck:
    """The answer of one service: ``ok`` or why not, and how to start it."""

    service: str
    url: str            # redacted
    ok: bool
    problem: str = ""
    hint: tuple[str, ...] = ()


def _scrub(text: str, url: str) -> str:
    """Mask the URL's password wherever it shows up in an error message."""
    password = urlsplit(url).password
    text = text.replace(url, redact_url(url))
    return text.replace(password, "****") if password else text


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or default_port
    except ValueError:
        port = default_port
    return parts.hostname or "127.0.0.1", port


def _start_hint(host: str, local: tuple[str, ...]) -> tuple[str, ...]:
    if host in _LOCAL:
        return ("make services   (starts RabbitMQ, Redis and pouchdb-server if needed)",
                *local)
    return (f"check that {host} is up and reachable from this box (firewall, DNS)",)


def check_rabbitmq(url: str) -> ServiceCheck:
    """AMQP connect and log in (this also proves the vhost exists and we may use it)."""
    from amqp.exceptions import AccessRefused, NotAllowed
    from kombu import Connection

    shown = redact_url(url)
    host, port = _host_port(url, 5672)
    vhost = urlsplit(url).path[1:] or "/"
    conn = Connection(url, connect_timeout=CHECK_TIMEOUT, heartbeat=0)
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                               timeout=CHECK_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none raised
        cause = exc.__cause__ or exc
        if isinstance(cause, NotAllowed):
            return ServiceCheck("RabbitMQ", shown, False,
                                f"answers, but refused vhost {vhost!r}: {cause.reply_text}",
                                (f"scripts/services.sh vhost {vhost}   (or: sudo rabbitmqctl "
                                 f"add_vhost {vhost} && sudo rabbitmqctl set_permissions -p "
                                 f"{vhost} <user> '.*' '.*' '.*')",))
        if isinstance(cause, AccessRefused):
            return ServiceCheck("RabbitMQ", shown, False,
                                "answers, but refused the user name or password",
                                ("check the credentials in WHISTLE_AMQP_URL "
                                 "(sudo rabbitmqctl list_users)",))
        return ServiceCheck(
            "RabbitMQ", shown, False,
            f"is not answering on {host}:{port} ({_scrub(str(cause) or repr(cause), url)})",
            _start_hint(host, ("sudo rabbitmq-server -detached   "
                               "(or: sudo systemctl start rabbitmq-server)",)))
    finally:
        conn.release()
    return ServiceCheck("RabbitMQ", shown, True)


def check_redis(url: str) -> ServiceCheck:
    """PING."""
    import redis

    shown = redact_url(url)
    host, port = _host_port(url, 6379)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT,
                                      socket_timeout=CHECK_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except redis.AuthenticationError as exc:
        return ServiceCheck("Redis", shown, False,
                            f"answers, but refused the password ({_scrub(str(exc), url)})",
                            ("check the password in WHISTLE_REDIS_URL",))
    except (redis.RedisError, OSError, ValueError) as exc:
        return ServiceCheck(
            "Redis", shown, False,
            f"is not answering on {host}:{port} ({_scrub(str(exc), url)})",
            _start_hint(host, (f"redis-server --daemonize yes --bind 127.0.0.1 --port {port} "
                               "--save '' --appendonly no   "
                               "(or: sudo systemctl start redis-server)",)))
    return ServiceCheck("Redis", shown, True)


def check_couch(url: str) -> ServiceCheck:
    """GET / (CouchDB and pouchdb-server both answer it with a welcome document)."""
    import requests

    shown = redact_url(url)
    host, port = _host_port(url, 5984)
    parts = urlsplit(url)
    root = urlunsplit(parts._replace(path="/", query="", fragment=""))
    try:
        resp = requests.get(root, timeout=CHECK_TIMEOUT)
    except (requests.RequestException, ValueError) as exc:
        pouch = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "pouchdb-server"
        return ServiceCheck(
            "CouchDB", shown, False,
            f"is not answering on {host}:{port} ({_scrub(str(exc), url)})",
            _start_hint(host, (f"{pouch} -p {port} -o {host or '127.0.0.1'} -d .pouchdb/data -n"
                               " &   (development; production: sudo systemctl start couchdb)",)))
    if resp.status_code in (401, 403):
        return ServiceCheck("CouchDB", shown, False,
                            f"answers, but refused the credentials (HTTP {resp.status_code})",
                            ("check the user and password in WHISTLE_COUCH_URL",))
    if resp.status_code != 200:
        return ServiceCheck("CouchDB", shown, False,
                            f"answers HTTP {resp.status_code} on GET / (is it CouchDB?)",
                            (f"check what listens on {host}:{port}",))
    return ServiceCheck("CouchDB", shown, True)


def check_services(cfg: Settings) -> list[ServiceCheck]:
    """RabbitMQ, Redis and CouchDB, in that order; never raises."""
    checks: list[tuple[Callable[[str], ServiceCheck], str]] = [
        (check_rabbitmq, cfg.amqp_url), (check_redis, cfg.redis_url),
        (check_couch, cfg.couch_url)]
    return [check(url) for check, url in checks]


def _report(results: list[ServiceCheck], quiet_ok: bool) -> bool:
    """Print the results (problems to stderr); True when every service answers."""
    for r in results:
        if r.ok:
            if not quiet_ok:
                click.echo(f"{r.service:<9} ok    {r.url}")
            continue
        click.echo(f"{r.service} {r.problem}  [{r.url}]", err=True)
        if r.hint:
            click.echo("  to start it:", err=True)
            for line in r.hint:
                click.echo(f"    {line}", err=True)
    return all(r.ok for r in results)


@click.command("check")
def check_cmd() -> None:
    """Check that RabbitMQ, Redis and CouchDB answer (exit 1 when one does not)."""
    if not _report(check_services(settings), quiet_ok=False):
        sys.exit(1)


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


@click.command("up")
@click.option("--only", metavar="WHAPP,...",
              help="Run workers for these whapps only (e.g. registrar,router).")
@click.option("--workers", "workers_opt", multiple=True, metavar="WHAPP=N[,...]",
              help="Worker processes per whapp, overriding WHISTLE_WORKERS_PER_QUEUE "
                   "(repeatable; 0 runs none).")
@click.option("--no-workers", is_flag=True, help="Do not run any Celery worker.")
@click.option("--no-bridge", is_flag=True, help="Do not run the switch bridge.")
@click.option("--bridges", default=1, show_default=True, type=click.IntRange(1, 9),
              help="Switch bridges for the same FreeSWITCH nodes (redundant: one active per "
                   "node by a Redis lease, the others stand by; HTTP ports from "
                   "WHISTLE_HTTP_LISTEN's up).")
@click.option("--no-media", is_flag=True, help="Do not run the media service.")
@click.option("--no-beat", is_flag=True, help="Do not run celery beat.")
@click.option("--no-flower", is_flag=True, help="Do not run Flower.")
@click.option("--no-api", is_flag=True, help="Do not run the REST API and console.")
@click.option("--process", "extra", multiple=True, metavar="NAME=COMMAND",
              help="Also run COMMAND (shell-style words, no shell) as NAME; a platform "
                   "process of the same name is replaced. Repeatable.")
@click.option("--run-dir", default=".run", show_default=True, type=click.Path(file_okay=False),
              help="Where beat keeps its schedule.")
@click.option("--stop-timeout", default=20.0, show_default=True, type=click.FloatRange(0),
              help="Seconds between SIGTERM (Celery's warm shutdown) and SIGKILL.")
@click.option("--no-check", is_flag=True,
              help="Start without checking RabbitMQ, Redis and CouchDB first.")
@click.option("--dry-run", is_flag=True, help="Print each process's full command, start nothing.")
def up_cmd(only: str | None, workers_opt: tuple[str, ...], no_workers: bool, no_bridge: bool,
           bridges: int, no_media: bool, no_beat: bool, no_flower: bool, no_api: bool,
           extra: tuple[str, ...],
           run_dir: str, stop_timeout: float, no_check: bool, dry_run: bool) -> None:
    """Run the platform on this box and keep it up until Ctrl-C or SIGTERM.

    Starts the switch bridge, the media service (WHISTLE_MEDIA_LISTEN), one Celery worker
    per whapp queue (times WHISTLE_WORKERS_PER_QUEUE), celery beat, Flower
    (WHISTLE_FLOWER_ADDRESS) and the REST API with its console (WHISTLE_API_LISTEN). A process
    that exits is restarted with back-off (1 s doubling to 30 s). All output goes to stdout,
    one line at a time, prefixed with the time and the process name; `kill -USR1` prints
    the status table again.
    """
    from whistle_tasks.ops import supervisor as sup

    try:
        workers: dict[str, int] = {}
        for item in workers_opt:
            workers.update(sup.parse_counts(item))
        specs = sup.platform_specs(settings, only=[] if no_workers else _split_list(only),
                                   workers=workers,
                                   bridge=not no_bridge, bridges=bridges,
                                   media=not no_media,
                                   beat=not no_beat, flower=not no_flower, api=not no_api,
                                   run_dir=run_dir)
        for item in extra:
            name, sep, command = item.partition("=")
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise sup.SpecError(f"--process {item!r}: {exc}") from None
            if not sep or not argv:
                raise sup.SpecError(f"--process {item!r}: expected NAME=COMMAND")
            specs = [s for s in specs if s.name != name.strip()]
            specs.append(sup.ProcessSpec(name.strip(), tuple(argv)))
    except sup.SpecError as exc:
        raise click.UsageError(str(exc)) from None
    if not specs:
        raise click.UsageError("nothing to run (every process was left out)")

    supervisor = sup.Supervisor(specs, stop_timeout=stop_timeout,
                                secrets=sup.secrets_of(settings))
    if dry_run:
        for spec in specs:
            click.echo(f"{spec.name}: {shlex.join(spec.argv)}")
        return
    if not no_check and not _report(check_services(settings), quiet_ok=True):
        click.echo("whistle up: not starting; start the services above first "
                   "(or pass --no-check).", err=True)
        sys.exit(1)
    if not no_check:
        _migrate(supervisor)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    supervisor.say(f"whistle up: {len(specs)} processes, amqp {redact_url(settings.amqp_url)}"
                   "; Ctrl-C or SIGTERM stops them all")
    sys.exit(supervisor.run_forever(on_started=supervisor.print_status))


def _migrate(supervisor: Any) -> None:  # noqa: ANN401
    """Number documents of before callflows become callflows (once; later runs find none)."""
    from whistle_tasks.core.couch import CouchError
    from whistle_tasks.ops import callflows

    try:
        done = callflows.migrate()
    except CouchError as exc:
        supervisor.say(f"whistle up: callflow migration not done ({exc}); "
                       "`whistle callflow migrate` does it later")
        return
    if done["migrated"] or done["failed"]:
        supervisor.say(f"whistle up: {done['migrated']} numbers migrated to callflows"
                       f" ({done['failed']} failed, see the log)")


def spec_named(name: str, run_dir: str = ".run") -> ProcessSpec:
    """The platform process NAME: ``bridge``, ``media``, ``beat``, ``flower``, ``WHAPP`` or
    ``WHAPP-N``.

    ``WHAPP-N`` exists for any N (not only up to ``workers_of``), so a host can run worker
    N of a whapp under systemd (``whistle-worker@registrar-2``) whatever the settings say.
    """
    from whistle_tasks.core.amqp import WHAPP_BINDINGS
    from whistle_tasks.ops import supervisor as sup

    whapp, _, index = name.rpartition("-")
    if name not in sup.PLATFORM_EXTRAS and name not in WHAPP_BINDINGS and not (
            whapp in WHAPP_BINDINGS and index.isdigit() and int(index) >= 1):
        raise sup.SpecError(
            f"no platform process {name!r}: one of {', '.join(sup.PLATFORM_EXTRAS)}, a whapp "
            f"({', '.join(WHAPP_BINDINGS)}) or WHAPP-N with N >= 1")
    if whapp in WHAPP_BINDINGS:
        specs = sup.platform_specs(settings, only=[whapp], workers={whapp: int(index)},
                                   bridge=False, media=False, beat=False, flower=False,
                                   run_dir=run_dir)
    elif name in sup.PLATFORM_EXTRAS:
        specs = sup.platform_specs(settings, only=[], run_dir=run_dir)
    else:
        specs = sup.platform_specs(settings, only=[name], workers={name: 1}, bridge=False,
                                   media=False, beat=False, flower=False, run_dir=run_dir)
        name = f"{name}-1"
    for spec in specs:
        if spec.name == name:
            return spec
    raise sup.SpecError(f"no platform process {name!r}")  # pragma: no cover - defensive


@click.command("run")
@click.argument("name")
@click.option("--run-dir", default=".run", show_default=True, type=click.Path(file_okay=False),
              help="Where beat keeps its schedule.")
@click.option("--dry-run", is_flag=True, help="Print the command instead of running it.")
def run_cmd(name: str, run_dir: str, dry_run: bool) -> None:
    """Run one platform process in the foreground, as `whistle up` would start it.

    NAME is bridge, media, beat, flower, api, a whapp (its worker 1) or WHAPP-N (e.g.
    registrar-2).
    For systemd units and Procfiles: the command line comes from the settings
    (WHISTLE_WORKER_POOLS, WHISTLE_FLOWER_ADDRESS...), so they cannot drift apart.
    """
    import os

    from whistle_tasks.ops import supervisor as sup

    try:
        spec = spec_named(name, run_dir)
    except sup.SpecError as exc:
        raise click.UsageError(str(exc)) from None
    if dry_run:
        click.echo(shlex.join(spec.argv))
        return
    if spec.name == "beat":
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    os.execv(spec.argv[0], list(spec.argv))  # noqa: S606 - our own argv, no shell


def register(group: click.Group) -> None:
    """Add ``up``, ``run`` and ``check`` to the ``whistle`` command."""
    group.add_command(up_cmd)
    group.add_command(run_cmd)
    group.add_command(check_cmd)
