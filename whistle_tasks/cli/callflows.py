"""``whistle callflow|user|group``: callflows, the users they ring and ring groups."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from whistle_tasks.cli import caller_id as cid_opts
from whistle_tasks.cli.table import echo
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import users as user_ops


@click.group("callflow")
def callflow() -> None:
    """Callflows: what a call to a number does (a tree of modules)."""


@callflow.command("set")
@click.argument("number_")
@click.argument("source", type=click.File("r"))
@click.option("--realm", required=True)
@click.option("--name", help="A label for the callflow.")
def callflow_set(number_: str, source: click.utils.LazyFile, realm: str,
                 name: str | None) -> None:
    """Give NUMBER the callflow of SOURCE (a JSON file, or - for stdin).

    SOURCE is the flow (a node: {"module", "data", "children"}) or a whole callflow
    ({"flow", "numbers", "patterns", "name"}); NUMBER is added to its numbers. The
    callflow NUMBER had is replaced. Every problem is printed with its path.
    """
    doc = cf_ops.load_json(source.read())
    if isinstance(doc, dict) and "module" in doc and "flow" not in doc:
        doc = {"flow": doc}
    if not isinstance(doc, dict):
        raise cf_ops.CallflowInvalid({"_schema": ["expected a JSON object"]})
    numbers = list(doc.get("numbers") or []) if isinstance(doc.get("numbers"), list) else []
    if number_ not in numbers:
        numbers.insert(0, number_)
    doc = {**doc, "numbers": numbers}
    if name:
        doc["name"] = name
    try:
        current = cf_ops.find(realm, number_)["_id"]
    except cf_ops.ProvisioningError:
        current = None
    saved = cf_ops.save(realm, doc, callflow_id=doc.get("_id") or current)
    click.echo(f"callflow {saved['_id']} saved in {realm.lower()}: "
               f"{', '.join(saved.get('numbers') or []) or '-'}"
               f"{' patterns ' + ', '.join(saved['patterns']) if saved.get('patterns') else ''}"
               f" → {cf_ops.describe(saved['flow'])}")


@callflow.command("show")
@click.argument("ident")
@click.option("--realm", required=True)
def callflow_show(ident: str, realm: str) -> None:
    """The callflow of a number (or with this id), as JSON."""
    doc = cf_ops.find(realm, ident)
    shown = {k: v for k, v in doc.items() if not k.startswith(("_rev", "pvt_"))}
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))


@callflow.command("list")
@click.option("--realm", required=True)
def callflow_list(realm: str) -> None:
    """Every callflow of a realm."""
    echo(["id", "name", "numbers", "patterns", "flow"],
         [(d["_id"], d.get("name") or "", " ".join(d.get("numbers") or []),
           " ".join(d.get("patterns") or []), cf_ops.describe(d["flow"]))
          for d in cf_ops.list_all(realm)])


@callflow.command("delete")
@click.argument("ident")
@click.option("--realm", required=True)
def callflow_delete(ident: str, realm: str) -> None:
    """Delete the callflow of a number (or with this id), with all its numbers."""
    doc = cf_ops.delete(realm, ident)
    click.echo(f"callflow {doc['_id']} deleted from {realm.lower()}")


@callflow.command("modules")
def callflow_modules() -> None:
    """The modules a callflow may name, with their data fields and outcomes."""
    rows = []
    for name, spec in sorted(cf_ops.modules().items()):
        fields = [f"{f}*" if f in spec.data.required else f for f in spec.data.fields]
        rows.append((name, " ".join(fields) or "-", spec.outcome_words({})))
    echo(["module", "data (* required)", "outcomes"], rows)


@callflow.command("migrate")
@click.option("--realm", help="Only this realm.")
def callflow_migrate(realm: str | None) -> None:
    """Rewrite number documents of before callflows as one-node callflows (idempotent)."""
    done = cf_ops.migrate(realm)
    failed = f", {done['failed']} failed" if done["failed"] else ""
    click.echo(f"{done['migrated']} numbers migrated in {done['accounts']} accounts{failed}")
    if done["failed"]:
        sys.exit(1)


@click.group("user")
def user() -> None:
    """Users: people who own devices, ring on all of them, forward and have a voicemail box."""


@user.command("create")
@click.argument("username")
@click.option("--realm", required=True)
@click.option("--name", help="The person's name.")
@cid_opts.options
@click.option("--voicemail-box", help="The number of the user's voicemail box.")
def user_create(username: str, realm: str, name: str | None, voicemail_box: str | None,
                **caller: Any) -> None:  # noqa: ANN401
    """Create the user USERNAME (the caller id of the devices it owns that set none)."""
    ids = cid_opts.pop(caller)
    doc = user_ops.create_user(realm, username, name=name, caller_id=ids.get("caller_id"),
                               caller_id_options=ids.get("caller_id_options"),
                               voicemail_box=voicemail_box)
    click.echo(f"user {doc['username']} created in {realm.lower()}: id {doc['_id']}")


@user.command("list")
@click.option("--realm", required=True)
def user_list(realm: str) -> None:
    """Every user of a realm, with its devices, forwarding and do-not-disturb."""
    rows = []
    for u in user_ops.list_users(realm):
        forward = u.get("call_forward") or {}
        if forward.get("enabled"):
            when = "/".join(k for k in user_ops.FORWARD_WHEN if forward.get(k))
            shown = f"{forward.get('number') or forward.get('uri')} ({when})"
        else:
            shown = ""
        rows.append((u["username"], u.get("name") or "", " ".join(u["devices"]) or "-",
                     shown, "yes" if u.get("do_not_disturb") else "no",
                     u.get("voicemail_box") or ""))
    echo(["username", "name", "devices", "forward", "dnd", "voicemail"], rows)


@user.command("add-device")
@click.argument("username")
@click.argument("device")
@click.option("--realm", required=True)
def user_add_device(username: str, device: str, realm: str) -> None:
    """USERNAME owns the device DEVICE (a SIP username) from now on."""
    user_ops.add_device(realm, username, device)
    click.echo(f"device {device.lower()} belongs to {username.lower()} in {realm.lower()}")


@user.command("forward")
@click.argument("username")
@click.option("--realm", required=True)
@click.option("--to", "target", help="A number or a sip: URI.")
@click.option("--when", "when", multiple=True, type=click.Choice(user_ops.FORWARD_WHEN),
              help="always (default), busy, no_answer; repeat for several.")
@click.option("--keep-caller-id/--own-caller-id", default=True, show_default=True,
              help="The callee sees the caller's id, or the user's.")
@click.option("--off", is_flag=True, help="Stop forwarding.")
def user_forward(username: str, realm: str, target: str | None, when: tuple[str, ...],
                 keep_caller_id: bool, off: bool) -> None:
    """Forward USERNAME's calls (or stop, with --off)."""
    if off == bool(target):
        raise click.UsageError("give --to NUMBER|URI, or --off")
    user_ops.set_forward(realm, username, target=None if off else target, when=when,
                         keep_caller_id=keep_caller_id)
    click.echo(f"{username.lower()}: " + ("forwarding off" if off else
                                          f"forwarded to {target} ({'/'.join(when) or 'always'})"))


@user.command("dnd")
@click.argument("username")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option("--realm", required=True)
def user_dnd(username: str, state: str, realm: str) -> None:
    """Do-not-disturb on or off."""
    user_ops.set_dnd(realm, username, state == "on")
    click.echo(f"{username.lower()}: do-not-disturb {state}")


@user.command("set")
@click.argument("username")
@click.option("--realm", required=True)
@click.option("--voicemail-box", help="The number of the user's voicemail box.")
@click.option("--name")
@cid_opts.options
def user_set(username: str, realm: str, voicemail_box: str | None, name: str | None,
             **caller: Any) -> None:  # noqa: ANN401
    """Change a user's name, voicemail box or caller id (an empty value removes a field)."""
    changes = {k: v for k, v in (("voicemail_box", voicemail_box), ("name", name)) if v}
    changes.update(cid_opts.pop(caller))
    if not changes:
        raise click.UsageError("nothing to change")
    user_ops.update_user(realm, username, changes)
    click.echo(f"user {username.lower()} changed")


@user.command("delete")
@click.argument("username")
@click.option("--realm", required=True)
def user_delete(username: str, realm: str) -> None:
    """Delete a user (its devices stay, owned by nobody)."""
    user_ops.delete_user(realm, username)
    click.echo(f"user {username.lower()} deleted")


@click.group("group")
def group() -> None:
    """Ring groups: named lists of devices, users and numbers, rung together or in turn."""


@group.command("set")
@click.argument("name")
@click.option("--realm", required=True)
@click.option("--member", "members", multiple=True, required=True,
              help="device:USER | user:NAME | number:NUMBER, then ,timeout=S ,delay=S "
                   "(repeat, in ringing order).")
@click.option("--strategy", type=click.Choice(["simultaneous", "sequential"]),
              default="simultaneous", show_default=True)
@click.option("--timeout", type=int, help="Seconds the whole group rings (simultaneous).")
def group_set(name: str, realm: str, members: tuple[str, ...], strategy: str,
              timeout: int | None) -> None:
    """Create or replace the group NAME (a ring_group node names it: {"group": NAME})."""
    doc = user_ops.save_group(realm, name, [user_ops.parse_member(m) for m in members],
                              strategy=strategy, timeout=timeout)
    click.echo(f"group {doc['name']} saved in {realm.lower()}: {len(doc['members'])} members, "
               f"{doc['strategy']}")


@group.command("list")
@click.option("--realm", required=True)
def group_list(realm: str) -> None:
    """Every group of a realm."""
    rows = []
    for g in user_ops.list_groups(realm):
        members = ", ".join(f"{m['type']}:{m['id']}" +
                            "".join(f",{k}={m[k]}" for k in ("timeout", "delay") if m.get(k))
                            for m in g.get("members") or [])
        rows.append((g["name"], g.get("strategy", "simultaneous"), members))
    echo(["name", "strategy", "members"], rows)


@group.command("delete")
@click.argument("name")
@click.option("--realm", required=True)
def group_delete(name: str, realm: str) -> None:
    """Delete a group."""
    user_ops.delete_group(realm, name)
    click.echo(f"group {name} deleted")


def register(main: click.Group) -> None:
    for cmd in (callflow, user, group):
        main.add_command(cmd)
