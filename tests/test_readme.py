"""The README stays true: its configuration table is the one the code generates, and it
shows the two commands."""

from __future__ import annotations

from tests.support import ROOT
from whistle_tasks.core import config


def test_readme_shows_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- config-table:start -->")[1].split("<!-- config-table:end -->")[0]
    assert table.strip() == config.docs_table().strip()


def test_readme_shows_the_two_commands_and_ci_runs_the_same() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
