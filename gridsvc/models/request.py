"""Service requests (诉求): the service list, requests, offers to volunteers and the audit trail."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (Boolean, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, String, Text, func, text)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridsvc.db import Audited, Base, Timestamped

if TYPE_CHECKING:
    from gridsvc.models.user import Department

# The request lifecycle; docs/ in the README draws it.
REQUEST_STATUSES = ("offered", "assigned", "with_liaison", "escalated", "claimed", "in_progress", "resolved", "closed",
                    "withdrawn")  # withdrawn: no longer needed (its requester, or the zone: a duplicate); migration 0027
OPEN_STATUSES = ("offered", "assigned", "with_liaison", "escalated", "claimed", "in_progress")
# a volunteer holds the request (their volunteer_id on it): accepted or given to them, and being worked on
HELD_BY_A_VOLUNTEER = ("assigned", "in_progress")
OFFER_OUTCOMES = ("pending", "accepted", "declined", "expired", "withdrawn", "returned")  # returned (handed back): migration 0028


class ServiceType(Timestamped, Base):
    """One entry of the community's service list (服务清单), Open311 style."""

    __tablename__ = "service_type"
    __table_args__ = (CheckConstraint("code ~ '^[a-z][a-z0-9_]{1,39}$'", name="code_format"),
                      CheckConstraint("sla_minutes > 0", name="sla"))

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    group: Mapped[str] = mapped_column(String(60))
    description: Mapped[str | None] = mapped_column(Text)
    required_skill: Mapped[str | None] = mapped_column(ForeignKey("skill.code", onupdate="CASCADE"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id", ondelete="SET NULL"))
    # first response within this many minutes
    sla_minutes: Mapped[int] = mapped_column(Integer, server_default="30")
    # Open311 attribute definitions: [{code, datatype, required, description, values: [{key, name}]}]
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")

    department: Mapped[Department | None] = relationship()


class DepartmentService(Base):
    """Which service codes a department may claim from the pool."""

    __tablename__ = "department_service"

    department_id: Mapped[int] = mapped_column(ForeignKey("department.id", ondelete="CASCADE"), primary_key=True)
    service_code: Mapped[str] = mapped_column(ForeignKey("service_type.code", ondelete="CASCADE", onupdate="CASCADE"),
                                              primary_key=True)


class ServiceRequest(Audited, Base):
    __tablename__ = "service_request"
    __table_args__ = (
        CheckConstraint(f"status IN {REQUEST_STATUSES!r}", name="status"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating"),
        Index("ix_service_request_location", "location", postgresql_using="gist"),
        Index("ix_service_request_zone_id_status", "zone_id", "status"),
        Index("ix_service_request_service_code_created_at", "service_code", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id", ondelete="CASCADE"))
    # set when the point was in no zone but within reach of this one
    zone_note: Mapped[str | None] = mapped_column(String(200))
    service_code: Mapped[str] = mapped_column(ForeignKey("service_type.code", onupdate="CASCADE"))
    description: Mapped[str] = mapped_column(Text)
    location: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    input_crs: Mapped[str] = mapped_column(String(8), server_default="wgs84")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    media_urls: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(14))
    # who owns it now (at most one of these)
    volunteer_id: Mapped[int | None] = mapped_column(ForeignKey("volunteer.id", ondelete="SET NULL"), index=True)
    liaison_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id", ondelete="SET NULL"), index=True)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    refusals: Mapped[int] = mapped_column(Integer, server_default="0")
    # Reopening starts dispatch afresh: offers up to this one belong to an earlier round (see _offered_before).
    last_offer_before_reopen_id: Mapped[int | None] = mapped_column(Integer)
    duplicate_of_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{}")
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rating: Mapped[int | None] = mapped_column(Integer)
    feedback: Mapped[str | None] = mapped_column(Text)


class RequestOffer(Base):
    """A request offered to one volunteer, who must accept before the deadline."""

    __tablename__ = "request_offer"
    __table_args__ = (
        CheckConstraint(f"outcome IN {OFFER_OUTCOMES!r}", name="outcome"),
        # At most one live offer per request.
        Index("uq_request_offer_pending", "request_id", unique=True, postgresql_where=text("outcome = 'pending'")),
        Index("ix_request_offer_volunteer_id_outcome", "volunteer_id", "outcome"),
        Index("ix_request_offer_deadline", "deadline", postgresql_where=text("outcome = 'pending'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_request.id", ondelete="CASCADE"))
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteer.id", ondelete="CASCADE"))
    distance_m: Mapped[float] = mapped_column(Float)
    offered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(10), server_default="pending")
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RequestEvent(Base):
    """The audit trail: who did what, when, from which state to which, and where."""

    __tablename__ = "request_event"
    __table_args__ = (Index("ix_request_event_request_id_at", "request_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_request.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(14))
    to_status: Mapped[str | None] = mapped_column(String(14))
    note: Mapped[str | None] = mapped_column(Text)
    position: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    system: Mapped[bool] = mapped_column(Boolean, server_default="false")  # done by dispatch, not a person
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp())
