"""Callflows as the router and the callflow whapp read them (cached), and how a change
forgets them.

A callflow is a document of the account's database (``pvt_type`` ``callflow``, see
:mod:`schemas.callflow`): ``numbers``, ``patterns`` and the ``flow`` tree. A number finds its
callflow in this order: the exact number (normalised by the account's format, then as
dialled), then the account's patterns (the longest pattern first, as the more specific,
then by their text, then by callflow id: the order never depends on when they were saved),
then the callflow of ``no_match``.

Number documents of before callflows (``pvt_type`` ``number`` with a ``to``) are read as the
one-node callflows they are (:func:`from_number_doc`) until the migration rewrites them in
place (:func:`whistle_tasks.ops.callflows.migrate`).

Caches (two tiers, like every data library): ``cf`` (a callflow by ``account/id``),
``cf_number`` (``account/number`` → callflow id, or a miss) and ``cf_patterns`` (an account's
``[[pattern, callflow id], ...]``); compiled patterns are kept per process. The writer
(:mod:`whistle_tasks.ops.callflows`) deletes the shared entries and broadcasts the change;
the listener below drops the local ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from whistle_tasks.core import numbers as numfmt
from whistle_tasks.core.cache import MISSING, Cache
from whistle_tasks.core.changes import on_change
from whistle_tasks.core.couch import NotFound, get_couch
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

NEGATIVE_TTL = 60
NO_MATCH = "no_match"

_docs = Cache("cf")
_numbers = Cache("cf_number")
_patterns = Cache("cf_patterns")
_compiled: dict[str, tuple[Any, list[tuple[re.Pattern[str], str]]]] = {}


@dataclass(frozen=True)
class Match:
    """A callflow found for a number: its id, its document, the number it matched (the
    stored key, or the number as dialled for a pattern and ``no_match``) and the
    captures of its pattern."""

    callflow_id: str
    doc: Mapping[str, Any]
    number: str
    captures: tuple[str, ...] = ()

    @property
    def flow(self) -> Mapping[str, Any]:
        return self.doc["flow"]


# --- legacy number documents -----------------------------------------------------------

def node_of_target(to: Mapping[str, Any], options: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The one node a number's ``to`` (``device:``/``uri:``/``gateway:``/``app:``/``error:``)
    is: ``device``, ``forward``, the call app's module, or ``respond``. ``options`` (the
    number's ``caller_id``, ``codecs``, ``call_timeout``, ``sip_headers``) go in the data of
    the nodes that bridge."""
    kind = to.get("type")
    extra = bridge_options(options or {})
    if kind == "device":
        return {"module": "device", "data": {"username": str(to["username"]), **extra}}
    if kind == "uri":
        return {"module": "forward", "data": {"uri": str(to["uri"]), **extra}}
    if kind == "gateway":
        data = {"gateway": str(to["host"]), **extra}
        if to.get("invite_format"):
            data["format"] = str(to["invite_format"])
        return {"module": "forward", "data": data}
    if kind == "app":
        return {"module": str(to["name"]), "data": {}}
    if kind == "error":
        data = {"code": int(to.get("code", 500))}
        if to.get("message"):
            data["message"] = str(to["message"])
        return {"module": "respond", "data": data}
    raise ValueError(f"unknown number target {kind!r}")


def bridge_options(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The bridge options a number or device document carries, as node data fields."""
    out: dict[str, Any] = {}
    if isinstance(doc.get("caller_id"), Mapping) and doc["caller_id"]:
        out["caller_id"] = dict(doc["caller_id"])
    if doc.get("codecs"):
        out["codecs"] = list(doc["codecs"])
    timeout = doc.get("call_timeout") or doc.get("timeout")
    if timeout:
        out["timeout"] = int(timeout)
    if doc.get("sip_headers"):
        out["sip_headers"] = dict(doc["sip_headers"])
    return out


def from_number_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A number document of before callflows, as the one-node callflow it is (same id)."""
    number = str(doc["number"])
    out = {k: v for k, v in doc.items() if k.startswith("_") or k.startswith("pvt_")}
    out.update({"pvt_type": "callflow", "numbers": [number],
                "flow": node_of_target(doc.get("to") or {}, doc)})
    return out


def as_callflow(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    return from_number_doc(doc) if doc.get("pvt_type") == "number" else doc


# --- reads -----------------------------------------------------------------------------

def get(account: Mapping[str, Any], callflow_id: str) -> Mapping[str, Any] | None:
    """The callflow ``callflow_id`` of an account (a legacy number document converted), or
    None."""
    key = f"{account['id']}/{callflow_id}"
    value = _docs.get(key)
    if value is MISSING:
        doc = get_couch().get_or_none(account["account_db"], callflow_id)
        if doc is not None and (doc.get("pvt_deleted") or
                                doc.get("pvt_type") not in ("callflow", "number")):
            doc = None
        value = dict(as_callflow(doc)) if doc else {"missing": True}
        _docs.set(key, value, ttl=NEGATIVE_TTL if doc is None else None)
    return None if value.get("missing") else value


def by_number(account: Mapping[str, Any], number: str) -> str | None:
    """The id of the callflow with the exact number ``number``, or None."""
    key = f"{account['id']}/{number}"
    value = _numbers.get(key)
    if value is MISSING:
        rows = get_couch().view(account["account_db"], "numbers", "by_number", key=number,
                                limit=1)
        value = {"id": rows[0]["id"]} if rows else {"missing": True}
        _numbers.set(key, value, ttl=NEGATIVE_TTL if not rows else None)
    return None if value.get("missing") else value["id"]


def patterns(account: Mapping[str, Any]) -> list[tuple[re.Pattern[str], str]]:
    """The account's patterns, compiled, in matching order: ``[(regex, callflow id)]``."""
    account_id = str(account["id"])
    value = _patterns.get(account_id)
    if value is MISSING:
        try:
            rows = get_couch().view(account["account_db"], "callflows", "by_pattern")
        except NotFound:   # an account database of before callflows
            rows = []
        value = [[row["key"], row["id"]] for row in rows]
        _patterns.set(account_id, value)
    known = _compiled.get(account_id)
    if known is not None and known[0] is value:
        return known[1]
    compiled = []
    for text, callflow_id in sorted(value, key=lambda item: (-len(item[0]), item[0], item[1])):
        try:
            compiled.append((re.compile(text), callflow_id))
        except re.error as exc:
            log.error("callflow %s: pattern %r does not compile: %s", callflow_id, text, exc)
    _compiled[account_id] = (value, compiled)
    return compiled


def candidates(account: Mapping[str, Any], number: str) -> list[str]:
    """The exact keys ``number`` is looked up under: normalised, then as dialled."""
    found = []
    try:
        found.append(numfmt.normalize(number, account.get("number_format") or "e164"))
    except (TypeError, ValueError):
        pass
    found.append(number)
    return list(dict.fromkeys(found))


def find(account: Mapping[str, Any], number: str) -> Match | None:
    """The callflow a call to ``number`` runs (see the module docstring), or None."""
    for candidate in candidates(account, number):
        callflow_id = by_number(account, candidate)
        if callflow_id is not None:
            doc = get(account, callflow_id)
            if doc is not None:
                return Match(callflow_id, doc, candidate)
    for regex, callflow_id in patterns(account):
        match = regex.search(number)
        if match is not None:
            doc = get(account, callflow_id)
            if doc is not None:
                return Match(callflow_id, doc, number,
                             tuple(g or "" for g in match.groups()))
    callflow_id = by_number(account, NO_MATCH)
    if callflow_id is not None:
        doc = get(account, callflow_id)
        if doc is not None:
            return Match(callflow_id, doc, number)
    return None


def captures_of(doc: Mapping[str, Any], number: str) -> tuple[str, ...]:
    """The captures of the first of ``doc``'s patterns that matches ``number``."""
    for text in doc.get("patterns") or ():
        try:
            match = re.search(text, number)
        except re.error:
            continue
        if match is not None:
            return tuple(g or "" for g in match.groups())
    return ()


def prime() -> int:
    """Load every account's callflows into the caches (router start); returns how many.

    Reads each account database's ``_all_docs`` (no index needed), legacy number documents
    included.
    """
    couch = get_couch()
    docs: dict[str, Any] = {}
    numbers: dict[str, Any] = {}
    count = 0
    for row in couch.all_docs("accounts", include_docs=True):
        account = row.get("doc") or {}
        if account.get("pvt_type") != "account" or account.get("pvt_deleted"):
            continue
        found: list[list[str]] = []
        for item in couch.all_docs(account["pvt_account_db"], include_docs=True):
            doc = item.get("doc") or {}
            if doc.get("pvt_type") not in ("callflow", "number") or doc.get("pvt_deleted"):
                continue
            flow = as_callflow(doc)
            docs[f"{account['_id']}/{doc['_id']}"] = dict(flow)
            for number in flow.get("numbers") or ():
                numbers[f"{account['_id']}/{number}"] = {"id": doc["_id"]}
            found += [[p, doc["_id"]] for p in flow.get("patterns") or ()]
            count += 1
        _patterns.set(account["_id"], sorted(found))
    _docs.set_many(docs)
    _numbers.set_many(numbers)
    return count


def forget(account_id: str, callflow_id: str | None, numbers: list[str] | None = None, *,
           shared: bool) -> None:
    """Drop what is cached of a callflow (``shared``: in Redis too, the writer's duty)."""
    if shared:
        if callflow_id:
            _docs.delete(f"{account_id}/{callflow_id}")
        for number in numbers or ():
            _numbers.delete(f"{account_id}/{number}")
        _patterns.delete(account_id)
    else:
        if callflow_id:
            _docs.delete_local(f"{account_id}/{callflow_id}")
        else:
            _docs.clear_local()
        _numbers.clear_local()
        _patterns.delete_local(account_id)
    _compiled.pop(account_id, None)


@on_change("callflow", "number")
def _changed(change: dict[str, Any]) -> None:
    callflow_id = str(change.get("ID") or "") or None
    forget(str(change.get("Account-ID", "")), None if callflow_id == "*" else callflow_id,
           shared=False)
