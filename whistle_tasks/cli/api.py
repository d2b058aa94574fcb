"""``whistle api`` (the REST API and its console, under gunicorn) and ``whistle api-key``."""

from __future__ import annotations

import datetime as dt
import os
import sys

import click

from whistle_tasks.cli.table import echo
from whistle_tasks.core.config import settings


def gunicorn_argv(python: str = sys.executable, listen: str | None = None,
                  workers: int | None = None) -> list[str]:
    """The command that serves the API (as ``whistle up`` runs it)."""
    from whistle_tasks.ops.supervisor import api_argv

    return api_argv(settings, python, listen, workers)


@click.command("api")
@click.option("--listen", help="HOST:PORT (default WHISTLE_API_LISTEN).")
@click.option("--workers", type=int, help="gunicorn workers (default WHISTLE_API_WORKERS).")
def api_cmd(listen: str | None, workers: int | None) -> None:
    """Serve the REST API v1 and the console (gunicorn, gevent workers)."""
    argv = gunicorn_argv(listen=listen, workers=workers)
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, our own arguments


@click.group("api-key")
def api_key() -> None:
    """Keys of the REST API: one per account (sees only its account), or system keys."""


@api_key.command("create")
@click.option("--realm", help="The account the key belongs to.")
@click.option("--system", is_flag=True, help="A system key: the operator's, every account.")
@click.option("--name", default="", help="A label.")
def api_key_create(realm: str | None, system: bool, name: str) -> None:
    """Create a key; it is printed once (only its hash is kept)."""
    from whistle_tasks.ops import api_keys

    if bool(realm) == system:
        raise click.UsageError("give --realm R (an account's key) or --system")
    key, doc = api_keys.create(realm, name=name)
    click.echo(key)
    click.echo(f"key {doc['_id']} for {doc['realm'] or 'the system'} created: keep it, it "
               "is not shown again", err=True)


@api_key.command("list")
@click.option("--realm", help="Only this account's keys.")
def api_key_list(realm: str | None) -> None:
    """Keys (their ids, never the keys)."""
    from whistle_tasks.ops import api_keys

    rows = [(k["_id"], k.get("realm") or "(system)", k.get("name", ""),
             dt.datetime.fromtimestamp(k.get("created", 0), dt.UTC).strftime("%Y-%m-%d %H:%M"),
             "revoked" if k.get("revoked") else "active") for k in api_keys.list_keys(realm)]
    echo(["id", "account", "name", "created", "state"], rows)


@api_key.command("revoke")
@click.argument("key_id")
def api_key_revoke(key_id: str) -> None:
    """Revoke a key at once (every API process forgets it)."""
    from whistle_tasks.ops import api_keys

    api_keys.revoke(key_id)
    click.echo(f"key {key_id} revoked")


def register(main: click.Group) -> None:
    main.add_command(api_cmd)
    main.add_command(api_key)
