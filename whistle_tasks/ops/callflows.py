"""Writing callflows: the one place that saves, deletes and migrates them (the CLI and the API
share these functions).

A callflow is validated as a whole before it is written (:func:`schemas.callflow.check`,
with every module the callflow whapp knows, the built-in ones and those of
``WHISTLE_CALLFLOW_MODULES``); its numbers are normalised to the account's number format and
may belong to no other callflow of the account. Then, as every write: CouchDB → the shared
cache entries deleted → the change broadcast (every router and callflow worker drops its
own copy).

``whistle number add N --to device:U`` (and ``uri:``, ``gateway:``, ``app:``, ``error:``)
is the shorthand of a one-node callflow with id ``number-N``
(:func:`whistle_tasks.data.callflows.node_of_target`); number documents of before callflows
are rewritten in place as such by :func:`migrate`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from schemas import callflow as cf
from whistle_tasks.core import changes
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import Conflict, get_couch
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts, callflows
from whistle_tasks.ops.provisioning import ProvisioningError, get_account, normalize_number
from whistle_tasks.whapps.callflow import registry

log = get_logger(__name__)

_loaded: list[bool] = []


class CallflowInvalid(ProvisioningError):
    """A callflow that cannot be saved; ``errors`` maps every path to its reasons."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {k: list(v) for k, v in errors.items()}
        lines = [f"{path}: {reason}" for path, reasons in self.errors.items()
                 for reason in reasons]
        super().__init__(f"invalid callflow ({len(lines)} problem"
                         f"{'s' if len(lines) != 1 else ''}):\n  " + "\n  ".join(lines))


def modules() -> dict[str, cf.ModuleSpec]:
    """Every module a callflow may name (loaded once per process)."""
    if not _loaded:
        failed = registry.load_all(settings.callflow_modules)
        if failed:
            log.error("callflow modules not loaded: %s", ", ".join(failed))
        _loaded.append(True)
    return registry.specs()


def _now() -> int:
    return int(time.time())


def _owners(account: Mapping[str, Any], numbers: list[str]) -> dict[str, str]:
    """``{number: callflow id}`` of the numbers some callflow of the account has."""
    if not numbers:
        return {}
    rows = get_couch().view(account["pvt_account_db"], "numbers", "by_number", keys=numbers)
    return {row["key"]: row["id"] for row in rows}


def _resolver(account: Mapping[str, Any]) -> cf.Resolver:
    data_account = _data_account(account)

    def resolve(number: str) -> tuple[str, Mapping[str, Any]] | None:
        found = callflows.find(data_account, number)
        return None if found is None else (found.callflow_id, found.doc)

    return resolve


def _data_account(account: Mapping[str, Any]) -> dict[str, Any]:
    """An account document in the shape the data libraries read (``id``, ``account_db``)."""
    return {"id": account["_id"], "realm": account["realm"],
            "account_db": account["pvt_account_db"],
            "number_format": account.get("number_format", "e164"),
            "timezone": account.get("timezone")}


def normalized(doc: Mapping[str, Any], account: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with its numbers in the account's number format (``no_match`` kept)."""
    out = dict(doc)
    if isinstance(out.get("numbers"), list):
        keys = []
        for index, number in enumerate(out["numbers"]):
            if not isinstance(number, str):
                keys.append(number)
                continue
            try:
                keys.append(normalize_number(number, account.get("number_format", "e164")))
            except (ProvisioningError, ValueError) as exc:
                raise CallflowInvalid({f"numbers.{index}": [str(exc)]}) from None
        out["numbers"] = keys
    return out


def check(doc: Any, account: Mapping[str, Any], callflow_id: str | None = None  # noqa: ANN401
          ) -> dict[str, Any]:
    """``doc`` ready to save (numbers normalised), or :class:`CallflowInvalid`."""
    if not isinstance(doc, dict):
        raise CallflowInvalid({"_schema": [f"expected a JSON object, got {cf.json_type(doc)}"]})
    doc = normalized(doc, account)
    errors = cf.check(doc, modules(), resolve=_resolver(account), doc_id=callflow_id)
    numbers = doc.get("numbers") if isinstance(doc.get("numbers"), list) else []
    owners = _owners(account, [n for n in numbers if isinstance(n, str)])
    for index, number in enumerate(numbers):
        owner = owners.get(number)
        if owner is not None and owner != callflow_id:
            errors.setdefault(f"numbers.{index}", []).append(
                f"{number} belongs to callflow {owner}")
    if errors:
        raise CallflowInvalid(errors)
    return doc


def save(realm: str, doc: Any, *, callflow_id: str | None = None,  # noqa: ANN401
         replace: bool = True) -> dict[str, Any]:
    """Validate and write a callflow (new, or ``callflow_id`` replaced); returns it saved.

    ``doc`` holds ``name``, ``numbers``, ``patterns`` and ``flow``; its ``_id`` (if any)
    names the callflow to replace. Raises :class:`CallflowInvalid` naming every problem.
    """
    account = get_account(realm)
    if isinstance(doc, dict) and not callflow_id and isinstance(doc.get("_id"), str):
        callflow_id = doc["_id"]
    clean = check({k: v for k, v in doc.items() if not k.startswith(("_", "pvt_"))}
                  if isinstance(doc, dict) else doc, account, callflow_id)
    couch = get_couch()
    db = account["pvt_account_db"]
    callflow_id = callflow_id or uuid.uuid4().hex
    existing = couch.get_or_none(db, callflow_id)
    if existing is not None and existing.get("pvt_type") not in ("callflow", "number"):
        raise ProvisioningError(f"{callflow_id} is a {existing.get('pvt_type')}, "
                                "not a callflow")
    live = existing is not None and not existing.get("pvt_deleted")
    if live and not replace:
        raise ProvisioningError(f"callflow {callflow_id} already exists in {account['realm']}")
    new = {**clean, "_id": callflow_id, "pvt_type": "callflow",
           "pvt_account_id": account["_id"], "pvt_modified": _now(),
           "pvt_created": (existing or {}).get("pvt_created", _now())}
    if existing is not None:
        new["_rev"] = existing["_rev"]
    try:
        saved = couch.save(db, new)
    except Conflict:
        raise ProvisioningError(f"callflow {callflow_id} changed meanwhile; try again") from None
    old_numbers = list(callflows.as_callflow(existing).get("numbers") or []) if live else []
    _index_numbers(account, old_numbers, list(saved.get("numbers") or []))
    callflows.forget(account["_id"], callflow_id,
                     sorted(set(old_numbers) | set(saved.get("numbers") or [])), shared=True)
    for number in old_numbers + list(saved.get("numbers") or []):
        accounts.forget_numbers(account["_id"], number, shared=True)
    changes.broadcast("edited" if live else "created", "callflow", callflow_id,
                      realm=account["realm"], account_id=account["_id"])
    return saved


def _index_numbers(account: Mapping[str, Any], old: list[str], new: list[str]) -> None:
    """The system-wide ``numbers`` index (a DID from outside finds its account)."""
    couch = get_couch()
    for number in new:
        if number == callflows.NO_MATCH:
            continue
        couch.update("numbers", accounts.global_number_key(number), lambda _cur, n=number: {
            "pvt_type": "number_index", "account_id": account["_id"],
            "realm": account["realm"], "number": n})
    for number in set(old) - set(new):
        if number == callflows.NO_MATCH:
            continue
        index = couch.get_or_none("numbers", accounts.global_number_key(number))
        if index and index.get("account_id") == account["_id"]:
            couch.delete("numbers", index["_id"], index["_rev"])


def find(realm: str, ident: str) -> dict[str, Any]:
    """A callflow by id, or by one of its numbers (uncached)."""
    account = get_account(realm)
    couch = get_couch()
    doc = couch.get_or_none(account["pvt_account_db"], ident)
    if doc is None or doc.get("pvt_type") not in ("callflow", "number") \
            or doc.get("pvt_deleted"):
        try:
            key = normalize_number(ident, account.get("number_format", "e164"))
        except (ProvisioningError, ValueError):
            key = ident
        owners = _owners(account, list(dict.fromkeys([key, ident])))
        owner = owners.get(key) or owners.get(ident)
        doc = couch.get_or_none(account["pvt_account_db"], owner) if owner else None
    if doc is None or doc.get("pvt_deleted"):
        raise ProvisioningError(f"no callflow {ident} in {account['realm']}")
    return dict(callflows.as_callflow(doc))


def list_all(realm: str) -> list[dict[str, Any]]:
    """Every callflow of a realm (legacy number documents as callflows), by id."""
    account = get_account(realm)
    couch = get_couch()
    db = account["pvt_account_db"]
    out = []
    for row in couch.all_docs(db, include_docs=True):
        doc = row.get("doc") or {}
        if doc.get("pvt_type") in ("callflow", "number") and not doc.get("pvt_deleted"):
            out.append(dict(callflows.as_callflow(doc)))
    return sorted(out, key=lambda d: d["_id"])


def delete(realm: str, ident: str) -> dict[str, Any]:
    """Delete a callflow (by id or number); returns what was deleted."""
    account = get_account(realm)
    doc = find(realm, ident)
    couch = get_couch()
    if not couch.delete(account["pvt_account_db"], doc["_id"]):
        raise ProvisioningError(f"no callflow {ident} in {account['realm']}")
    numbers = list(doc.get("numbers") or [])
    _index_numbers(account, numbers, [])
    callflows.forget(account["_id"], doc["_id"], numbers, shared=True)
    for number in numbers:
        accounts.forget_numbers(account["_id"], number, shared=True)
    changes.broadcast("deleted", "callflow", doc["_id"], realm=account["realm"],
                      account_id=account["_id"])
    return doc


def describe(flow: Mapping[str, Any]) -> str:
    """A one-line summary of a flow: the shorthand of a one-node callflow
    (``device:1001``), else its modules (``menu → 1: ring_group, _: voicemail``)."""
    data = flow.get("data") or {}
    name = flow.get("module")
    children = flow.get("children") or {}
    if not children:
        if name == "device":
            return f"device:{data.get('username')}"
        if name == "forward" and data.get("uri"):
            return f"uri:{data['uri']}"
        if name == "forward" and data.get("gateway"):
            return f"gateway:{data['gateway']}"
        if name == "respond":
            return f"error:{data.get('code')}" + (f":{data['message']}"
                                                   if data.get("message") else "")
        if not data:
            return f"app:{name}"
    inner = ", ".join(f"{key}: {child.get('module')}" for key, child in children.items())
    return f"{name} → {inner}" if inner else str(name)


def number_callflow(account: Mapping[str, Any], key: str, target: Mapping[str, Any],
                    options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The one-node callflow document of ``whistle number add`` (id ``number-<key>``),
    its node checked against its module's declaration."""
    try:
        node = callflows.node_of_target(target, options)
    except ValueError as exc:
        raise ProvisioningError(str(exc)) from None
    errors = cf.check_node(node, modules())
    if errors:
        raise CallflowInvalid(errors)
    return {"_id": f"number-{key}", "pvt_type": "callflow", "numbers": [key], "flow": node,
            "pvt_account_id": account["_id"], "pvt_created": _now(), "pvt_modified": _now()}


def migrate(realm: str | None = None) -> dict[str, int]:
    """Rewrite number documents of before callflows in place as one-node callflows (same
    id), and bring every account database's design documents up to date. Idempotent;
    returns ``{"accounts", "migrated", "failed"}``."""
    couch = get_couch()
    couch.ensure_system()
    designs = couch.design_docs("account")
    done = {"accounts": 0, "migrated": 0, "failed": 0}
    for row in couch.all_docs("accounts", include_docs=True):
        account = row.get("doc") or {}
        if account.get("pvt_type") != "account" or account.get("pvt_deleted"):
            continue
        if realm and account.get("realm") != realm.lower():
            continue
        db = account["pvt_account_db"]
        for ddoc in designs:
            couch.install_design(db, ddoc)
        done["accounts"] += 1
        todo = []
        for item in couch.all_docs(db, include_docs=True):
            doc = item.get("doc") or {}
            if doc.get("pvt_type") != "number":
                continue
            try:
                todo.append(callflows.from_number_doc(doc))
            except (KeyError, TypeError, ValueError) as exc:
                log.error("number %s of %s not migrated: %s", doc.get("_id"),
                          account.get("realm"), exc)
                done["failed"] += 1
        for start in range(0, len(todo), 500):
            batch = todo[start:start + 500]
            for doc, result in zip(batch, couch.bulk_docs(db, batch), strict=True):
                if result.get("error"):
                    log.error("number %s of %s not migrated: %s", doc["_id"],
                              account.get("realm"), result)
                    done["failed"] += 1
                else:
                    done["migrated"] += 1
        if todo:
            callflows.forget(account["_id"], None, [n for d in todo for n in d["numbers"]],
                             shared=True)
            changes.broadcast("edited", "callflow", "*", realm=account["realm"],
                              account_id=account["_id"])
    if done["migrated"]:
        log.info("callflows: %d number documents migrated in %d accounts", done["migrated"],
                 done["accounts"])
    return done


def load_json(text: str) -> Any:  # noqa: ANN401
    """A callflow file's JSON, or a :class:`CallflowInvalid` saying where it is broken."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CallflowInvalid({"_schema": [f"not JSON: {exc.msg} at line {exc.lineno} "
                                           f"column {exc.colno}"]}) from None
