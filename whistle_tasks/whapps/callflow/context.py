"""What a module knows about the call besides the call itself: a :class:`Context`.

One per call, handed to every module with its node's data: the account, the number the
callflow matched (and the captures of its pattern), who calls, the keys of the running
node's children (a menu checks an entry against them), the clock (in the account's time
zone), and ``vars``, a dict modules may use to leave things for the modules after them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas import callflow as cf
from whistle_tasks.core.config import settings
from whistle_tasks.data import caller_id


def system_clock() -> dt.datetime:
    """Now (UTC, aware); ``WHISTLE_FIXED_CLOCK`` pins it (demos, tests)."""
    if settings.fixed_clock:
        fixed = dt.datetime.fromisoformat(settings.fixed_clock)
        return fixed if fixed.tzinfo else fixed.replace(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Goto:
    """A module's outcome that continues at another callflow's root (``transfer``)."""

    flow: Mapping[str, Any]
    callflow_id: str
    number: str
    captures: tuple[str, ...] = ()


@dataclass
class Context:
    """The call's callflow state (see the module docstring)."""

    account: Mapping[str, Any]
    call_id: str
    number: str = ""
    dialled: str = ""
    captures: tuple[str, ...] = ()
    callflow_id: str | None = None
    caller: Mapping[str, Any] = field(default_factory=dict)
    children: frozenset[str] = frozenset()
    path: str = "flow"
    vars: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    clock: Callable[[], dt.datetime] = system_clock
    #: the user whose call forwarding the call follows (and whether it keeps the caller id)
    forwarded_by: Mapping[str, Any] | None = None
    keep_caller_id: bool = True
    #: what a ``set_caller_id`` node set for the bridges after it
    caller_id: dict[str, Any] = field(default_factory=dict)
    caller_id_options: dict[str, Any] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return str(self.account.get("realm") or "")

    @property
    def account_id(self) -> str:
        return str(self.account.get("id") or "")

    def timezone(self, name: str | None = None) -> dt.tzinfo:
        """The zone ``name``, else the account's, else UTC."""
        for candidate in (name, self.account.get("timezone")):
            if candidate:
                found = cf.zone(str(candidate))
                if found is not None:
                    return found
        return dt.UTC

    def now(self, zone: str | None = None) -> dt.datetime:
        """The time now in ``zone`` (else the account's time zone)."""
        return self.clock().astimezone(self.timezone(zone))

    def with_caller_id(self, legs: list[dict[str, Any]],
                       override: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """``legs`` with the caller id each presents (one rule for every bridge:
        :func:`whistle_tasks.data.caller_id.for_legs`): the call's ``set_caller_id``, under
        the bridge node's own ``caller_id`` (``override``). Raises
        :class:`~whistle_tasks.data.caller_id.Refused` (``lock_external``)."""
        return caller_id.for_legs(legs, self.caller, account=self.account,
                                  override=self.override(override),
                                  override_options=self.caller_id_options or None,
                                  forwarded_by=self.forwarded_by,
                                  keep_caller_id=self.keep_caller_id)

    def override(self, node: Mapping[str, Any] | None = None) -> dict[str, dict[str, str]]:
        """The call's caller id override: ``set_caller_id``'s, then the node's on top."""
        merged: dict[str, dict[str, str]] = {}
        for layer in (self.caller_id, node):
            for kind, pair in caller_id.node_override(layer).items():
                merged[kind] = {**merged.get(kind, {}), **pair}
        return merged

    def presented(self, kind: str = "internal") -> dict[str, str]:
        """``{name?, number?}`` this call presents on a ``kind`` leg."""
        return caller_id.presented(self.caller, kind, account=self.account,
                                   override=self.override(), forwarded_by=self.forwarded_by,
                                   keep_caller_id=self.keep_caller_id)
