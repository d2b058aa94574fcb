"""``whistle status``: is the platform serving? One look at the bridge, queues, workers,
registrations.

It asks each component itself (see :mod:`whistle_tasks.ops.platform`): the switch bridge's
``/health`` and ``/metrics``, RabbitMQ (passive declares of the whapp queues), the workers
(Celery remote control) and CouchDB (the registrations view). Exit status 0 when every
part answers and every whapp queue has a consumer, 1 otherwise, with one line per problem
(a whapp stopped with ``whistle app stop`` counts: its requests are waiting).
"""

from __future__ import annotations

import json
import sys

import click

from whistle_tasks.cli.table import echo
from whistle_tasks.ops import platform as control


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def print_status(status: control.PlatformStatus) -> None:
    click.echo(f"RabbitMQ {status.amqp_url}")
    click.echo("")
    bridge = status.bridge
    if bridge.answered:
        click.echo(f"Switch bridge {bridge.address}: answers, its RabbitMQ connection is "
                   f"{bridge.amqp}")
        echo(["freeswitch node", "state", "role", "events", "reconnects"],
             [(n.name, n.state, n.role or "-", _n(n.events), _n(n.reconnects))
              for n in bridge.nodes],
             empty="(no FreeSWITCH node configured)")
    else:
        click.echo(f"Switch bridge: {bridge.problem}")
    click.echo("")
    if status.leases:
        echo(["freeswitch (hostname)", "active bridge", "standing by"],
             [(host, lease["active"] or "(none)",
               ", ".join(sid for sid, role in lease["bridges"].items()
                         if sid != lease["active"]) or "-")
              for host, lease in sorted(status.leases.items())])
        click.echo("")
    if status.queues:
        by_queue = control.consumers_of(status.workers)
        echo(["whapp", "queue", "messages", "consumers", "workers"],
             [(name, q.name, _n(q.messages), _n(q.consumers),
               ", ".join(by_queue.get(q.name, [])) or "-") for name, q in status.queues.items()])
        click.echo("")
        echo(["worker", "consumes"],
             [(w, ", ".join(qs) or "(nothing)") for w, qs in status.workers.items()],
             empty="(no worker answered)")
        click.echo("")
    regs = status.registrations
    if regs is not None:
        detail = ", ".join(f"{realm} {n}" for realm, n in regs.by_realm.items())
        if regs.more_realms:
            detail += f", ... (more than {len(regs.by_realm)} realms)"
        click.echo(f"Registrations: {regs.total}" + (f" ({detail})" if detail else ""))
        click.echo("")
    if status.problems:
        click.echo("Problems:")
        for line in status.problems:
            click.echo(f"  - {line}")
    else:
        click.echo("All parts answer.")


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for machines.")
@click.option("--timeout", default=control.DEFAULT_TIMEOUT, show_default=True,
              type=click.FloatRange(0.1, 60),
              help="Seconds to wait for the workers' answers (the bridge gets twice that).")
def status_cmd(as_json: bool, timeout: float) -> None:
    """FreeSWITCH nodes (as the bridge sees them), whapp queues (messages waiting,
    consumers, which workers), workers and their queues, registrations.

    Exit status 1 when something is down or a whapp queue has no consumer (listed under
    "Problems"). Passwords in URLs are masked.
    """
    status = control.platform_status(timeout)
    if as_json:
        click.echo(json.dumps(status.as_dict(), indent=2, sort_keys=True))
    else:
        print_status(status)
    sys.exit(1 if status.problems else 0)


def register(main: click.Group) -> None:
    main.add_command(status_cmd)
