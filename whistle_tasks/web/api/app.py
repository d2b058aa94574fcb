"""The REST API v1 application (flask-smorest), served by gunicorn with gevent workers.

``gunicorn -k gevent 'whistle_tasks.web.api.app:create_app()'`` (``whistle api``, started by
``whistle up``). The OpenAPI 3 document is ``/v1/openapi.json``; the console is
``/console/``. Errors are JSON: ``{"code", "status", "message", "errors": {"json" |
"query": {field: [reasons]}}}`` naming every bad field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, redirect, send_from_directory
from flask_smorest import Api
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

from whistle_tasks.core import log
from whistle_tasks.core.config import settings
from whistle_tasks.web.api import auth, calls, operations, pbx, provisioning
from whistle_tasks.web.api.pbx_schemas import CONVERTERS as PBX_CONVERTERS
from whistle_tasks.web.api.schemas import CONVERTERS

CONSOLE = Path(__file__).resolve().parent / "console"
DESCRIPTION = """Whistle's REST API. Every request but `GET /v1/health` and this document
carries a key: `Authorization: Bearer <key>` (`whistle api-key create --realm R` for an
account's key, `--system` for the operator's). An account's key sees and changes only its
own account: another account's ids answer 404. Errors are JSON naming every bad field."""


def create_app() -> Flask:
    log.setup(settings.log_level, settings.log_target)
    app = Flask(__name__, static_folder=None)
    app.config.update(
        API_TITLE="Whistle", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/v1", OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=settings.api_max_body,
        API_SPEC_OPTIONS={
            "info": {"description": DESCRIPTION},
            "security": [{"ApiKey": []}],
            "components": {"securitySchemes": {
                "ApiKey": {"type": "http", "scheme": "bearer",
                           "description": "whk_<id>_<secret>, from `whistle api-key create`"}}},
        },
    )
    app.url_map.converters.update({**CONVERTERS, **PBX_CONVERTERS})
    api = Api(app)
    # documented as patterns in the OpenAPI document
    for converter in (*CONVERTERS.values(), *PBX_CONVERTERS.values()):
        api.register_converter(converter, lambda c: {"type": "string",
                                                     "pattern": f"^{c.regex}$"})
    api.register_blueprint(provisioning.blp)
    api.register_blueprint(calls.blp)
    api.register_blueprint(operations.blp)
    api.register_blueprint(pbx.blp)
    app.before_request(auth.check)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> tuple[dict[str, Any], int]:
        data = getattr(exc, "data", None) or {}   # a view's own limit (audio) says so
        return {"code": 413, "status": "Request Entity Too Large",
                "message": data.get("message")
                or f"request bodies are limited to {settings.api_max_body} bytes"}, 413

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound) -> tuple[dict[str, Any], int]:
        data = getattr(exc, "data", None) or {}
        return {"code": 404, "status": "Not Found",
                "message": data.get("message") or "no such resource (or not yours)"}, 404

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:  # noqa: ANN401
        if isinstance(exc, HTTPException):
            return exc
        from whistle_tasks.core.couch import CouchError

        if isinstance(exc, CouchError):
            log.get_logger(__name__).error("CouchDB: %s", exc)
            return {"code": 503, "status": "Service Unavailable",
                    "message": "the database is not answering"}, 503
        log.get_logger(__name__).exception("unexpected error")
        return {"code": 500, "status": "Internal Server Error",
                "message": "unexpected error (logged)"}, 500

    @app.get("/")
    def home() -> Any:  # noqa: ANN401
        return redirect("/console/")

    @app.get("/console/")
    @app.get("/console/<path:name>")
    def console(name: str = "index.html") -> Any:  # noqa: ANN401
        return send_from_directory(CONSOLE, name, max_age=0)

    return app
