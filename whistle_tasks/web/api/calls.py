"""Calls: records of calls that ended (CDRs), calls in progress, live events, health."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import gevent.queue
import redis
from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint, abort

import schemas
from schemas import contracts
from schemas.contract import Contract
from whistle_tasks.core import amqp
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import CouchError, get_couch
from whistle_tasks.core.inbox import PollingInbox
from whistle_tasks.core.rpc import Rpc
from whistle_tasks.data import calls as live_calls
from whistle_tasks.data import cdrs
from whistle_tasks.web.api import auth, live
from whistle_tasks.web.api import schemas as s

blp = Blueprint("calls", __name__, url_prefix="/v1",
                description="Call detail records, calls in progress, live events, health")

MANAGE_BUDGET = 3.0
KEEPALIVE = 15.0


def parse_time(value: str | None, default: float, field: str) -> float:
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        abort(422, message=f"{field}: not a time",
              errors={"query": {field: ["ISO 8601 (2026-11-01T00:00:00Z) or Unix seconds"]}})
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


# --- call detail records ------------------------------------------------------------------

@blp.route("/accounts/<hex32:account_id>/cdrs")
class Cdrs(MethodView):
    @blp.arguments(s.CdrQuery, location="query")
    @blp.response(200, s.CdrPage)
    @blp.alt_response(200, description="CSV (format=csv): every record of the range",
                      content_type="text/csv")
    def get(self, query: dict[str, Any], account_id: str) -> Any:  # noqa: ANN401
        """Records of the account that ended in [since, until), oldest first; a page at a
        time (``next_cursor``), or all of them as CSV."""
        account = auth.account(account_id)
        now = time.time()
        since = parse_time(query.get("since"), cdrs.month_bounds(cdrs.month_of(now))[0],
                           "since")
        until = parse_time(query.get("until"), now + 1, "until")
        if until <= since:
            abort(422, message="until must be after since",
                  errors={"query": {"until": ["must be after since"]}})
        filters = {k: query[k] for k in ("caller", "callee") if query.get(k)}
        if query["format"] == "csv":
            return csv_response(account, since, until, filters, query.get("number"))
        try:
            if query.get("number"):
                records = by_number(account["_id"], since, until, query["number"],
                                    query["limit"])
                return {"data": records, "next_cursor": None}
            records, cursor = cdrs.query(account["_id"], since, until, limit=query["limit"],
                                         cursor=query.get("cursor"), **filters)
        except cdrs.CursorError as exc:
            abort(422, message=str(exc), errors={"query": {"cursor": [str(exc)]}})
        return {"data": records, "next_cursor": cursor}


def by_number(account_id: str, since: float, until: float, number: str,
              limit: int) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for kind in ("caller", "callee"):
        page, _ = cdrs.query(account_id, since, until, limit=limit, **{kind: number})
        found.update({r["id"]: r for r in page})
    return sorted(found.values(), key=lambda r: (r.get("end") or 0, r["id"]))[:limit]


def csv_response(account: dict[str, Any], since: float, until: float,
                 filters: dict[str, str], number: str | None) -> Response:
    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(cdrs.CSV_FIELDS)
        records = (by_number(account["_id"], since, until, number, 100_000) if number
                   else cdrs.iterate(account["_id"], since, until, **filters))
        for record in records:
            writer.writerow(cdrs.csv_row(record))
            if out.tell() > 65536:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    name = f"cdrs-{account['realm']}-{cdrs.month_of(since)}.csv"
    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@blp.route("/accounts/<hex32:account_id>/cdrs/<callid:cdr_id>")
class CdrOne(MethodView):
    @blp.response(200, s.Cdr)
    def get(self, account_id: str, cdr_id: str) -> dict[str, Any]:
        """One leg's record (looked for in the months retention keeps)."""
        account = auth.account(account_id)
        months = cdrs.months_between(time.time() - 86400 * 31 * max(
            1, settings.cdr_retention_months or 24), time.time())
        found = cdrs.get(account["_id"], cdr_id, months=months)
        if found is None:
            abort(404, message="no such record")
        return found


# --- calls in progress --------------------------------------------------------------------

@blp.route("/accounts/<hex32:account_id>/calls")
class Calls(MethodView):
    @blp.response(200, s.CallList)
    def get(self, account_id: str) -> dict[str, Any]:
        """The account's calls in progress (each leg)."""
        account = auth.account(account_id)
        try:
            return {"data": live_calls.in_progress(account["_id"])}
        except redis.RedisError as exc:
            abort(503, message=f"the live index of calls is not available: {exc}")


def _own_call(account: dict[str, Any], call_id: str) -> dict[str, Any]:
    try:
        call = live_calls.get(call_id)
    except redis.RedisError as exc:
        abort(503, message=f"the live index of calls is not available: {exc}")
    if call is None or call.get("account_id") != account["_id"]:
        abort(404, message="no such call in progress")
    return call


def manage(contract: Contract, msg: dict[str, Any]) -> dict[str, Any]:
    """Ask the bridges (every one hears it; the one with the call answers)."""
    inbox = PollingInbox(settings.amqp_url, name="api")
    publisher = amqp.Publisher(settings.amqp_url)
    try:
        rpc = Rpc(inbox, f"api-{uuid.uuid4().hex}",
                  send=lambda c, m: publisher.send(c, m) or True)
        answer = rpc.request(contract, msg, MANAGE_BUDGET)
    finally:
        publisher.close()
        inbox.close()
    if answer is None:
        abort(504, message="no switch bridge has this call (or none answered in time)")
    if answer.get("Event-Name") == "error" or answer.get("Result") != "ok":
        abort(502, message=answer.get("Error-Message") or "the bridge could not do it")
    return {"call_id": answer["Call-ID"], "result": "ok",
            "switch": answer.get("Switch-Hostname", "")}


@blp.route("/accounts/<hex32:account_id>/calls/<callid:call_id>")
class CallOne(MethodView):
    @blp.response(200, s.Call)
    def get(self, account_id: str, call_id: str) -> dict[str, Any]:
        return _own_call(auth.account(account_id), call_id)

    @blp.response(200, s.Done)
    def delete(self, account_id: str, call_id: str) -> dict[str, Any]:
        """Hang the call up."""
        _own_call(auth.account(account_id), call_id)
        msg = schemas.build("call_hangup_req", {"Call-ID": call_id}, **{"App-Name": "api"})
        return manage(contracts.CALL_HANGUP, msg)


@blp.route("/accounts/<hex32:account_id>/calls/<callid:call_id>/transfer")
class CallTransfer(MethodView):
    @blp.arguments(s.Transfer)
    @blp.response(200, s.Done)
    def post(self, body: dict[str, Any], account_id: str, call_id: str) -> dict[str, Any]:
        """Send the call to another number (the router decides where it goes)."""
        _own_call(auth.account(account_id), call_id)
        data = {"Call-ID": call_id, "Transfer-To": body["to"]}
        if body.get("context"):
            data["Transfer-Context"] = body["context"]
        msg = schemas.build("call_transfer_req", data, **{"App-Name": "api"})
        return manage(contracts.CALL_TRANSFER, msg)


# --- live events --------------------------------------------------------------------------

@blp.route("/accounts/<hex32:account_id>/events")
class Events(MethodView):
    @blp.response(200, description="Server-Sent Events: `call` (ring, answer, hang-up of "
                  "each leg) and `registration`; a comment every 15 s keeps it open",
                  content_type="text/event-stream")
    def get(self, account_id: str) -> Response:
        """The account's call events and registrations as they happen (SSE)."""
        account = auth.account(account_id)
        stream = live.HUB.subscribe(account["_id"])

        def events() -> Iterator[str]:
            try:
                yield ": whistle live events\nretry: 2000\n\n"
                while True:
                    try:
                        kind, data = stream.get(timeout=KEEPALIVE)
                    except gevent.queue.Empty:
                        yield ": keep-alive\n\n"
                        continue
                    if kind is live.OVERFLOW:
                        yield "event: overflow\ndata: {}\n\n"
                        return
                    yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"
            finally:
                live.HUB.unsubscribe(account["_id"], stream)

        return Response(events(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --- health -------------------------------------------------------------------------------

@blp.route("/health")
class Health(MethodView):
    @blp.response(200, s.Health)
    @blp.alt_response(503, schema=s.Health, description="a service is down")
    def get(self) -> Any:  # noqa: ANN401
        """Whether the API reaches CouchDB, Redis and RabbitMQ (no key needed)."""
        status = {"couchdb": False, "redis": False, "rabbitmq": False}
        try:
            get_couch().request("GET", get_couch().server_url + "/", what="health")
            status["couchdb"] = True
        except CouchError:
            pass
        try:
            status["redis"] = bool(live_calls.client().ping())
        except redis.RedisError:
            pass
        status["rabbitmq"] = live.HUB.greenlet is not None and not live.HUB.greenlet.dead \
            or _amqp_answers()
        ok = all(status.values())
        return {"status": "ok" if ok else "degraded", **status}, 200 if ok else 503


def _amqp_answers() -> bool:
    from kombu import Connection

    try:
        with Connection(settings.amqp_url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
