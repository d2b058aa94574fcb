"""``whistle account|device|number|registrations``: provisioning from the command line."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from schemas.route import GATEWAY_INVITE_FORMATS
from whistle_tasks.cli import caller_id as cid_opts
from whistle_tasks.cli.table import echo, mask
from whistle_tasks.core import numbers as numfmt
from whistle_tasks.ops import provisioning as prov


@click.group("account")
def account() -> None:
    """Accounts (tenants), each with its SIP realm."""


@account.command("create")
@click.argument("name")
@click.option("--realm", required=True, help="The account's SIP realm (domain).")
@click.option("--number-format", type=click.Choice(numfmt.FORMATS), default="e164",
              show_default=True, help="How dialled numbers are normalised for routing.")
@click.option("--timezone", help="IANA time zone of time-of-day routing (default UTC).")
def account_create(name: str, realm: str, number_format: str, timezone: str | None) -> None:
    """Create an account NAME with its realm."""
    doc = prov.create_account(name, realm, number_format=number_format, timezone=timezone)
    click.echo(f"account {doc['name']} created: realm {doc['realm']}, id {doc['_id']}")


@account.command("list")
def account_list() -> None:
    """Every account."""
    echo(["name", "realm", "enabled", "id"],
         [(a["name"], a["realm"], "yes" if a["enabled"] else "no", a["id"])
          for a in sorted(prov.list_accounts(), key=lambda a: a["realm"])])


@account.command("set")
@click.option("--realm", required=True)
@click.option("--timezone", help="IANA time zone of time-of-day routing (Europe/Paris).")
def account_set(realm: str, timezone: str | None) -> None:
    """Change an account's settings."""
    if not timezone:
        raise click.UsageError("nothing to change")
    prov.update_account(realm, {"timezone": timezone})
    click.echo(f"account of {realm.lower()}: time zone {timezone}")


@account.command("update")
@click.option("--realm", required=True)
@click.option("--timezone", help="IANA time zone of time-of-day routing (Europe/Paris).")
@cid_opts.options
def account_update(realm: str, timezone: str | None, **caller: Any) -> None:  # noqa: ANN401
    """Change an account's settings: its caller id (what its devices and users present
    when they set none) and time zone."""
    changes = cid_opts.pop(caller)
    if timezone:
        changes["timezone"] = timezone
    if not changes:
        raise click.UsageError("nothing to change")
    doc = prov.update_account(realm, changes)
    click.echo(f"account of {realm.lower()} changed; caller id: "
               f"{cid_opts.shown(doc) or '(none)'}")


@account.command("disable")
@click.option("--realm", required=True)
def account_disable(realm: str) -> None:
    """Refuse every device of the account from now on."""
    prov.set_account_enabled(realm, False)
    click.echo(f"account of {realm.lower()} disabled")


@account.command("enable")
@click.option("--realm", required=True)
def account_enable(realm: str) -> None:
    """Accept the account's devices again."""
    prov.set_account_enabled(realm, True)
    click.echo(f"account of {realm.lower()} enabled")


@click.group("device")
def device() -> None:
    """SIP devices (phones) and their credentials."""


@device.command("create")
@click.option("--realm", required=True)
@click.option("--username", required=True)
@click.option("--password", help="The SIP password.")
@click.option("--a1-hash", "a1",
              help="Only md5(user:realm:password), when the password must not be stored.")
@click.option("--name", help="A label for the device.")
@cid_opts.options
def device_create(realm: str, username: str, password: str | None, a1: str | None,
                  name: str | None, **caller: Any) -> None:  # noqa: ANN401
    """Create a device with a password or an a1-hash (and its caller id)."""
    extra = cid_opts.pop(caller)
    doc = prov.create_device(realm, username, password=password, a1=a1, name=name, extra=extra)
    click.echo(f"device {doc['sip']['username']}@{doc['realm']} created: id {doc['_id']}")


@device.command("update")
@click.option("--realm", required=True)
@click.option("--username", required=True)
@click.option("--name", help="A label for the device.")
@cid_opts.options
def device_update(realm: str, username: str, name: str | None,
                  **caller: Any) -> None:  # noqa: ANN401
    """Change a device's label or caller id (an empty value removes a field)."""
    changes = cid_opts.pop(caller)
    if name:
        changes["name"] = name
    if not changes:
        raise click.UsageError("nothing to change")
    doc = prov.update_device(realm, username, changes)
    click.echo(f"device {username.lower()}@{realm.lower()} changed; caller id: "
               f"{cid_opts.shown(doc) or '(none)'}")


@device.command("list")
@click.option("--realm", help="Only this realm's devices.")
@click.option("--show-secrets", is_flag=True, help="Print passwords and a1-hashes.")
def device_list(realm: str | None, show_secrets: bool) -> None:
    """Devices with their auth method (secrets masked)."""
    rows = []
    for d in prov.list_devices(realm):
        sip = d.get("sip", {})
        method = "password" if sip.get("password") else "a1-hash"
        rows.append((d["realm"], d["username"], method,
                     mask(sip.get("password") or sip.get("a1_hash"), show_secrets),
                     "yes" if d.get("enabled", True) else "no", cid_opts.shown(d),
                     d.get("authorizing_id")))
    echo(["realm", "username", "auth", "secret", "enabled", "caller id", "id"], rows)


def _device_action(name: str, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.option("--realm", required=True)
    @click.option("--username", required=True)
    def action(realm: str, username: str) -> None:
        if name == "delete":
            prov.delete_device(realm, username)
        else:
            prov.set_device_enabled(realm, username, name == "enable")
        click.echo(f"device {username.lower()}@{realm.lower()} {name}d")

    return action


device.add_command(_device_action("disable", "Refuse the device on its very next request."))
device.add_command(_device_action("enable", "Accept the device again."))
device.add_command(_device_action("delete", "Delete the device (its account keeps a tombstone)."))


@click.command("registrations")
@click.option("--realm", help="Only this realm.")
def registrations_cmd(realm: str | None) -> None:
    """Registered contacts now."""
    from whistle_tasks.data import registrations as regs

    now = dt.datetime.now(dt.UTC).timestamp()
    rows = []
    for r in sorted(regs.query(realm or "all"), key=lambda r: (r["Realm"], r["Username"])):
        left = int(float(r["Event-Timestamp"]) + int(r["Expires"]) - now)
        rows.append((r["Realm"], r["Username"], r["Contact"], r.get("User-Agent", ""),
                     f"{left}s" if left > 0 else "expired"))
    echo(["realm", "username", "contact", "user agent", "expires in"], rows)


@click.group("number")
def number() -> None:
    """Phone numbers and where they route."""


@number.command("add")
@click.argument("number_")
@click.option("--realm", required=True)
@click.option("--to", "target", required=True,
              help="device:USER | uri:SIP-URI | gateway:HOST | app:NAME | error:CODE[:MESSAGE] "
                   "(a one-node callflow: see `whistle callflow`)")
@click.option("--format", "invite_format", type=click.Choice(GATEWAY_INVITE_FORMATS),
              help="How the number is sent to a gateway (default e164).")
@click.option("--replace", is_flag=True, help="Re-assign a number that is already assigned.")
def number_add(number_: str, realm: str, target: str, invite_format: str | None,
               replace: bool) -> None:
    """Assign NUMBER (or no_match, the fallback) in a realm."""
    doc = prov.add_number(number_, realm, target, invite_format=invite_format, replace=replace)
    click.echo(f"number {doc['number']} → {target} in {realm.lower()}")


@number.command("list")
@click.option("--realm", required=True)
def number_list(realm: str) -> None:
    """The numbers of a realm."""
    echo(["number", "target", "callflow"],
         [(row["number"], row["target"], row["callflow"]) for row in prov.list_numbers(realm)])


@number.command("delete")
@click.argument("number_")
@click.option("--realm", required=True)
def number_delete(number_: str, realm: str) -> None:
    """Unassign NUMBER."""
    prov.delete_number(number_, realm)
    click.echo(f"number {number_} deleted from {realm.lower()}")


def register(main: click.Group) -> None:
    for cmd in (account, device, registrations_cmd, number):
        main.add_command(cmd)
