"""Shifts (班次), sign-ups, GPS check-in/out events and service hours."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (Boolean, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, Numeric, String, Text,
                        UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridsvc.db import Audited, Base

if TYPE_CHECKING:
    from gridsvc.models.community import Community, Zone
    from gridsvc.models.volunteer import Skill, Volunteer

SHIFT_STATUSES = ("scheduled", "cancelled")
# Where a shift stands in time (ShiftOut.phase), worked out on read: as a volunteer app shows an activity (未开始,
# 进行中, 已结束). The status says only whether it was cancelled: a shift over yesterday is still "scheduled".
SHIFT_PHASES = ("upcoming", "in_progress", "ended")
SIGNUP_STATUSES = ("confirmed", "waitlisted", "cancelled")
# a sign-up that holds a place, confirmed or waiting for one (a withdrawn or removed one is "cancelled")
LIVE_SIGNUP_STATUSES = ("confirmed", "waitlisted")
CHECK_KINDS = ("check_in", "check_out")
HOURS_STATUSES = ("pending", "approved", "declined")
# Why an hours entry waits flagged for the liaison (ServiceHours.flag_reason), every value the code writes:
# missing_check_out, a stint closed at its shift's end for want of a check-out (the database's functions,
# migrations 0014 to 0036: gridsvc_close_overdue, gridsvc_check); may_not_volunteer, the stint of an account that
# may no longer volunteer, ended then (services.accounts through checks.end_duty). tests/test_review_s8_contract.py
# produces both, and reads the database's functions for any other.
HOURS_FLAG_REASONS = ("missing_check_out", "may_not_volunteer")
# A point shift's geofence radius at most (a gate, a market hall, a block):
# the shift search relies on it to find point shifts through their index.
MAX_SHIFT_RADIUS_M = 5000


class ShiftSkill(Base):
    __tablename__ = "shift_skill"

    shift_id: Mapped[int] = mapped_column(ForeignKey("shift.id", ondelete="CASCADE"), primary_key=True)
    skill_code: Mapped[str] = mapped_column(ForeignKey("skill.code", onupdate="CASCADE"), primary_key=True)


class Shift(Audited, Base):
    """A window of volunteer duty at a zone, or at a point with a radius.

    Never deleted by the API (``DELETE`` cancels it). Its zone's or community's ON DELETE CASCADE is refused by
    the trigger ``shift_records_kept`` (migration 0038) while it has check events or hours, or sign-ups once
    started: the volunteers' service record; the services refuse such deletes first, with a 409 that says so.
    """

    __tablename__ = "shift"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("capacity > 0", name="capacity"),
        CheckConstraint("(location IS NULL) = (radius_m IS NULL)", name="point_has_radius"),
        CheckConstraint(f"radius_m IS NULL OR (radius_m > 0 AND radius_m <= {MAX_SHIFT_RADIUS_M})", name="radius"),
        CheckConstraint(f"status IN {SHIFT_STATUSES!r}", name="status"),
        Index("ix_shift_zone_id_starts_at", "zone_id", "starts_at"),
        # a zone's shifts not over yet: whom its liaison sees as working there now (volunteers.works_in, 0040)
        Index("ix_shift_zone_id_ends_at", "zone_id", "ends_at"),
        Index("ix_shift_location", "location", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"), index=True)
    # Always set: the zone itself, or the zone holding the point (the liaison who answers for it).
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    activity: Mapped[str] = mapped_column(String(60))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    capacity: Mapped[int] = mapped_column(Integer)
    # A point geofence (e.g. the north gate); NULL means the zone polygon is the geofence.
    location: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    radius_m: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(12), server_default="scheduled")
    series_id: Mapped[str | None] = mapped_column(String(36), index=True)  # shifts made by one recurring template
    notes: Mapped[str | None] = mapped_column(Text)

    community: Mapped[Community] = relationship()
    zone: Mapped[Zone] = relationship()
    required_skills: Mapped[list[Skill]] = relationship(secondary="shift_skill", order_by="Skill.code")

    @property
    def required_skill_codes(self) -> list[str]:
        return [s.code for s in self.required_skills]

    def phase(self, now: datetime) -> str:
        """upcoming until it starts, in_progress until it ends, then ended (SHIFT_PHASES)."""
        if now < self.starts_at:
            return "upcoming"
        return "in_progress" if now < self.ends_at else "ended"


class Signup(Base):
    __tablename__ = "signup"
    __table_args__ = (
        CheckConstraint(f"status IN {SIGNUP_STATUSES!r}", name="status"),
        # One live sign-up per volunteer and shift; cancelled ones stay as history.
        Index("uq_signup_live", "shift_id", "volunteer_id", unique=True, postgresql_where=text("status <> 'cancelled'")),
        Index("ix_signup_volunteer_id_status", "volunteer_id", "status"),
        # the places taken in a shift, counted by every list that says how many are left (0040)
        Index("ix_signup_shift_id_confirmed", "shift_id", postgresql_where=text("status = 'confirmed'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("shift.id", ondelete="CASCADE"), index=True)
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteer.id", ondelete="RESTRICT"))  # kept (0038)
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp(),
                                                 onupdate=func.clock_timestamp())

    shift: Mapped[Shift] = relationship()
    volunteer: Mapped[Volunteer] = relationship()


class CheckEvent(Base):
    """One check-in or check-out as the phone sent it, accepted or refused.

    Refused events are kept (flagged) for the liaison to see; ``response``
    holds the answer given, so a retry with the same Idempotency-Key gets
    the same answer and records nothing new.
    """

    __tablename__ = "check_event"
    __table_args__ = (
        CheckConstraint(f"kind IN {CHECK_KINDS!r}", name="kind"),
        UniqueConstraint("volunteer_id", "idempotency_key"),
        Index("ix_check_event_shift_id_volunteer_id", "shift_id", "volunteer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("shift.id", ondelete="CASCADE"))
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteer.id", ondelete="RESTRICT"))  # kept (0038)
    kind: Mapped[str] = mapped_column(String(10))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    client_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp())
    # The moment judged against the window: client_time for offline events, else received_at.
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    position: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    input_lon: Mapped[float] = mapped_column(Float)
    input_lat: Mapped[float] = mapped_column(Float)
    input_crs: Mapped[str] = mapped_column(String(8))
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    inside: Mapped[bool] = mapped_column(Boolean)
    distance_m: Mapped[float] = mapped_column(Float)  # to the geofence; 0 inside it
    accepted: Mapped[bool] = mapped_column(Boolean)
    flagged: Mapped[bool] = mapped_column(Boolean, server_default="false")
    reason: Mapped[str | None] = mapped_column(String(40))
    offline: Mapped[bool] = mapped_column(Boolean, server_default="false")
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)


class ServiceHours(Base):
    """Verified service time: the overlap of [check-in, check-out] with the shift."""

    __tablename__ = "service_hours"
    __table_args__ = (
        CheckConstraint(f"status IN {HOURS_STATUSES!r}", name="status"),
        CheckConstraint("ended_at >= started_at", name="ordered"),
        Index("ix_service_hours_volunteer_id_started_at", "volunteer_id", "started_at"),
        # the liaisons' review queue: the few pending among a year's entries, oldest first
        Index("ix_service_hours_pending_started_at", "started_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteer.id", ondelete="RESTRICT"))  # kept (0038)
    shift_id: Mapped[int] = mapped_column(ForeignKey("shift.id", ondelete="CASCADE"), index=True)
    check_in_id: Mapped[int] = mapped_column(ForeignKey("check_event.id", ondelete="RESTRICT"), unique=True)
    check_out_id: Mapped[int | None] = mapped_column(ForeignKey("check_event.id", ondelete="RESTRICT"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    hours: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    status: Mapped[str] = mapped_column(String(10), server_default="pending")
    auto_approved: Mapped[bool] = mapped_column(Boolean, server_default="false")
    flagged: Mapped[bool] = mapped_column(Boolean, server_default="false")
    flag_reason: Mapped[str | None] = mapped_column(String(60))
    review_note: Mapped[str | None] = mapped_column(Text)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    shift: Mapped[Shift] = relationship()
    volunteer: Mapped[Volunteer] = relationship()
