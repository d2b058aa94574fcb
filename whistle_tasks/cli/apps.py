"""``whistle app list|start|stop``: switch a whapp off and on without restarting workers.

The seed's ``whapps_controller:start_app/stop_app``. ``stop NAME`` makes the workers that
consume the whapp's queue stop consuming it (Celery ``cancel_consumer``): they keep running,
the durable queue keeps its bindings and collects the requests, which are served once
``start NAME`` makes workers consume it again (``add_consumer``). Who gets the command:

* ``stop``: every worker consuming the queue now (``--destination`` to pick some);
* ``start``: the whapp's own workers, those named ``<whapp>-<n>@host`` as ``whistle up``
  names them (``--destination`` for any other, e.g. a worker serving several whapps).

A stop lasts until the worker process restarts. Exit status 1 when no worker answered or a
worker did not end up in the asked state.
"""

from __future__ import annotations

import json
import sys

import click

from whistle_tasks.cli.table import echo
from whistle_tasks.ops import platform as control

TIMEOUT = click.option("--timeout", default=control.DEFAULT_TIMEOUT, show_default=True,
                       type=click.FloatRange(0.1, 60),
                       help="Seconds to wait for the workers' answers.")


def _whapp(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return control.check_whapp(value)
    except control.UnknownWhapp as exc:
        raise click.BadParameter(str(exc)) from None


def _queues_or_exit(names: list[str]) -> dict[str, control.QueueState]:
    try:
        return control.queue_states(names)
    except control.ControlError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("app")
def app_group() -> None:
    """List the whapps, or stop/start one without restarting its workers."""


@app_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON, for machines.")
@TIMEOUT
def list_cmd(as_json: bool, timeout: float) -> None:
    """Each whapp: its queue, messages waiting, consumers, the workers consuming it and the
    queue's bindings (exchange and routing key)."""
    names = control.whapp_names()
    queues = _queues_or_exit(names)
    try:
        by_queue = control.consumers_of(control.active_queues(timeout))
    except control.ControlError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([
            {"whapp": name, "queue": queues[name].name, "messages": queues[name].messages,
             "consumers": queues[name].consumers, "workers": by_queue.get(name, []),
             "bindings": [{"exchange": e, "routing_key": k}
                          for e, k in control.queue_bindings(name)],
             "problem": queues[name].problem or None} for name in names], indent=2))
        return
    rows = []
    for name in names:
        q = queues[name]
        bindings = [f"{e} {k}" for e, k in control.queue_bindings(name)]
        rows.append((name, q.name, "-" if q.messages is None else q.messages,
                     "-" if q.consumers is None else q.consumers,
                     ", ".join(by_queue.get(name, [])) or "-", bindings[0]))
        rows.extend(("", "", "", "", "", b) for b in bindings[1:])
    echo(["whapp", "queue", "messages", "consumers", "workers", "bindings"], rows)
    for name in names:
        if queues[name].problem:
            click.echo(f"{name}: {queues[name].problem}", err=True)


def _report(result: control.SwitchResult, waiting: int | None) -> None:
    verb = "consuming" if result.action == "start" else "stopped"
    if result.replies:
        echo(["worker", "answer", "now"],
             [(w, answer, verb if result.confirmed.get(w) else "NOT " + verb)
              for w, answer in sorted(result.replies.items())])
    for worker in result.silent:
        click.echo(f"{worker}: no answer", err=True)
    if result.problem:
        click.echo(f"{result.action} {result.whapp}: {result.problem}", err=True)
    if waiting:
        click.echo(f"{waiting} message(s) waiting in queue {result.whapp!r}")


def _switch(action: str, name: str, destination: tuple[str, ...], timeout: float) -> None:
    waiting = _queues_or_exit([name])[name].messages
    fn = control.start_whapp if action == "start" else control.stop_whapp
    try:
        result = fn(name, list(destination) or None, timeout)
    except control.ControlError as exc:
        raise click.ClickException(str(exc)) from None
    _report(result, waiting)
    if action == "stop":
        own = set(control.own_workers(name, result.replies))
        others = [w for w in sorted(result.replies) if w not in own]
        if others:
            click.echo(f"to resume: whistle app start {name} " +
                       " ".join(f"--destination {w}" for w in others)
                       + ("   (and without --destination for its own workers)"
                          if len(others) < len(result.replies) else ""))
    if not result.ok:
        sys.exit(1)


DESTINATION = click.option(
    "--destination", "-d", multiple=True, metavar="WORKER@HOST",
    help="Only this worker (node name, repeatable).")


@app_group.command("stop")
@click.argument("name", callback=_whapp)
@DESTINATION
@TIMEOUT
def stop_cmd(name: str, destination: tuple[str, ...], timeout: float) -> None:
    """Stop the whapp NAME: workers consuming its queue stop consuming it (they keep
    running; requests wait in the queue). Default: every worker consuming it now."""
    _switch("stop", name, destination, timeout)


@app_group.command("start")
@click.argument("name", callback=_whapp)
@DESTINATION
@TIMEOUT
def start_cmd(name: str, destination: tuple[str, ...], timeout: float) -> None:
    """Start the whapp NAME again: workers consume its queue (with all its bindings).
    Default: the whapp's own workers, named NAME-<n>@host as `whistle up` names them."""
    _switch("start", name, destination, timeout)


def register(main: click.Group) -> None:
    main.add_command(app_group)
