"""Liveness and readiness: is the API up and can it reach PostGIS?"""
from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gridsvc import auth
from gridsvc.api import Blueprint
from gridsvc.db import current_session
from gridsvc.errors import DatabaseUnavailable

blp = Blueprint("health", __name__, description="Service health")


class HealthOut(Schema):
    status = fields.Str(metadata={"example": "ok"})
    database = fields.Str(metadata={"example": "ok"})
    postgis = fields.Str(metadata={"example": "3.3.2"})


@blp.route("/health")
class Health(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, HealthOut)
    @blp.alt_response(503, description="The database is unreachable")
    @auth.ignores_query
    def get(self):
        """Report whether the API can reach the database and which PostGIS it has"""
        try:
            version = current_session().execute(text("SELECT postgis_lib_version()")).scalar_one()
        except DBAPIError as exc:
            raise DatabaseUnavailable("The database cannot be reached.", database="unreachable") from exc
        return {"status": "ok", "database": "ok", "postgis": version}


class LiveOut(Schema):
    status = fields.Str(metadata={"example": "ok"})


@blp.route("/health/live")
class Live(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, LiveOut)
    @auth.ignores_query
    def get(self):
        """Liveness: the process answers (no database round trip; for probes and as a benchmark baseline)"""
        return {"status": "ok"}
