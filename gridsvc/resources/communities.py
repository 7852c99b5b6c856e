"""/api/v1/communities: the parks, markets and towns."""
from __future__ import annotations

from flask import url_for
from flask.views import MethodView

from gridsvc import auth
from gridsvc.api import Blueprint
from gridsvc.db import current_session
from gridsvc.schemas.communities import (CommunityCreate, CommunityDeleteQuery, CommunityOut, CommunityPageOut,
                                         CommunityQuery, CommunityUpdate)
from gridsvc.services import communities as service

blp = Blueprint("communities", __name__, description="Communities: industrial parks, markets and towns")


@blp.route("/communities")
class Communities(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.arguments(CommunityQuery, location="query")
    @blp.response(200, CommunityPageOut)
    def get(self, query):
        """List communities"""
        return service.list_communities(current_session(), **query)

    @auth.access(auth.ADMIN)
    @blp.arguments(CommunityCreate)
    @blp.response(201, CommunityOut)
    def post(self, data):
        """Create a community from its boundary"""
        session = current_session()
        community = service.create_community(session, **data)
        session.commit()
        return community, {"Location": url_for("communities.CommunityItem", community_id=community.id)}


@blp.route("/communities/<int:community_id>")
class CommunityItem(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, CommunityOut)
    def get(self, community_id):
        """Get one community"""
        return service.get_community(current_session(), community_id)

    @auth.access(auth.ADMIN)
    @blp.arguments(CommunityUpdate)
    @blp.response(200, CommunityOut)
    def patch(self, data, community_id):
        """Change a community; a new boundary must still hold its zones and enterprises"""
        session = current_session()
        community = service.update_community(session, community_id, data)
        session.commit()
        return community

    @auth.access(auth.ADMIN)
    @blp.arguments(CommunityDeleteQuery, location="query")
    @blp.response(204)
    def delete(self, query, community_id):
        """Delete a community (409 while it has zones or enterprises, unless cascade=true; always 409 while it has shifts or service requests, people's records)"""
        session = current_session()
        service.delete_community(session, community_id, cascade=query["cascade"])
        session.commit()
