"""What the API tests share: a real gunicorn serving the API, accounts with keys, and a
call driven through the real bridge by the ESL stand-in (events as FreeSWITCH sends them)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests

from tests import support
from tests.bridgekit import free_port
from tests.esl_standin import EslStandIn
from whistle_tasks.cli.api import gunicorn_argv
from whistle_tasks.ops import api_keys, provisioning


def start_api(name: str = "api", env: dict[str, str] | None = None
              ) -> tuple[support.Process, str]:
    """``whistle api`` as ``whistle up`` runs it (gunicorn, gevent workers) on a free port
    (``env``: settings of its own, e.g. a smaller ``WHISTLE_MEDIA_MAX_BYTES``)."""
    port = free_port()
    argv = gunicorn_argv(python=str(support.VENV_BIN / "python"), listen=f"127.0.0.1:{port}",
                         workers=2)
    proc = support.Process(name, argv, env=env)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{base}/v1/health", timeout=2).status_code in (200, 503)
        except requests.RequestException:
            return proc.proc.poll() is not None

    support.wait_until(up, 30, interval=0.2, what="the API to answer")
    assert proc.proc.poll() is None, proc.output()[-3000:]
    return proc, base


@dataclass
class Tenant:
    """An account with its key."""

    id: str
    realm: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def tenant(prefix: str = "api") -> Tenant:
    realm = f"{support.unique(prefix)}.example.com"
    account = provisioning.create_account(f"Tenant {prefix}", realm)
    key, _ = api_keys.create(realm)
    return Tenant(account["_id"], realm, key)


def system_headers() -> dict[str, str]:
    key, _ = api_keys.create(None, name="tests")
    return {"Authorization": f"Bearer {key}"}


class Switch:
    """The ESL stand-in as a switch with calls: it emits a call's events to the bridge and
    answers ``uuid_kill`` only for the calls it has."""

    def __init__(self, standin: EslStandIn) -> None:
        self.standin = standin
        self.calls: dict[str, dict[str, str]] = {}
        self.killed: list[str] = []
        standin.api_responses["uuid_kill"] = self._kill
        standin.api_responses["uuid_transfer"] = self._transfer

    def _kill(self, command: str) -> str:
        call_id = command.split()[1]
        if call_id not in self.calls:
            return "-ERR No such channel!\n"
        self.killed.append(call_id)
        self.hangup(call_id, disposition="send_bye", cause="NORMAL_CLEARING")
        return "+OK\n"

    def _transfer(self, command: str) -> str:
        return "+OK\n" if command.split()[1] in self.calls else "-ERR No such channel!\n"

    def _headers(self, call_id: str, extra: dict[str, str]) -> list[tuple[str, str]]:
        base = self.calls[call_id]
        return [("Unique-ID", call_id), *base.items(), *extra.items()]

    def ring(self, account_id: str, caller: str, callee: str) -> str:
        call_id = str(uuid.uuid4())
        now = str(int(time.time() * 1_000_000))
        self.calls[call_id] = {
            "Call-Direction": "inbound", "Caller-Caller-ID-Number": caller,
            "Caller-Caller-ID-Name": f"Ext {caller}", "Caller-Callee-ID-Number": callee,
            "Caller-Destination-Number": callee, "Caller-Channel-Created-Time": now,
            "variable_ecallmgr_Account-ID": account_id,
            "variable_ecallmgr_Dialled-Number": callee}
        self.standin.send_event("CHANNEL_CREATE", self._headers(call_id, {}))
        return call_id

    def answer(self, call_id: str) -> None:
        now = str(int(time.time() * 1_000_000))
        self.calls[call_id]["Caller-Channel-Answered-Time"] = now
        self.standin.send_event("CHANNEL_ANSWER", self._headers(call_id, {}))

    def hangup(self, call_id: str, *, disposition: str = "recv_bye",
               cause: str = "NORMAL_CLEARING") -> None:
        info = self.calls.pop(call_id, None)
        if info is None:
            return
        now = time.time()
        created = int(info["Caller-Channel-Created-Time"]) / 1e6
        answered = int(info.get("Caller-Channel-Answered-Time", "0")) / 1e6
        extra = {"Hangup-Cause": cause, "variable_sip_hangup_disposition": disposition,
                 "Caller-Channel-Hangup-Time": str(int(now * 1_000_000)),
                 "variable_duration": str(int(now - created)),
                 "variable_billsec": str(int(now - answered) if answered else 0),
                 "Channel-Read-Codec-Name": "PCMU", "Channel-Write-Codec-Name": "PCMU",
                 "variable_sip_user_agent": "standin-phone", "variable_sip_term_status": "200"}
        headers = [("Unique-ID", call_id), *info.items(), *extra.items()]
        self.standin.send_event("CHANNEL_HANGUP", headers)
        self.standin.send_event("CHANNEL_HANGUP_COMPLETE", headers)

    def register(self, realm: str, username: str, account_id: str | None = None) -> None:
        """A ``sofia::register`` as FreeSWITCH fires it after a phone registered."""
        extra = {"profile-name": "internal", "from-user": username, "from-host": realm,
                 "contact": f'"{username}" <sip:{username}@127.0.0.1:5070;transport=udp>',
                 "expires": "3600", "network-ip": "127.0.0.1", "network-port": "5070",
                 "user-agent": "standin-phone", "username": username, "realm": realm,
                 "call-id": str(uuid.uuid4())}
        if account_id:
            extra["ecallmgr_Account-ID"] = account_id
        self.standin.send_event("CUSTOM", list(extra.items()), subclass="sofia::register")


def get(base: str, path: str, who: Tenant | dict[str, str], **params: Any) -> requests.Response:
    headers = who.headers if isinstance(who, Tenant) else who
    return requests.get(base + path, headers=headers, params=params, timeout=10)
