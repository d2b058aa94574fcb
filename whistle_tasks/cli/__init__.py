"""The ``whistle`` command: provisioning, operations and the processes of the platform.

Every sub-command exits non-zero with a one-line message on error; secrets are masked
unless ``--show-secrets`` is given.
"""

from __future__ import annotations

import sys

import click

from whistle_tasks.core import log
from whistle_tasks.core.config import settings


class _Group(click.Group):
    """Turns our expected errors into ``Error: <message>`` and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        from whistle_tasks.core.couch import CouchError
        from whistle_tasks.ops.provisioning import ProvisioningError

        try:
            return super().invoke(ctx)
        except (ProvisioningError, CouchError) as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """Whistle: a VoIP application platform on FreeSWITCH, RabbitMQ, Celery and CouchDB."""
    log.setup("DEBUG" if verbose else "WARNING" if settings.log_level == "INFO"
              else settings.log_level, settings.log_target)


@main.command("config")
@click.option("--markdown", is_flag=True, help="The README table of every setting.")
def config_cmd(markdown: bool) -> None:
    """Show the settings in effect (secrets masked)."""
    from whistle_tasks.core import config

    if markdown:
        click.echo(config.docs_table())
        return
    for name, value in settings.redacted().items():
        click.echo(f"{config.env_name(name)}={value}")


@main.command("bridge", context_settings={"ignore_unknown_options": True})
def bridge_cmd() -> None:
    """Run a switch bridge (FreeSWITCH's event socket and mod_xml_curl side)."""
    import os

    # a fresh interpreter, so gevent patches the standard library before anything imports it
    os.execv(sys.executable, [sys.executable, "-m", "switch_bridge"])  # noqa: S606


def _register() -> None:
    from whistle_tasks.cli import (
        api,
        apps,
        ask,
        callflows,
        calls,
        cdr,
        imports,
        maintenance,
        ops,
        provision,
        status,
        voicemail,
    )

    provision.register(main)
    callflows.register(main)
    ask.register(main)
    calls.register(main)
    imports.register(main)
    maintenance.register(main)
    ops.register(main)
    status.register(main)
    apps.register(main)
    cdr.register(main)
    api.register(main)
    voicemail.register(main)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
