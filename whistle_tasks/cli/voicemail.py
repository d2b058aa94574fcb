"""``whistle voicemail ...`` (boxes and their messages) and ``whistle prompt upload``."""

from __future__ import annotations

import datetime as dt

import click

from whistle_tasks.cli.table import echo
from whistle_tasks.ops import voicemail as ops


@click.group("voicemail")
def voicemail() -> None:
    """Voicemail boxes and their messages."""


@voicemail.command("create")
@click.option("--realm", required=True)
@click.option("--mailbox", required=True, help="The box's number (what its owner dials).")
@click.option("--owner", help="The user (user name) whose box it is: their phones show its "
                              "message-waiting lamp.")
@click.option("--name", help="A label for the box.")
@click.option("--pin", help="The PIN that opens the box (4 to 12 digits).")
@click.option("--email", multiple=True, help="Mail new messages here (repeatable).")
@click.option("--timezone", help="The box's time zone (IANA, e.g. Europe/Paris) for mails.")
@click.option("--max-length", type=click.IntRange(5, 3600), help="Longest message (seconds).")
@click.option("--min-length", type=click.IntRange(0, 60),
              help="Shorter messages are not kept (seconds, default 2).")
def create(realm: str, mailbox: str, owner: str | None, name: str | None, pin: str | None,
           email: tuple[str, ...], timezone: str | None, max_length: int | None,
           min_length: int | None) -> None:
    """Create a voicemail box."""
    doc = ops.create_box(realm, mailbox, name=name, owner=owner, pin=pin, email=list(email),
                         timezone=timezone, max_message_length=max_length,
                         min_message_length=min_length)
    click.echo(f"mailbox {doc['mailbox']} created in {doc['realm']}: id {doc['_id']}")


@voicemail.command("list")
@click.option("--realm", required=True)
def list_(realm: str) -> None:
    """The realm's boxes with their new and saved messages."""
    rows = sorted(ops.list_boxes(realm), key=lambda b: b["mailbox"])
    echo(["mailbox", "name", "owner", "new", "saved", "pin", "email", "id"],
         [(b["mailbox"], b.get("name") or "", b.get("owner_id") or "", b["new"], b["saved"],
           "yes" if b.get("pin_hash") else "no", ",".join(b.get("email") or []), b["_id"])
          for b in rows])


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    return dt.datetime.fromtimestamp(float(timestamp), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@voicemail.command("messages")
@click.option("--realm", required=True)
@click.option("--mailbox", required=True)
@click.option("--folder", type=click.Choice(["new", "saved"]), help="Only this folder.")
def messages(realm: str, mailbox: str, folder: str | None) -> None:
    """A box's messages, oldest first (times in UTC)."""
    echo(["id", "folder", "received (UTC)", "seconds", "caller"],
         [(m["_id"], m["folder"], _when(m.get("timestamp")),
           f"{(m.get('length') or 0) / 1000:.1f}",
           " ".join(filter(None, (m.get("caller_id_name"), m.get("caller_id_number")))))
          for m in ops.messages(realm, mailbox, folder)])


@voicemail.command("play-url")
@click.option("--realm", required=True)
@click.option("--mailbox", required=True)
@click.argument("message_id")
def play_url(realm: str, mailbox: str, message_id: str) -> None:
    """A signed URL that plays one message (it expires; see WHISTLE_MEDIA_URL_TTL)."""
    click.echo(ops.play_url(realm, mailbox, message_id))


@voicemail.command("set-pin")
@click.option("--realm", required=True)
@click.option("--mailbox", required=True)
@click.option("--pin", required=True, prompt=True, hide_input=True)
def set_pin(realm: str, mailbox: str, pin: str) -> None:
    """Change a box's PIN."""
    ops.set_pin(realm, mailbox, pin)
    click.echo(f"PIN of mailbox {mailbox} changed")


@voicemail.command("delete-message")
@click.option("--realm", required=True)
@click.option("--mailbox", required=True)
@click.argument("message_id")
def delete_message(realm: str, mailbox: str, message_id: str) -> None:
    """Delete one message (its audio too); the owner's phones are told."""
    ops.delete_message(realm, mailbox, message_id)
    click.echo(f"message {message_id} deleted")


@click.group("prompt")
def prompt() -> None:
    """Prompts: recordings that menus and voicemail play, kept in CouchDB."""


@prompt.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="The prompt's name (default: the file name without .wav), e.g. "
                             "vm-enter_pass.")
@click.option("--realm", help="The account's own prompt (default: for every account).")
def upload(path: str, name: str | None, realm: str | None) -> None:
    """Store a PCM WAV file as a prompt."""
    doc = ops.upload_prompt(path, name=name, realm=realm)
    facts = next(iter((doc.get("pvt_media") or {}).values()), {})
    where = f"account {realm.lower()}" if realm else "every account"
    click.echo(f"prompt {doc.get('name')} stored for {where}: "
               f"{facts.get('length_ms', 0) / 1000:.1f} s, {facts.get('bytes', 0)} bytes")


def register(group: click.Group) -> None:
    group.add_command(voicemail)
    group.add_command(prompt)
