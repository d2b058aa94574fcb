"""``whistle call originate``: click-to-call from the command line (see ``ops/calls.py``)."""

from __future__ import annotations

import click

from whistle_tasks.ops import calls


@click.group("call")
def call() -> None:
    """Place calls."""


@call.command("originate")
@click.option("--realm", required=True, help="The account's realm.")
@click.option("--from", "caller", required=True, help="The device that rings first.")
@click.option("--to", "callee", required=True, help="The number it is then connected to.")
@click.option("--timeout", default=30, show_default=True,
              help="Seconds the caller's phones ring.")
def originate(realm: str, caller: str, callee: str, timeout: int) -> None:
    """Ring device FROM; when it answers, connect it to TO as a call it had dialled.
    Prints the call id."""
    try:
        click.echo(calls.click_to_call(realm, caller, callee, timeout=timeout))
    except calls.CallFailed as exc:
        raise click.ClickException(str(exc)) from None


def register(main: click.Group) -> None:
    main.add_command(call)
