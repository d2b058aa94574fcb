"""The architecture as tests: the import rules, what a process loads, one contract per request.

* ``lint-imports`` checks the contracts in ``pyproject.toml`` (layers: schemas, core, data,
  Celery, whapps beside the bridge, operations, CLI; the bridge never loads Celery or the
  data libraries; whapps never import each other).
* Importing the bridge or the CLI in a fresh interpreter loads no Celery worker code (the
  bridge no Celery at all).
* Every handler the Celery app registers serves a request kind by its contract, and the
  whapp queues' bindings are the contracts' bindings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import contracts
from schemas.contract import Contract

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def test_import_contracts_are_kept() -> None:
    done = subprocess.run([str(VENV_BIN / "lint-imports")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _modules_after_import(*modules: str) -> set[str]:
    code = ("import json, sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("entry", ["switch_bridge.host", "switch_bridge.__main__"])
def test_the_bridge_loads_no_celery(entry: str) -> None:
    loaded = _modules_after_import(entry)
    assert entry in loaded
    assert not {m for m in loaded if m == "celery" or m.startswith("celery.")}


def test_the_cli_loads_no_celery_worker() -> None:
    loaded = _modules_after_import("whistle_tasks.cli")
    assert "whistle_tasks.cli.ask" in loaded
    assert not {m for m in loaded if m.startswith("celery.worker")}
    assert "whistle_tasks.celery" not in loaded      # built only by the commands that need it


def test_the_celery_app_itself_loads_no_worker_code() -> None:
    loaded = _modules_after_import("whistle_tasks.celery")
    assert not {m for m in loaded if m.startswith("celery.worker")}


def test_every_handler_serves_a_contract_and_bindings_come_from_them() -> None:
    from whistle_tasks.celery import app
    from whistle_tasks.core.amqp import WHAPP_BINDINGS

    app.loader.import_default_modules()
    tasks = {name for name in app.tasks if not name.startswith("celery.")}
    served = {c.task for c in contracts.ALL if c.task and "{" not in c.task}
    served |= {contracts.ROUTE_WIN.address({}, "callflow")[2]}
    internal = {"registrar.expire", "maintenance.compact",     # beat, not requests
                "cdr.retention", "cdr.sweep_calls"}
    assert tasks == served | internal
    for whapp, keys in WHAPP_BINDINGS.items():
        assert set(keys) == {c.binding for c in contracts.ALL if c.whapp == whapp}


def test_contract_keys_normalise_the_realm_the_same_for_every_sender() -> None:
    base = {"Auth-User": "1000", "From": "sip:1000@x", "To": "sip:1000@Example.COM"}
    keys = {contracts.AUTHN.key({**base, "Auth-Realm": realm})
            for realm in ("example.com", "Example.COM", "192.0.2.1")}
    assert keys == {"authn.req.example%2Ecom"}
    reg = {"Realm": "Example.COM", "Username": "Bob"}
    assert contracts.REG_SUCCESS.key(reg) == "registration.success.example%2Ecom.bob"
    route = {"Request": "2000@Example.COM"}
    assert contracts.ROUTE.key(route) == "route.req.example%2Ecom"
    assert contracts.ROUTE.key({**route, "Custom-Channel-Vars": {"Realm": "a.b"}}) == \
        "route.req.a%2Eb"


def test_answers_are_checked_against_their_contract() -> None:
    import schemas

    resp = schemas.build("route_resp", {"Method": "park"})
    assert contracts.ROUTE.check_answer(resp) is resp
    assert contracts.ROUTE.check_answer(schemas.build("error", {"Error-Message": "x"}))
    with pytest.raises(schemas.MessageError, match="does not answer route_req"):
        contracts.ROUTE.check_answer(schemas.build("authn_err", {}))
    broken = dict(resp)
    del broken["Method"]
    with pytest.raises(schemas.MessageError, match="Method"):
        contracts.ROUTE.check_answer(broken)


def test_a_targeted_contract_needs_its_recipient() -> None:
    win: Contract = contracts.ROUTE_WIN
    assert win.address({}, "callflow") == ("targeted", "callflow", "callflow.route_win")
    with pytest.raises(ValueError, match="recipient"):
        win.address({})
