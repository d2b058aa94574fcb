"""Every callflow module through the whole chain, FreeSWITCH stood in for at its event socket:
a dialplan fetch → the router parks the callflow's number → the bridge sends route_win → the
callflow worker (Celery, gevent pool) runs the tree, and each command reaches the stand-in as
the sendmsg FreeSWITCH would get. Each module is also hung up in the middle: the task ends,
nothing more is sent, and the call's event queue is gone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import callflowkit as kit
from tests import support
from tests.esl_standin import EslStandIn
from whistle_tasks.ops import callflows as cf_ops

pytestmark = pytest.mark.usefixtures("whapp_worker")


@pytest.fixture(scope="module", autouse=True)
def workers() -> Iterator[None]:
    router = support.start_worker("router", name="cf-router", pool="threads", concurrency=8)
    callflow = support.start_worker("callflow", name="cf-callflow", pool="gevent",
                                    concurrency=100)
    yield
    router.stop()
    callflow.stop()
    assert "Traceback" not in callflow.output(), callflow.output()[-4000:]


@pytest.fixture()
def script(standin: EslStandIn) -> Iterator[kit.Script]:
    s = kit.Script(standin)
    yield s
    s.close()


def test_play_then_hangup(bridge: dict, standin: EslStandIn, realm: str,
                          script: kit.Script) -> None:
    cf_ops.save(realm, {"numbers": ["7001"], "flow": {
        "module": "play", "data": {"media": "ivr/welcome.wav"},
        "children": {"_": {"module": "say", "data": {"text": "42"}}}}})
    call_id = kit.place(bridge, realm, "7001")
    assert kit.wait_done(standin, call_id) == ["answer", "playback", "say", "hangup"]
    played = kit.apps(standin, call_id)
    assert played[1] == ("playback", "ivr/welcome.wav")
    assert played[2] == ("say", "en number pronounced 42")


def test_play_hung_up_in_the_middle(bridge: dict, standin: EslStandIn, realm: str,
                                    script: kit.Script) -> None:
    cf_ops.save(realm, {"numbers": ["7002"], "flow": {
        "module": "play", "data": {"media": "ivr/long.wav"},
        "children": {"_": {"module": "play", "data": {"media": "ivr/after.wav"}}}}})
    before = len(kit.call_queues())
    script.on("playback", {"hold": True})
    call_id = kit.place(bridge, realm, "7002")
    support.wait_until(lambda: "playback" in kit.names(standin, call_id), timeout=10)
    assert len(kit.call_queues()) > before      # the call's event queue, while it plays
    standin.hangup_call(call_id)
    support.wait_until(lambda: len(kit.call_queues()) <= before, timeout=15,
                       what="the call's event queue to go")
    assert kit.names(standin, call_id) == ["answer", "playback"]
