"""Which callflow a number runs, and how the router answers it: exact numbers first, then
patterns (the longest first) with their captures, then no_match; a one-node plain
route answered at once (bridge / error), everything else parked with its callflow's id.
Number documents of before callflows keep routing, and are migrated in place. And the CLI:
`whistle callflow set` prints every problem by its path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests import callflowkit as kit
from tests import support
from whistle_tasks.cli import main
from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import accounts, callflows
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import users as user_ops

pytestmark = pytest.mark.usefixtures("whapp_worker")


@pytest.fixture(scope="module")
def router() -> Iterator[None]:
    worker = support.start_worker("router", name="cfr-router", pool="threads", concurrency=8)
    yield
    worker.stop()


def data_account(realm: str) -> dict:
    found = accounts.account_by_realm(realm)
    assert found is not None
    return found


def play(media: str) -> dict:
    return {"module": "play", "data": {"media": media}}


def test_exact_then_patterns_then_no_match(realm: str) -> None:
    exact = cf_ops.save(realm, {"numbers": ["+14155550100"], "flow": play("exact.wav")})
    us = cf_ops.save(realm, {"patterns": [r"^\+1(\d{3})(\d{7})$"], "flow": play("us.wav")})
    fr = cf_ops.save(realm, {"patterns": [r"^\+33(\d{9})$"], "flow": play("fr.wav")})
    # the longest pattern is tried first: "^\+(\d+)$" matches every number, but last
    cf_ops.save(realm, {"patterns": [r"^\+(\d+)$"], "flow": play("any.wav")})
    nomatch = cf_ops.save(realm, {"numbers": ["no_match"], "flow": play("nomatch.wav")})
    account = data_account(realm)
    found = callflows.find(account, "4155550100")          # normalised to E.164 first
    assert (found.callflow_id, found.number, found.captures) == (exact["_id"],
                                                                 "+14155550100", ())
    found = callflows.find(account, "+12125550123")
    assert (found.callflow_id, found.captures) == (us["_id"], ("212", "5550123"))
    found = callflows.find(account, "+33612345678")
    assert found.callflow_id == fr["_id"] and found.captures == ("612345678",)
    found = callflows.find(account, "1000")
    assert found.callflow_id == nomatch["_id"] and found.number == "1000"
    # a change is seen at once (the writer deleted the shared entries)
    cf_ops.delete(realm, exact["_id"])
    assert callflows.find(account, "+14155550100").callflow_id == us["_id"]


def test_numbers_belong_to_one_callflow(realm: str) -> None:
    cf_ops.save(realm, {"numbers": ["5000"], "flow": play("a.wav")})
    with pytest.raises(cf_ops.CallflowInvalid) as caught:
        cf_ops.save(realm, {"numbers": ["6000", "5000"], "flow": play("b.wav")})
    assert list(caught.value.errors) == ["numbers.1"]
    assert "belongs to callflow" in caught.value.errors["numbers.1"][0]


def test_router_answers_plain_routes_and_parks_the_rest(router: None, bridge: dict,
                                                        realm: str,
                                                        client: support.Client) -> None:
    provisioning.create_device(realm, "1001", password="pw")
    kit.register(client, realm, "1001", "<sip:1001@192.0.2.20:5060>")
    provisioning.add_number("1001", realm, "device:1001")
    provisioning.add_number("8001", realm, "error:486:Busy Here")
    provisioning.add_number("8002", realm, "uri:sip:desk@pbx.example.net")
    menu = cf_ops.save(realm, {"numbers": ["5000"], "flow": {
        "module": "menu", "data": {"greeting": "m.wav"}, "children": {"1": play("1.wav")}}})
    with_child = cf_ops.save(realm, {"numbers": ["1002"], "flow": {
        "module": "device", "data": {"username": "1001"}, "children": {"_": play("vm.wav")}}})
    _, acts = kit.dial(bridge, realm, "1001")
    assert acts[-2][0] == "bridge" and acts[-2][1].endswith("sip:1001@192.0.2.20:5060")
    assert kit.dial(bridge, realm, "8001")[1] == [("respond", "486 Busy Here")]
    assert kit.dial(bridge, realm, "8002")[1][-2][1].endswith("sip:desk@pbx.example.net")
    for number, callflow_id in (("5000", menu["_id"]), ("1002", with_child["_id"])):
        _, acts = kit.dial(bridge, realm, number)
        assert acts[-1] == ("park", None)
        assert ("set", f"ecallmgr_Callflow-ID={callflow_id}") in acts
        assert ("set", f"ecallmgr_Callflow-Number={number}") in acts


def test_legacy_number_documents_route_and_are_migrated_in_place(router: None, bridge: dict,
                                                                 realm: str) -> None:
    account = provisioning.get_account(realm)
    db = account["pvt_account_db"]
    couch = get_couch()
    couch.save(db, {"_id": "number-8100", "pvt_type": "number", "number": "8100",
                    "to": {"type": "error", "code": 603, "message": "Decline"}})
    couch.save(db, {"_id": "number-8101", "pvt_type": "number", "number": "8101",
                    "to": {"type": "gateway", "host": "gw.example.net",
                           "invite_format": "npan"}, "sip_headers": {"X-A": "1"}})
    assert kit.dial(bridge, realm, "8100")[1] == [("respond", "603 Decline")]
    done = cf_ops.migrate(realm)
    assert done == {"accounts": 1, "migrated": 2, "failed": 0}
    migrated = couch.get(db, "number-8101")
    assert migrated["pvt_type"] == "callflow" and migrated["numbers"] == ["8101"]
    assert migrated["flow"] == {"module": "forward", "data": {
        "gateway": "gw.example.net", "format": "npan", "sip_headers": {"X-A": "1"}}}
    assert kit.dial(bridge, realm, "8100")[1] == [("respond", "603 Decline")]
    assert cf_ops.migrate(realm)["migrated"] == 0          # idempotent


def test_callflow_cli(tmp_path: Path, realm: str) -> None:
    provisioning.create_device(realm, "1001", password="pw")
    runner = CliRunner()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"module": "menu", "data": {"greeting": "ivr/main.wav"},
                                "children": {"1": {"module": "device",
                                                   "data": {"username": "1001"}}}}))
    result = runner.invoke(main, ["callflow", "set", "5000", "--realm", realm, str(good),
                                  "--name", "main"])
    assert result.exit_code == 0, result.output
    assert "menu → 1: device" in result.output
    bad = {"module": "menu", "data": {"greeting": "x.wav", "retries": 99},
           "children": {"1": {"module": "ring_group", "data": {"members": [
               {"type": "device", "id": "1001", "timeout": "soon"}]}},
                        "2": {"module": "nope"}, "hello": {"module": "hangup"}}}
    result = runner.invoke(main, ["callflow", "set", "5000", "--realm", realm, "-"],
                           input=json.dumps(bad))
    assert result.exit_code == 1
    for path in ("flow.data.retries", "flow.children.1.data.members.0.timeout",
                 "flow.children.2.module", "flow.children.hello"):
        assert f"  {path}: " in result.output, result.output
    result = runner.invoke(main, ["callflow", "set", "5000", "--realm", realm, "-"],
                           input="{not json")
    assert result.exit_code == 1 and "not JSON" in result.output
    shown = runner.invoke(main, ["callflow", "show", "5000", "--realm", realm])
    assert json.loads(shown.output)["flow"]["module"] == "menu"      # the good one stays
    listing = runner.invoke(main, ["callflow", "list", "--realm", realm]).output
    assert "main" in listing and "5000" in listing
    assert runner.invoke(main, ["number", "list", "--realm", realm]).output.count("5000") == 1
    assert runner.invoke(main, ["callflow", "delete", "5000", "--realm", realm]).exit_code == 0
    assert runner.invoke(main, ["callflow", "show", "5000", "--realm", realm]).exit_code == 1


def test_user_and_group_cli(realm: str) -> None:
    provisioning.create_device(realm, "1001", password="pw")
    provisioning.create_device(realm, "1002", password="pw")
    runner = CliRunner()

    def ok(*args: str) -> str:
        result = runner.invoke(main, [*args, "--realm", realm])
        assert result.exit_code == 0, result.output
        return result.output

    ok("user", "create", "alice", "--name", "Alice Smith", "--caller-id-number", "1000")
    ok("user", "add-device", "alice", "1001")
    ok("user", "add-device", "alice", "1002")
    ok("user", "forward", "alice", "--to", "+14155550199", "--when", "busy", "--when",
       "no_answer", "--own-caller-id")
    ok("user", "dnd", "alice", "on")
    listing = ok("user", "list")
    assert "1001 1002" in listing and "+14155550199 (busy/no_answer)" in listing
    alice = user_ops.get_user(realm, "alice")
    assert alice["call_forward"]["keep_caller_id"] is False and alice["do_not_disturb"]
    ok("group", "set", "sales", "--member", "user:alice,timeout=15", "--member",
       "number:+14155550100,delay=5", "--strategy", "sequential")
    assert "user:alice,timeout=15, number:+14155550100,delay=5" in ok("group", "list")
    bad = runner.invoke(main, ["group", "set", "x", "--realm", realm, "--member", "fax:1"])
    assert bad.exit_code == 1 and "expected device:USER" in bad.output
    missing = runner.invoke(main, ["group", "set", "x", "--realm", realm, "--member",
                                   "user:nobody"])
    assert missing.exit_code == 1 and "no user nobody" in missing.output
