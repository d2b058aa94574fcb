"""The README's "write your own module", as written there: its code in a package of the
operator's own, loaded by WHISTLE_CALLFLOW_MODULES into the callflow worker and into the
validator, given a number, and run on a call through the stand-in switch."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import callflowkit as kit
from tests import support
from tests.esl_standin import EslStandIn
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.whapps.callflow import registry

pytestmark = pytest.mark.usefixtures("whapp_worker")


def readme_module() -> str:
    text = (support.ROOT / "README.md").read_text()
    section = text.split("## Write your own module", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("operator")
    (root / "acme_modules.py").write_text(readme_module())
    return root


@pytest.fixture(scope="module", autouse=True)
def workers(package: Path) -> Iterator[None]:
    env = {"PYTHONPATH": str(package), "WHISTLE_CALLFLOW_MODULES": "acme_modules"}
    router = support.start_worker("router", name="own-router", pool="threads", concurrency=4)
    callflow = support.start_worker("callflow", name="own-callflow", pool="gevent",
                                    concurrency=20, env=env)
    sys.path.insert(0, str(package))
    registry.load("acme_modules")         # what the CLI does with the same setting
    yield
    sys.path.remove(str(package))
    router.stop()
    callflow.stop()


def test_the_readme_module_is_validated_and_runs(bridge: dict, standin: EslStandIn,
                                                 realm: str) -> None:
    assert "countdown" in cf_ops.modules()
    with pytest.raises(cf_ops.CallflowInvalid) as caught:
        cf_ops.save(realm, {"numbers": ["6000"], "flow": {
            "module": "countdown", "data": {"from": "three"},
            "children": {"finished": {"module": "hangup"}}}})
    assert set(caught.value.errors) == {"flow.data.from", "flow.children.finished"}
    cf_ops.save(realm, {"numbers": ["6000"], "flow": {
        "module": "countdown", "data": {"from": 3},
        "children": {"done": {"module": "play", "data": {"media": "ivr/liftoff.wav"}}}}})
    script = kit.Script(standin)
    try:
        call_id = kit.place(bridge, realm, "6000")
        kit.wait_done(standin, call_id)
    finally:
        script.close()
    assert kit.apps(standin, call_id) == [
        ("answer", None), ("say", "en number pronounced 3"), ("say", "en number pronounced 2"),
        ("say", "en number pronounced 1"), ("playback", "ivr/liftoff.wav"), ("hangup", None)]
