"""What the operator does from the CLI besides provisioning one item at a time: CSV imports
(``whistle device import`` / ``number import``), the platform's status (``whistle
status``), compaction (``whistle compact``). The same ops functions, over HTTP.

An account's key may import into its own account (the file's ``realm`` column must be
that account's, or absent); status and compaction are the operator's (system key).
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields

from whistle_tasks.ops import imports
from whistle_tasks.ops import platform as plat
from whistle_tasks.web.api import auth

blp = Blueprint("operations", __name__, url_prefix="/v1",
                description="CSV imports, platform status, compaction")


class RowResult(Schema):
    line = fields.Int()
    outcome = fields.Str()
    reason = fields.Str()


class ImportSummary(Schema):
    created = fields.Int()
    skipped = fields.Int()
    failed = fields.Int()
    problems = fields.List(fields.Nested(RowResult))


class Status(Schema):
    """``whistle status --json``."""

    ok = fields.Bool()
    problems = fields.List(fields.Str())
    amqp_url = fields.Str()
    bridge = fields.Dict()
    queues = fields.List(fields.Dict())
    workers = fields.Dict()
    registrations = fields.Dict(allow_none=True)


class CompactReport(Schema):
    db = fields.Str()
    action = fields.Str()
    reason = fields.Str()


class CompactList(Schema):
    data = fields.List(fields.Nested(CompactReport))


def _import(kind: str, account_id: str) -> dict[str, Any]:
    account = auth.account(account_id)
    body = request.get_data(cache=False)
    if not body:
        abort(422, message="the request body is the CSV file",
              errors={"body": {"_schema": ["empty: send the CSV file as the body"]}})
    try:
        table = (imports.read_devices if kind == "devices" else imports.read_numbers)(
            body, account["realm"])
    except imports.ImportFileError as exc:
        abort(422, message=str(exc), errors={"body": {"_schema": [str(exc)]}})
    realm_rows = [(line, row) for line, row in table.rows
                  if (row.get("realm") or account["realm"]).lower() != account["realm"]]
    if realm_rows:
        lines = ", ".join(str(line) for line, _ in realm_rows[:10])
        abort(422, message=f"rows of another realm (lines {lines}): a file imports into this "
                           "account only", errors={"body": {"realm": [f"lines {lines}"]}})
    run = imports.import_devices if kind == "devices" else imports.import_numbers
    summary = run(table, account["realm"])
    return {"created": summary.created, "skipped": summary.skipped, "failed": summary.failed,
            "problems": [{"line": r.line, "outcome": r.outcome, "reason": r.reason}
                         for r in summary.problems()]}


@blp.route("/accounts/<hex32:account_id>/devices/import")
class DeviceImport(MethodView):
    @blp.doc(requestBody={"content": {"text/csv": {"schema": {"type": "string"}}},
                          "description": "columns username,password|a1_hash[,name,"
                                         "caller_id_name,caller_id_number,enabled]"})
    @blp.response(200, ImportSummary)
    def post(self, account_id: str) -> dict[str, Any]:
        """Create many devices from a CSV file (as ``whistle device import``)."""
        return _import("devices", account_id)


@blp.route("/accounts/<hex32:account_id>/numbers/import")
class NumberImport(MethodView):
    @blp.doc(requestBody={"content": {"text/csv": {"schema": {"type": "string"}}},
                          "description": "the columns of ``whistle number import``"})
    @blp.response(200, ImportSummary)
    def post(self, account_id: str) -> dict[str, Any]:
        """Assign many numbers from a CSV file (as ``whistle number import``)."""
        return _import("numbers", account_id)


@blp.route("/status")
class PlatformStatus(MethodView):
    @blp.response(200, Status)
    def get(self) -> dict[str, Any]:
        """What ``whistle status`` shows (the operator's key only)."""
        auth.require_system()
        return plat.platform_status().as_dict()


@blp.route("/compact")
class Compact(MethodView):
    @blp.response(200, CompactList)
    def post(self) -> dict[str, Any]:
        """Compact the databases Kazoo's rule picks, now (``whistle compact``; the
        operator's key only)."""
        auth.require_system()
        from whistle_tasks.whapps.maintenance import compaction

        return {"data": [{"db": r.db, "action": r.action, "reason": r.reason}
                         for r in compaction.compact()]}
