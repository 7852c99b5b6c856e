"""Volunteers (志愿者), the managed skill list, and their recent positions."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridsvc.db import Audited, Base, Timestamped

if TYPE_CHECKING:
    from gridsvc.models.community import Zone
    from gridsvc.models.user import User

class Skill(Timestamped, Base):
    """The managed skill list (seven defaults from migration 0004); admins may add to it."""

    __tablename__ = "skill"
    __table_args__ = (CheckConstraint("code ~ '^[a-z][a-z0-9_]{1,39}$'", name="code_format"),)

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    # retired: off the list and taken up by nobody new; whoever holds it keeps it (migration 0026)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class VolunteerSkill(Base):
    __tablename__ = "volunteer_skill"

    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteer.id", ondelete="CASCADE"), primary_key=True)
    skill_code: Mapped[str] = mapped_column(ForeignKey("skill.code", onupdate="CASCADE"), primary_key=True, index=True)


class Volunteer(Audited, Base):
    __tablename__ = "volunteer"
    __table_args__ = (
        Index("ix_volunteer_last_position", "last_position", postgresql_using="gist"),
        # Dispatch searches only volunteers on duty: a third of them, so a KNN
        # scan over this partial index wades through far fewer rows.
        Index("ix_volunteer_last_position_on_duty", "last_position", postgresql_using="gist",
              postgresql_where=text("on_duty_shift_id IS NOT NULL")),
        CheckConstraint("last_accuracy_m IS NULL OR last_accuracy_m >= 0", name="accuracy"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), unique=True)
    real_name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(32))
    national_volunteer_id: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(100), index=True)
    home_zone_id: Mapped[int | None] = mapped_column(ForeignKey("zone.id", ondelete="SET NULL"), index=True)
    # [{"weekday": 1..7 (Mon..Sun), "start": "HH:MM", "end": "HH:MM"}], community local time
    availability: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    # Last known position (what dispatch uses); history in volunteer_position.
    last_position: Mapped[WKBElement | None] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    last_position_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_accuracy_m: Mapped[float | None] = mapped_column(Float)
    # The shift the volunteer is checked in to, if any: "on duty" is this not being NULL.
    on_duty_shift_id: Mapped[int | None] = mapped_column(ForeignKey("shift.id", ondelete="SET NULL"),
                                                         index=True)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    home_zone: Mapped[Zone | None] = relationship(foreign_keys=[home_zone_id])
    skills: Mapped[list[Skill]] = relationship(secondary="volunteer_skill", order_by="Skill.code")

    @property
    def skill_codes(self) -> list[str]:
        return [s.code for s in self.skills]

    @property
    def on_duty(self) -> bool:
        return self.on_duty_shift_id is not None


class VolunteerPosition(Base):
    """Short position history; ``gridsvc purge`` deletes what is past retention."""

    __tablename__ = "volunteer_position"
    __table_args__ = (Index("ix_volunteer_position_volunteer_id_recorded_at", "volunteer_id", "recorded_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteer.id", ondelete="CASCADE"))
    position: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    input_crs: Mapped[str] = mapped_column(String(8))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp(), index=True)
