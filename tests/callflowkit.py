"""What the callflow tests share: a dialplan fetch made up for any realm and number (the
fields FreeSWITCH's mod_xml_curl posts, no capture needed), placing a call that the router
parks and the callflow worker runs, and reading what the ESL stand-in was asked to do."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import schemas
from schemas import contracts
from tests import support, xmlcurl
from tests.bridgekit import actions
from tests.esl_standin import EslStandIn
from whistle_tasks.core.config import settings


def dialplan_form(realm: str, destination: str, call_id: str, *, caller: str = "1000",
                  caller_name: str | None = None, hostname: str = "fs-test-1",
                  authenticated: bool = True) -> bytes:
    """A dialplan fetch as mod_xml_curl posts it for a call from ``caller`` (a device of
    ``realm``, authenticated: its ``ecallmgr_`` variables set) to ``destination``."""
    fields = [
        ("hostname", hostname), ("section", "dialplan"), ("tag_name", ""), ("key_name", ""),
        ("key_value", ""), ("Event-Name", "REQUEST_PARAMS"), ("FreeSWITCH-Hostname", hostname),
        ("FreeSWITCH-Switchname", hostname), ("Channel-State", "CS_ROUTING"),
        ("Channel-Call-State", "RINGING"), ("Channel-Name", f"sofia/internal/{caller}@{realm}"),
        ("Unique-ID", call_id), ("Call-Direction", "inbound"), ("Channel-Call-UUID", call_id),
        ("Answer-State", "ringing"), ("Caller-Username", caller),
        ("Caller-Caller-ID-Name", caller_name or caller), ("Caller-Caller-ID-Number", caller),
        ("Caller-Destination-Number", destination), ("Caller-Context", "default"),
        ("Hunt-Destination-Number", destination), ("Hunt-Context", "default"),
        ("variable_sofia_profile_name", "internal"), ("variable_sip_req_host", realm),
        ("variable_sip_req_user", destination), ("variable_sip_to_user", destination),
        ("variable_sip_to_host", realm), ("variable_sip_from_user", caller),
        ("variable_sip_from_host", realm),
    ]
    if authenticated:
        fields += [("variable_ecallmgr_Realm", realm), ("variable_ecallmgr_Username", caller)]
    return "&".join(f"{quote(k, safe='')}={xmlcurl.encode(v)}" for k, v in fields).encode()


def dial(bridge: dict, realm: str, number: str, **kwargs: Any) -> tuple[str, list]:  # noqa: ANN401
    """Post the dialplan fetch of a new call; returns (call id, the dialplan's actions)."""
    call_id = str(uuid.uuid4())
    status, xml = xmlcurl.post(bridge["port"], "/fs/dialplan",
                               dialplan_form(realm, number, call_id, **kwargs))
    assert status == 200, xml
    return call_id, actions(xml)


def place(bridge: dict, realm: str, number: str, **kwargs: Any) -> str:  # noqa: ANN401
    """A call to ``number`` that the router parks for the callflow whapp; its call id."""
    call_id, acts = dial(bridge, realm, number, **kwargs)
    assert acts[-1] == ("park", None), acts
    return call_id


def apps(standin: EslStandIn, call_id: str) -> list[tuple[str, str | None]]:
    """``(application, argument)`` of every sendmsg the stand-in got for the call."""
    return [(c.headers.get("execute-app-name", ""), c.app_arg) for c in standin.commands
            if c.verb == "sendmsg" and c.args == call_id]


def names(standin: EslStandIn, call_id: str) -> list[str]:
    return [app for app, _ in apps(standin, call_id)]


def wait_done(standin: EslStandIn, call_id: str, timeout: float = 20) -> list[str]:
    """Wait until the callflow hung the call up (its last command); the applications run."""
    support.wait_until(lambda: names(standin, call_id)[-1:] == ["hangup"], timeout=timeout,
                       what=f"the callflow of {call_id} to hang up")
    return names(standin, call_id)


class Script:
    """Per-call answers of the stand-in (its ``execute_hook``): a list of rules, each
    ``(application, predicate on the argument or None, answer)``; the first rule that
    matches is used once (``times``) or always. Unmatched executions complete at once with
    the stand-in's defaults."""

    def __init__(self, standin: EslStandIn) -> None:
        self.standin = standin
        self.rules: list[list[Any]] = []
        self.seen: list[tuple[str, str, str | None]] = []
        standin.execute_hook = self.hook
        standin.auto_complete = True

    def on(self, app: str, answer: dict[str, Any], *, when: Callable[[str], bool] | None = None,
           times: int | None = None) -> Script:
        self.rules.append([app, when, answer, times])
        return self

    def hook(self, call_uuid: str, app: str, arg: str | None) -> dict | None:
        self.seen.append((call_uuid, app, arg))
        for rule in self.rules:
            rule_app, when, answer, times = rule
            if rule_app != app or (when is not None and not when(arg or "")):
                continue
            if times is not None:
                if times <= 0:
                    continue
                rule[3] = times - 1
            return answer
        return None

    def close(self) -> None:
        self.standin.execute_hook = None
        self.standin.auto_complete = False


def digits(value: str) -> dict[str, Any]:
    """A play_and_get_digits that collected ``value``."""
    return {"response": value, "variables": {"variable_collected_digits": value}}


def disposition(value: str, delay: float = 0.0) -> dict[str, Any]:
    """A bridge that ended with ``value`` (SUCCESS, NO_ANSWER, USER_BUSY...)."""
    return {"variables": {"variable_originate_disposition": value}, "delay": delay}


def register(client: support.Client, realm: str, user: str, contact: str) -> None:
    from whistle_tasks.data import registrations

    msg = schemas.build("reg_success", {
        "Realm": realm, "Username": user, "Contact": contact, "Expires": 3600,
        "Event-Timestamp": time.time()}, **{"App-Name": "test"})
    client.send(contracts.REG_SUCCESS, msg)
    support.wait_until(lambda: registrations.lookup(realm, user), timeout=10,
                       what=f"{user}@{realm} registered")


def call_queues() -> list[str]:
    """The callflow whapp's per-call event queues that exist now in the test vhost."""
    vhost = settings.amqp_url.rsplit("/", 1)[1] or "/"
    out = subprocess.run(["rabbitmqctl", "list_queues", "-p", vhost, "name", "--formatter",
                          "json", "-q"], capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        return []
    return [q["name"] for q in json.loads(out.stdout or "[]")
            if q["name"].startswith("callflow.")]
