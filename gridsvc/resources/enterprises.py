"""/api/v1/communities/{id}/enterprises: enterprises placed in their zones."""
from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from shapely.geometry import Point

from gridsvc import auth
from gridsvc.api import Blueprint
from gridsvc.db import current_session
from gridsvc.schemas.enterprises import EnterpriseCreate, EnterpriseOut, EnterprisePageOut, EnterpriseQuery, EnterpriseUpdate
from gridsvc.services import enterprises as service

blp = Blueprint("enterprises", __name__, description="Enterprises of a community")


def _with_point(data: dict) -> dict:
    if "location" in data:
        data = dict(data, location=Point(data["location"].lon, data["location"].lat))
    return data


@blp.route("/communities/<int:community_id>/enterprises")
class Enterprises(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.arguments(EnterpriseQuery, location="query")
    @blp.response(200, EnterprisePageOut)
    def get(self, query, community_id):
        """List the community's enterprises (optionally of one zone)"""
        return service.list_enterprises(current_session(), community_id, **query)

    @auth.access(auth.ADMIN)
    @blp.arguments(EnterpriseCreate)
    @blp.response(201, EnterpriseOut)
    def post(self, data, community_id):
        """Register an enterprise; its zone is found from its location"""
        session = current_session()
        enterprise = service.create_enterprise(session, community_id, **_with_point(data))
        session.commit()
        return enterprise, {"Location": url_for("enterprises.EnterpriseItem", community_id=community_id,
                                                enterprise_id=enterprise.id)}


@blp.route("/communities/<int:community_id>/enterprises/<int:enterprise_id>")
class EnterpriseItem(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, EnterpriseOut)
    def get(self, community_id, enterprise_id):
        """Get one enterprise"""
        return service.get_enterprise(current_session(), community_id, enterprise_id)

    @auth.access(auth.ADMIN)
    @blp.arguments(EnterpriseUpdate)
    @blp.response(200, EnterpriseOut)
    def patch(self, data, community_id, enterprise_id):
        """Change an enterprise; a new location moves it to the zone holding it"""
        session = current_session()
        enterprise = service.update_enterprise(session, community_id, enterprise_id, _with_point(data))
        session.commit()
        return enterprise

    @auth.access(auth.ADMIN)
    @blp.response(204)
    def delete(self, community_id, enterprise_id):
        """Delete an enterprise"""
        session = current_session()
        service.delete_enterprise(session, community_id, enterprise_id)
        session.commit()
