"""Contracts: how one kind of request travels, declared once beside its messages.

A :class:`Contract` says everything a sender, a server and the wiring need to agree on:

* the request message and the messages that may answer it;
* the Celery task that serves it (``registrar.authn_req``; the whapp is its first word);
* the exchange and the routing key of a request, computed from the request itself by the
  family's own normalisation (a realm is lower-cased and an IP realm mapped to the ``To``
  domain in exactly one place), and the default binding of the serving whapp's queue;
* whether a request must survive a broker restart (``persistent``).

The bridge, the whapps, the CLI, the benchmarks and the Celery wiring all take these from
here: ``contract.key(msg)``, ``contract.task``, ``contract.check_answer(answer)``::

    from schemas import contracts
    key = contracts.AUTHN.key(request)           # authn.req.example%2Ecom
    contracts.AUTHN.check_answer(answer)         # MessageError unless authn_resp/_err/error

Every request kind's contract is declared in :mod:`schemas.contracts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.base import REGISTRY, ROOT, MessageError
from schemas.keys import CALLMGR, TARGETED

#: every request may be answered by the generic error (an invalid request, a failure)
GENERIC_ERROR = "error"


@dataclass(frozen=True)
class Contract:
    name: str
    request: str
    answers: tuple[str, ...]
    task: str | None
    key: Callable[[Mapping[str, Any]], str] | None
    binding: str | None = None
    exchange: str = CALLMGR
    persistent: bool = False

    @property
    def whapp(self) -> str | None:
        """The whapp (Celery queue) that serves it: the task name's first word."""
        return self.task.split(".", 1)[0] if self.task else None

    def address(self, msg: Mapping[str, Any], to: str | None = None
                ) -> tuple[str, str, str | None]:
        """``(exchange, routing key, task name)`` of one request. A request to a named
        recipient (on ``targeted``: route_win) goes to ``to``, as task ``<to>.<...>``."""
        if self.exchange == TARGETED or self.key is None:
            if not to:
                raise ValueError(f"{self.name}: a request on {self.exchange} needs a recipient")
            return self.exchange, to, self.task.format(to=to) if self.task else None
        return self.exchange, self.key(msg), self.task

    def check_request(self, msg: Mapping[str, Any]) -> dict:
        """The request, validated as :attr:`request` (:class:`MessageError` if not)."""
        return REGISTRY.get(self.request).validate(msg)

    def check_answer(self, msg: Any) -> dict:  # noqa: ANN401 - whatever arrived
        """An answer as it arrived, validated: one of :attr:`answers` or the generic
        error, well formed. Raises :class:`MessageError` naming what is wrong."""
        spec = REGISTRY.spec_of(msg) if isinstance(msg, dict) else None
        if spec is None:
            return REGISTRY.validate(msg)  # raises: not an object
        if spec.name not in self.answers and spec.name != GENERIC_ERROR:
            raise MessageError(f"{self.request} answer", {ROOT: [
                f"{spec.name} does not answer {self.request} "
                f"(expected one of {list(self.answers) + [GENERIC_ERROR]})"]})
        return spec.validate(msg)
