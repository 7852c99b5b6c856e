"""Batch dispatch: offer all open unassigned requests of a community at once,
so that the total distance walked is minimal.

Each request may go to one of its K nearest eligible volunteers (skill, cap,
not already asked); a volunteer with room for n more tasks appears n times.
scipy's ``linear_sum_assignment`` then finds the assignment of least total
distance (the Hungarian method); greedy nearest-first, request by request in
filing order, is computed beside it for comparison. Pending offers of those
requests are withdrawn first: they are part of what is re-planned.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy.optimize import linear_sum_assignment
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from gridsvc.models import RequestOffer, ServiceRequest, ServiceType, Volunteer
from gridsvc.services import requests as dispatch
from gridsvc.services.volunteers import volunteer_may_serve

UNREACHABLE = 1e12


@dataclass(frozen=True)
class BatchResult:
    requests: int
    offered: int
    unassigned: list[int]
    total_distance_m: float
    greedy_total_distance_m: float
    greedy_offered: int
    pairs: list[tuple[int, int, float]]  # request, volunteer, distance
    considered: frozenset[int]  # every volunteer either assignment could use


def batch_dispatch(session: Session, community_id: int, *, now: datetime, policy: dispatch.DispatchPolicy,
                   k: int = 10, seen_by: dispatch.Actor | None = None) -> BatchResult:
    """``seen_by``: only the requests this liaison handles (their zones', and those handed to them): a liaison's
    batch listed, and re-offered, another zone's requests, each a 404 to them. None: all (an admin)."""
    # A request with the liaison after its refusals stays theirs (the dispatch policy's last step): re-offering
    # it would take it from them.
    chosen = select(ServiceRequest).where(ServiceRequest.community_id == community_id,
                                          ServiceRequest.status.in_(("offered", "with_liaison")),
                                          ServiceRequest.refusals < policy.max_refusals)
    if seen_by is not None:  # (as its staff reads a request: dispatch._is_zone_staff)
        chosen = chosen.where(or_(ServiceRequest.zone_id.in_(list(seen_by.liaison_zone_ids)),
                                  ServiceRequest.liaison_id == seen_by.user_id))
    open_requests = session.scalars(
        chosen.order_by(ServiceRequest.created_at, ServiceRequest.id).with_for_update(skip_locked=True)).all()
    ids = [r.id for r in open_requests]
    if ids:
        session.execute(update(RequestOffer).where(RequestOffer.request_id.in_(ids), RequestOffer.outcome == "pending")
                        .values(outcome="withdrawn", answered_at=now))
        session.flush()
    options: dict[int, list[dispatch.Candidate]] = {}
    for request in open_requests:
        lon, lat = dispatch._lonlat(session, request)
        skill = session.scalar(select(ServiceType.required_skill).where(ServiceType.code == request.service_code))
        options[request.id] = dispatch.candidates(session, lon=lon, lat=lat, skill=skill, now=now, policy=policy,
                                                  exclude=dispatch._offered_before(session, request.id), limit=k,
                                                  requester_id=request.requester_id)
    # The volunteers' offer locks, as a single dispatch takes them, so that their room counted below holds while
    # the offers are made: tried, and a volunteer whose lock is held elsewhere (being offered something, given
    # a request, or their account being disabled) has no room in this plan. Waited for, a batch holding these
    # requests' rows deadlocked with a disabling or a reassign holding the lock and waiting for one of them.
    volunteers = [v for v in sorted({c.volunteer_id for cs in options.values() for c in cs})
                  if session.scalar(select(func.pg_try_advisory_xact_lock(dispatch.OFFER_LOCKS, v)))]
    # Read under the locks: an account disabled meanwhile gave its tasks back under its lock (give_back_tasks)
    # and is read as disabled now; planned before, it was offered a request it could never take.
    serving = set(session.scalars(select(Volunteer.id).where(Volunteer.id.in_(volunteers), volunteer_may_serve())))
    room = {v: policy.task_cap - session.scalar(select(dispatch._open_tasks(Volunteer.id, now)).where(Volunteer.id == v))
            if v in serving else 0 for v in volunteers}
    slots = [v for v in volunteers for _ in range(max(0, room[v]))]
    cost = np.full((len(open_requests), max(1, len(slots))), UNREACHABLE)
    for i, request in enumerate(open_requests):
        distance = {c.volunteer_id: c.distance_m for c in options[request.id]}
        for j, v in enumerate(slots):
            if v in distance:
                cost[i, j] = distance[v]
    pairs: list[tuple[int, int, float]] = []
    if slots and open_requests:
        rows, cols = linear_sum_assignment(cost)
        pairs = [(open_requests[i].id, slots[j], float(cost[i, j])) for i, j in zip(rows, cols) if cost[i, j] < UNREACHABLE]
    greedy_total, greedy_offered = _greedy(open_requests, options, dict(room))
    by_request = {r: (v, d) for r, v, d in pairs}
    for request in open_requests:
        before = request.status
        if request.id in by_request:
            volunteer_id, distance = by_request[request.id]
            session.add(RequestOffer(request_id=request.id, volunteer_id=volunteer_id, distance_m=round(distance, 1),
                                     offered_at=now, deadline=now + policy.accept_within))
            request.status, request.volunteer_id, request.liaison_id = "offered", None, None
            session.flush()
            dispatch._event(session, request, None, "offer", before, "offered", system=True,
                            note=f"batch: offered to volunteer {volunteer_id}")
        elif before == "offered":  # its offer was withdrawn and nobody is left for it
            dispatch._to_liaison(session, request, before)
    session.flush()
    return BatchResult(requests=len(open_requests), offered=len(pairs),
                       unassigned=[r.id for r in open_requests if r.id not in by_request],
                       total_distance_m=round(sum(d for _, _, d in pairs), 1),
                       greedy_total_distance_m=round(greedy_total, 1), greedy_offered=greedy_offered, pairs=pairs,
                       considered=frozenset(volunteers))


def _greedy(open_requests, options, room: dict[int, int]) -> tuple[float, int]:
    """Nearest-first, request by request in filing order: the baseline the optimum is compared with."""
    total, offered = 0.0, 0
    for request in open_requests:
        for candidate in options[request.id]:
            if room.get(candidate.volunteer_id, 0) > 0:
                room[candidate.volunteer_id] -= 1
                total += candidate.distance_m
                offered += 1
                break
    return total, offered
