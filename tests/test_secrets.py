"""Secrets never reach a log: a full run at DEBUG level, every log searched.

A bridge (ESL password), registrar and router workers, devices with a password and with an
a1-hash, lookups that return them, a wrong ESL password, a worker whose CouchDB URL carries
credentials (and cannot connect, so it logs errors about it), the CLI listing devices and
asking for credentials: then every line any of them wrote is searched for each secret.
CLI output shows secrets only when asked (``--show-secrets``).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests import support, xmlcurl
from tests.bridgekit import directory_user, sip_auth_body, start_bridge
from tests.esl_standin import EslStandIn
from whistle_tasks.ops import provisioning

ESL_PASSWORD = "Esl-Secret-7f3a9"
SIP_PASSWORD = "Sip-Secret-0d1e2f"
COUCH_PASSWORD = "Couch-Secret-55aa"


@pytest.fixture(scope="module")
def run(fixtures_dir: Path, clean_services: None) -> dict:
    realm = f"{support.unique('s')}.example.com"
    provisioning.create_account("Secrets", realm)
    a1 = provisioning.a1_hash("2001", realm, "whatever")
    provisioning.create_device(realm, "2000", password=SIP_PASSWORD)
    provisioning.create_device(realm, "2001", a1=a1)
    env = {"WHISTLE_LOG_LEVEL": "DEBUG"}
    good = EslStandIn(password=ESL_PASSWORD).start()
    bad = EslStandIn(password="something-else").start()
    procs: list[support.Process] = []
    cli_output: list[str] = []
    try:
        procs.append(support.start_worker("registrar", name="secrets-registrar",
                                          pool="threads", concurrency=4, env=env))
        bridge, port = start_bridge(good, name="secrets-bridge", **env, WHISTLE_FS_NODES=(
            f"127.0.0.1:{good.port}:{ESL_PASSWORD},127.0.0.1:{bad.port}:{ESL_PASSWORD}"))
        procs.append(bridge)
        # a worker that cannot reach its (credentialed) CouchDB: it logs errors about it
        procs.append(support.Process("secrets-couchless", [
            str(support.VENV_BIN / "celery"), "-A", "whistle_tasks", "worker", "-Q",
            "maintenance", "-P", "threads", "-c", "1", "-l", "DEBUG", "-n",
            f"couchless-{support.unique()}@%h", "--without-mingle", "--without-gossip"],
            env={**env, "WHISTLE_COUCH_URL": f"http://admin:{COUCH_PASSWORD}@127.0.0.1:9/"}))
        answers = [xmlcurl.post(port, "/fs/directory", sip_auth_body(fixtures_dir, realm, u))[1]
                   for u in ("2000", "2001", "2000")]
        support.wait_until(lambda: bad.auth_failures > 0, timeout=15, what="bad ESL password")
        whistle = str(support.VENV_BIN / "whistle")
        for args in (["device", "list", "--realm", realm],
                     ["ask", "authn", "--realm", realm, "--username", "2000"],
                     ["config"], ["-v", "device", "list"]):
            done = subprocess.run([whistle, *args], capture_output=True, text=True,
                                  env={**support.os.environ, **env,
                                       "WHISTLE_HTTP_AUTH": "fs:Http-Secret-99"})
            cli_output.append(done.stdout + done.stderr)
        shown = subprocess.run([whistle, "device", "list", "--realm", realm, "--show-secrets"],
                               capture_output=True, text=True).stdout
        time.sleep(3)  # let the couchless worker try and log
    finally:
        for proc in procs:
            proc.stop()
        good.stop()
        bad.stop()
    logs = {proc.name: proc.output() for proc in procs}
    return {"answers": answers, "logs": logs, "cli": cli_output, "shown": shown, "a1": a1}


def test_the_run_happened(run: dict) -> None:
    users = [directory_user(xml) for xml in run["answers"]]
    assert users[0]["params"] == {"password": SIP_PASSWORD}
    assert users[1]["params"] == {"a1-hash": run["a1"]}
    assert "secrets-registrar" in run["logs"] and run["logs"]["secrets-bridge"]
    assert "CouchDB unavailable" in run["logs"]["secrets-couchless"] or \
        "couch" in run["logs"]["secrets-couchless"].lower()


@pytest.mark.parametrize("secret", [SIP_PASSWORD, ESL_PASSWORD, COUCH_PASSWORD,
                                    "Http-Secret-99", "a1"])
def test_no_secret_in_any_log(run: dict, secret: str) -> None:
    secret = run["a1"] if secret == "a1" else secret
    for name, text in run["logs"].items():
        assert secret not in text, f"{name} logged a secret"


def test_cli_masks_secrets_unless_asked(run: dict) -> None:
    for output in run["cli"]:
        for secret in (SIP_PASSWORD, run["a1"], "Http-Secret-99"):
            assert secret not in output
    assert "****" in run["cli"][0]
    assert SIP_PASSWORD in run["shown"] and run["a1"] in run["shown"]
