"""Service requests ("push one door, find one person"): intake, dispatch, lifecycle, audit trail."""
from __future__ import annotations

from flask import current_app, url_for
from flask.views import MethodView
from geoalchemy2 import WKBElement
from shapely.geometry.base import BaseGeometry

from gridsvc import auth, clock
from gridsvc.api import Blueprint
from gridsvc.db import current_session
from gridsvc.errors import NotFound
from gridsvc.fields import as_shape
from gridsvc.resources.actors import actor
from gridsvc.schemas.common import geopoint
from gridsvc.schemas.requests import (ActionIn, CandidateOut, CandidatesQuery, EventOut, RateIn,
                                      RequestCreate, RequestOut, RequestPageOut, RequestQuery, ServiceOut, StatsOut,
                                      StatsQuery, BatchOut, BatchQuery)
from gridsvc.services import requests as service
from gridsvc.services.communities import get_community
from gridsvc.services.zones import manages_a_zone_of

blp = Blueprint("requests", __name__, description="Service requests (诉求), dispatch and claims (认领)")

READERS = auth.roles("worker", "volunteer", "liaison", "department", "admin", name="request-readers")
DISPATCHERS = auth.roles("liaison", "admin", name="dispatchers")


def dispatch_policy() -> service.DispatchPolicy:
    return service.DispatchPolicy.from_config(current_app.config)


def _point(value) -> dict | None:
    if value is None:
        return None
    point = as_shape(value)
    return {"lon": point.x, "lat": point.y, "crs": "wgs84"}


_LOOK_UP = object()


def request_view(request, offer=_LOOK_UP, located: set[int] | None = None) -> dict:
    """The API's view of a request; ``offer``: its pending offer when the caller knows it; ``located``: the
    volunteers whose position the caller may see, when known (only they are told how far the volunteer is)."""
    session = current_session()
    if not isinstance(request.location, (WKBElement, BaseGeometry)):  # set from SQL in this transaction: read it back
        session.refresh(request, ["location"])
    if offer is _LOOK_UP:
        offer = service.pending_offer(session, request.id)
    if located is None:
        located = service.volunteers_located_by(session, actor(), [offer.volunteer_id] if offer else [],
                                                now=clock.now())
    return {
        "id": request.id, "community_id": request.community_id, "zone_id": request.zone_id, "zone_note": request.zone_note,
        "service_code": request.service_code, "description": request.description, "location": _point(request.location),
        "attributes": request.attributes, "media_urls": request.media_urls, "status": request.status,
        "volunteer_id": request.volunteer_id, "liaison_id": request.liaison_id, "department_id": request.department_id,
        "claimed_by_id": request.claimed_by_id, "refusals": request.refusals,
        "offer": None if offer is None else {
            "volunteer_id": offer.volunteer_id, "offered_at": offer.offered_at, "deadline": offer.deadline,
            "distance_m": offer.distance_m if offer.volunteer_id in located else None},
        "possible_duplicates": list(request.duplicate_of_ids or []), "requester_id": request.requester_id,
        "created_at": request.created_at, "sla_due_at": request.sla_due_at,
        "first_response_at": request.first_response_at, "resolved_at": request.resolved_at,
        "closed_at": request.closed_at, "rating": request.rating, "feedback": request.feedback,
        "contact": request.contact if service.may_reach_requester(request, actor()) else None,
    }


def _views(requests: list) -> list[dict]:
    """``request_view`` of each, with the page's pending offers (and whom the caller may locate) read at once."""
    session = current_session()
    offers = service.pending_offers(session, [r.id for r in requests])
    located = service.volunteers_located_by(session, actor(), {o.volunteer_id for o in offers.values()},
                                            now=clock.now())
    return [request_view(r, offers.get(r.id), located) for r in requests]


@blp.route("/services")
class Services(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, ServiceOut(many=True))
    def get(self):
        """The service list (服务清单): what the community handles, with SLAs and attributes"""
        return service.list_services(current_session())


@blp.route("/services/<string:code>")
class ServiceItem(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, ServiceOut)
    def get(self, code):
        """One service"""
        return service.get_service(current_session(), code)


@blp.route("/requests")
class Requests(MethodView):
    @auth.access(READERS)
    @blp.arguments(RequestQuery, location="query")
    @blp.response(200, RequestPageOut)
    def get(self, query):
        """Requests you may see, newest first (filters: status, service, zone, assignee, bbox, from, to)"""
        session = current_session()
        service.expire_offers(session, now=clock.now(), policy=dispatch_policy())
        session.commit()
        query["volunteer_id"] = query.pop("assignee", None)
        query["start"], query["end"] = query.pop("start", None), query.pop("end", None)
        page = service.list_requests(session, actor(), **query)
        return {"total": page.total, "limit": page.limit, "offset": page.offset, "items": _views(page.items)}

    @auth.access(auth.FILERS)
    @blp.arguments(RequestCreate)
    @blp.response(201, RequestOut)
    def post(self, data):
        """Raise a need once: it is placed in its zone and dispatched at once"""
        session = current_session()
        point = data.pop("point")
        request, offer = service.file_request(session, requester_id=auth.current_principal().user_id, lon=point.lon,
                                              lat=point.lat, input_crs=point.input_crs, now=clock.now(),
                                              policy=dispatch_policy(), **data)
        session.commit()
        return request_view(request, offer), {"Location": url_for("requests.RequestItem", request_id=request.id)}


@blp.route("/requests/stats")
class RequestStats(MethodView):
    @auth.access(auth.roles("admin", "planner", "liaison", "department", name="figure-readers"))
    @blp.arguments(StatsQuery, location="query")
    @blp.response(200, StatsOut)
    @blp.alt_response(404, description="No such community")
    def get(self, query):
        """Figures: counts by status, service and zone, median time to first response and to resolution, SLA share, rating"""
        session = current_session()
        get_community(session, query["community_id"])
        return service.stats(session, community_id=query["community_id"], start=query.get("start"),
                             end=query.get("end"), now=clock.now())


@blp.route("/requests/<int:request_id>")
class RequestItem(MethodView):
    @auth.access(READERS)
    @blp.response(200, RequestOut)
    def get(self, request_id):
        """One request (if you may see it)"""
        session = current_session()
        service.expire_offers(session, now=clock.now(), policy=dispatch_policy(), request_ids=[request_id])
        session.commit()
        request = service.get_request(session, request_id)
        if not service.may_see(session, request, actor()):
            raise NotFound(f"Request {request_id} does not exist.")  # do not confirm it exists
        return request_view(request)


@blp.route("/requests/<int:request_id>/events")
class RequestEvents(MethodView):
    @auth.access(READERS)
    @blp.response(200, EventOut(many=True))
    def get(self, request_id):
        """The audit trail: who, when, from and to, note, where"""
        session = current_session()
        request = service.get_request(session, request_id)
        me = actor()
        if not service.may_see(session, request, me):
            raise NotFound(f"Request {request_id} does not exist.")
        return [{"id": e.id, "action": e.action, "actor_id": e.actor_id, "system": e.system,
                 "from_status": e.from_status, "to_status": e.to_status, "note": note,
                 "where": _point(e.position) if shown else None, "at": e.at}
                for e, note, shown in service.trail_seen_by(session, request, me, now=clock.now())]


def _action_view(action: str):
    @auth.access(READERS)
    @blp.arguments(ActionIn)
    @blp.response(200, RequestOut)
    @blp.alt_response(409, description="Not allowed from the current state (the problem names both)")
    def post(self, data, request_id):
        session = current_session()
        where = data.get("point")
        if action in ("accept", "decline"):
            # An offer past its deadline moves on in a transaction of its own: the 409 that tells its volunteer
            # "it has gone to someone else" undid the move with the action, and the request waited, offered to
            # them, for the next read.
            service.expire_offers(session, now=clock.now(), policy=dispatch_policy(), request_ids=[request_id])
            session.commit()
        request = service.act(session, request_id, action, actor(), now=clock.now(), policy=dispatch_policy(),
                              note=data.get("note"), volunteer_id=data.get("volunteer_id"),
                              lon=where.lon if where else None, lat=where.lat if where else None)
        session.commit()
        return request_view(request)

    post.__doc__ = {
        "accept": "Accept an offer (the offered volunteer, on duty, before the deadline)",
        "decline": "Decline an offer: it goes to the next candidate",
        "hand_back": "Hand back a request you took and cannot finish: it goes to the next candidate (the holder)",
        "start": "Start working on it (whoever holds it)",
        "resolve": "Mark it resolved",
        "close": "Close a resolved request (requester, liaison, admin)",
        "reopen": "Reopen: dispatched again from the start",
        "escalate": "Send it to the department pool (liaison, admin)",
        "claim": "Claim it from the pool (认领); the first claim wins, a second gets 409",
        "reassign": "Give it to a named volunteer (liaison, admin)",
        "withdraw": "Withdraw it while open: no longer needed, or a duplicate (requester, liaison, admin)",
        "comment": "Add a note to the trail",
    }[action]
    return post


for _action in service.ACTIONS:
    blp.route(f"/requests/<int:request_id>/{_action}", endpoint=f"RequestAction_{_action}")(
        type(f"RequestAction_{_action}", (MethodView,), {"post": _action_view(_action)}))


@blp.route("/requests/<int:request_id>/rate")
class RequestRate(MethodView):
    @auth.access(READERS)
    @blp.arguments(RateIn)
    @blp.response(200, RequestOut)
    def post(self, data, request_id):
        """The requester rates a resolved request 1-5, with a comment"""
        session = current_session()
        request = service.rate(session, request_id, actor(), **data)
        session.commit()
        return request_view(request)


@blp.route("/me/offers")
class MyOffers(MethodView):
    @auth.access(auth.roles("volunteer"))
    @blp.response(200, RequestOut(many=True))
    def get(self):
        """Requests offered to you now, soonest deadline first"""
        session = current_session()
        me = actor()
        service.expire_offers(session, now=clock.now(), policy=dispatch_policy(), volunteer_id=me.volunteer_id)
        session.commit()
        return _views([r for _, r in service.offers_of(session, me.volunteer_id or -1)])


@blp.route("/me/tasks")
class MyTasks(MethodView):
    @auth.access(auth.roles("volunteer"))
    @blp.response(200, RequestOut(many=True))
    def get(self):
        """Requests you hold (assigned or in progress)"""
        session = current_session()
        me = actor()
        open_ = [r for status in ("assigned", "in_progress")
                 for r in service.list_requests(session, me, status=status, volunteer_id=me.volunteer_id or -1).items]
        return _views(open_)


@blp.route("/dispatch/candidates")
class DispatchCandidates(MethodView):
    @auth.access(DISPATCHERS)
    @blp.arguments(CandidatesQuery, location="query")
    @blp.response(200, CandidateOut(many=True))
    def get(self, query):
        """The ranked candidates for a point and skill, with distance_m (liaisons, admins)

        A ranking with distances from a point of your choosing locates whoever is in it, so it ranks whom you may
        locate, as the volunteer search by position does: an admin everyone, a liaison the volunteers who work in
        their zones now (home zone, a place in a shift not over, hours waiting for review there): one on duty in
        their zone holds a place in its shift.
        """
        point = geopoint(query["lon"], query["lat"], query["crs"])
        found = service.candidates(current_session(), lon=point.lon, lat=point.lat, skill=query.get("skill"),
                                   now=clock.now(), policy=dispatch_policy(), limit=query["limit"], located_by=actor())
        return [{"volunteer_id": c.volunteer_id, "distance_m": round(c.distance_m, 1)} for c in found]


@blp.route("/dispatch/batch")
class DispatchBatch(MethodView):
    @auth.access(DISPATCHERS)
    @blp.arguments(BatchQuery, location="query")
    @blp.response(200, BatchOut)
    @blp.alt_response(404, description="No such community")
    def post(self, query):
        """Offer all open unassigned requests at once with the least total distance (reports greedy beside it)"""
        # (imported here: scipy's solver is loaded by the first batch, not by every worker as it starts)
        from gridsvc.services.batch import batch_dispatch

        session = current_session()
        community = get_community(session, query["community_id"])
        principal = auth.current_principal()
        if "admin" not in principal.roles:
            auth.require(manages_a_zone_of(session, principal.liaison_zone_ids, community.id),
                         "Only admins and liaisons of this community may run a batch.")
        result = batch_dispatch(session, community.id, now=clock.now(), policy=dispatch_policy(),
                                seen_by=None if "admin" in principal.roles else actor())
        session.commit()
        # The plan uses every distance; the answer tells the caller only those of volunteers they may locate (as
        # /dispatch/candidates does): a liaison files requests where they choose, and the distances of a few
        # batches would locate anyone. The totals add up distances, so they come only with all of them.
        located = service.volunteers_located_by(session, actor(), result.considered, now=clock.now())
        every_distance = located >= result.considered
        return {"requests": result.requests, "offered": result.offered, "unassigned": result.unassigned,
                "total_distance_m": result.total_distance_m if every_distance else None,
                "greedy_total_distance_m": result.greedy_total_distance_m if every_distance else None,
                "greedy_offered": result.greedy_offered,
                "pairs": [{"request_id": r, "volunteer_id": v, "distance_m": round(d, 1) if v in located else None}
                          for r, v, d in result.pairs]}
