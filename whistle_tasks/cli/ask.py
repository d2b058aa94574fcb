"""``whistle ask authn|route|registrations``: send one request by the calling convention and
print the answer — what the bridge does for FreeSWITCH, from the command line.

Useful to check a device's credentials or a number's route without a switch::

    whistle ask authn --realm example.com --username 1000
    whistle ask route --realm example.com --number 5000 --from 1000
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import click

import schemas
from schemas import contracts
from whistle_tasks.ops.ask import request


def _show(answer: dict[str, Any] | None, show_secrets: bool, timeout: float) -> None:
    if answer is None:
        raise click.ClickException(f"no answer within {timeout:g}s (is a worker running?)")
    if not show_secrets and answer.get("Auth-Password"):
        answer = {**answer, "Auth-Password": "****"}
    click.echo(json.dumps(answer, indent=2, sort_keys=True))


@click.group("ask")
def ask() -> None:
    """Send one Whistle request and print the answer."""


@ask.command("authn")
@click.option("--realm", required=True)
@click.option("--username", required=True)
@click.option("--timeout", default=5.0, show_default=True)
@click.option("--show-secrets", is_flag=True, help="Print the password / a1-hash.")
def ask_authn(realm: str, username: str, timeout: float, show_secrets: bool) -> None:
    """What FreeSWITCH would be told when USERNAME@REALM authenticates."""
    msg = schemas.build("authn_req", {
        "Auth-Realm": realm, "Auth-User": username, "From": f"sip:{username}@{realm}",
        "To": f"sip:{username}@{realm}", "Method": "REGISTER"}, **{"App-Name": "whistle-cli"})
    _show(request(contracts.AUTHN, msg, timeout), show_secrets, timeout)


@ask.command("route")
@click.option("--realm", required=True)
@click.option("--number", required=True, help="The dialled number.")
@click.option("--from", "caller", default="", help="The calling device's username, if any.")
@click.option("--timeout", default=5.0, show_default=True)
def ask_route(realm: str, number: str, caller: str, timeout: float) -> None:
    """Where a call to NUMBER in REALM would go."""
    ccvs = {"Realm": realm, "Username": caller} if caller else {}
    msg = schemas.build("route_req", {
        "Request": f"{number}@{realm}", "To": f"{number}@{realm}",
        "From": f"{caller or 'unknown'}@{realm}", "Call-ID": f"cli-{uuid.uuid4().hex}",
        "Custom-Channel-Vars": ccvs}, **{"App-Name": "whistle-cli"})
    _show(request(contracts.ROUTE, msg, timeout), False, timeout)


@ask.command("registrations")
@click.option("--realm", required=True)
@click.option("--username")
@click.option("--timeout", default=5.0, show_default=True)
def ask_registrations(realm: str, username: str | None, timeout: float) -> None:
    """A reg_query to the registrar."""
    data: dict[str, Any] = {"Realm": realm}
    if username:
        data["Username"] = username
    msg = schemas.build("reg_query", data, **{"App-Name": "whistle-cli"})
    _show(request(contracts.REG_QUERY, msg, timeout), False, timeout)


def register(main: click.Group) -> None:
    main.add_command(ask)
