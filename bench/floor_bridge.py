"""The benchmarks' floor: a real switch bridge whose request/reply client answers from memory.

    .venv/bin/python bench/floor_bridge.py       (the same settings as ``python -m switch_bridge``)

Everything is the production bridge (HTTP server, form parsing, the extensions, rendering,
the credential cache is off) except :class:`FixedAnswers`, which stands in for
:class:`whistle_tasks.core.rpc.Rpc`: it answers each request at once with a constant answer
built for it (no AMQP, no whapp). A benchmark runs it beside the real bridge with the same
load, so the difference is exactly the cost of asking a whapp.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gevent import monkey  # noqa: E402

monkey.patch_all()

from typing import Any  # noqa: E402

import schemas  # noqa: E402
from schemas.contract import Contract  # noqa: E402
from schemas.route import route_realm  # noqa: E402

#: the password every floor answer carries (benchmarks check answers against it)
PASSWORD = "fixed-answer"
#: the contact every floor route bridges to
CONTACT = "sip:1000@192.0.2.1:5060"


class FixedAnswers:
    """An Rpc stand-in: a constant, valid answer for every request, at once."""

    waiting = 0

    def __init__(self, *_: Any) -> None:  # noqa: ANN401 - Rpc's constructor arguments
        self.stats = {"sent": 0, "answered": 0}

    def request(self, contract: Contract, msg: dict[str, Any],
                timeout: float) -> dict[str, Any] | None:
        self.stats["sent"] += 1
        self.stats["answered"] += 1
        if contract.request == "authn_req":
            return schemas.build("authn_resp", {
                "Auth-Method": "password", "Auth-Password": PASSWORD,
                "Msg-ID": msg.get("Msg-ID"), "Custom-Channel-Vars": {
                    "Username": msg["Auth-User"], "Realm": msg["Auth-Realm"],
                    "Account-ID": "0" * 32, "Authorizing-ID": "0" * 32,
                    "Inception": "on-net"}})
        return schemas.build("route_resp", {
            "Method": "bridge", "Msg-ID": msg.get("Msg-ID"), "Routes": [{
                "Invite-Format": "username", "To-User": "1000",
                "To-Realm": route_realm(msg), "Route": CONTACT}]})


def main() -> int:
    from whistle_tasks.core import log
    from whistle_tasks.core.config import load

    settings = load()
    log.setup(settings.log_level, settings.log_target)
    from switch_bridge.host import serve

    serve(settings, rpc=FixedAnswers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
