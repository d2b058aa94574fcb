"""``whistle device import`` and ``whistle number import``: bulk provisioning from CSV.

The sub-commands join the ``device`` and ``number`` groups of :mod:`whistle_tasks.cli.provision`.
Each prints a progress bar (on a terminal), then a summary: created / skipped / failed
counts and, for every row not created, its line in the file (header = line 1) and why.
Exit status 1 when any row failed (skips are not failures: re-running a file is harmless).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from whistle_tasks.cli.provision import device, number
from whistle_tasks.cli.table import echo
from whistle_tasks.ops import imports

_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


def _run(kind: str, path: Path, realm: str | None,
         read: Callable[[Path, str | None], imports.CsvTable],
         run: Callable[..., imports.ImportSummary]) -> None:
    try:
        table = read(path, realm)
    except (imports.ImportFileError, OSError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    with click.progressbar(length=len(table), label=f"importing {kind}",
                           file=sys.stderr) as bar:
        summary = run(table, realm, progress=bar.update)
    click.echo(f"{kind}: {summary.created} created, {summary.skipped} skipped, "
               f"{summary.failed} failed ({len(table)} rows in {summary.seconds:.1f}s)")
    problems = summary.problems()
    if problems:
        echo(["line", "outcome", "reason"], [(r.line, r.outcome, r.reason) for r in problems])
    if summary.failed:
        raise SystemExit(1)


@device.command("import")
@click.argument("file", type=_FILE)
@click.option("--realm", help="Realm of the rows whose realm column is empty or absent.")
def device_import(file: Path, realm: str | None) -> None:
    """Create devices from a CSV FILE with a header row.

    Columns: realm (or --realm), username, password or a1_hash, and optionally name,
    caller_id_name, caller_id_number, enabled.
    """
    _run("devices", file, realm, imports.read_devices, imports.import_devices)


@number.command("import")
@click.argument("file", type=_FILE)
@click.option("--realm", help="Realm of the rows whose realm column is empty or absent.")
def number_import(file: Path, realm: str | None) -> None:
    """Assign numbers from a CSV FILE with a header row.

    Columns: realm (or --realm), number, to (device:USER | uri:SIP-URI | gateway:HOST |
    app:NAME | error:CODE[:MESSAGE]), and optionally format (e164, npan, 1npan, route,
    username).
    """
    _run("numbers", file, realm, imports.read_numbers, imports.import_numbers)


def register(main: click.Group) -> None:
    """Nothing to add to ``main``: the commands joined their groups on import."""
    del main
