"""Accounts, their roles, departments and the login-failure log used for throttling."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, LargeBinary, SmallInteger, String,
                        Text, func)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridsvc.db import Base, Timestamped

ROLES = ("admin", "planner", "liaison", "volunteer", "department", "worker")
# A new password's length in characters (the API's schema and the service, which the CLI calls, both hold to it).
PASSWORD_LENGTH = (8, 256)


class User(Timestamped, Base):
    # "user" is a reserved word in PostgreSQL.
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # Bumped to revoke every token issued so far (sign-out everywhere, disable).
    token_version: Mapped[int] = mapped_column(Integer, server_default="0")
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    role_rows: Mapped[list[UserRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")
    departments: Mapped[list[Department]] = relationship(secondary="department_member", order_by="Department.code")

    @property
    def roles(self) -> list[str]:
        return sorted(r.role for r in self.role_rows)

    def set_roles(self, roles: list[str]) -> None:
        wanted = set(roles)
        self.role_rows = [r for r in self.role_rows if r.role in wanted]
        have = {r.role for r in self.role_rows}
        self.role_rows.extend(UserRole(role=role) for role in sorted(wanted - have))


class UserRole(Base):
    __tablename__ = "user_role"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)


class Department(Timestamped, Base):
    """A department of the community office (traffic, housing, labour ...)."""

    __tablename__ = "department"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class DepartmentMember(Base):
    __tablename__ = "department_member"

    department_id: Mapped[int] = mapped_column(ForeignKey("department.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True, index=True)


class LoginFailure(Base):
    """One failed sign-in; recent rows per username, and per client address, drive the throttle.

    Kept in the database (not process memory) so every gunicorn worker sees
    the same count. Usernames that do not exist are logged too, so the
    throttle says nothing about which accounts exist.
    """

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_username_at", "username", "at"),
                      Index("ix_login_failure_address_at", "address", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    # the client's address (an IPv6 client's /64), which has a throttle of its own; NULL before migration 0025
    address: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp())


class RefreshTokenUse(Base):
    """A refresh token that has been exchanged (rotation: each is good once).

    A second use means two holders have it, one of them a thief: every token
    of the account is then revoked. Rows outlive the token's expiry only
    until the next exchange purges them.
    """

    __tablename__ = "refresh_token_use"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class IdempotentRequest(Base):
    """The first answer to a write sent with an Idempotency-Key (``gridsvc.idempotency``).

    ``status_code`` is NULL while the first request is being answered.
    Bodies may hold personal data: rows go after GRIDSVC_IDEMPOTENCY_HOURS
    (``gridsvc purge``).
    """

    __tablename__ = "idempotent_request"

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of method, path and body
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    headers: Mapped[list | None] = mapped_column(JSONB)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ApiKey(Base):
    """A long-lived key for an application acting for an account (Open311 clients).

    Only a hash is stored; the key itself is shown once, when it is made.
    """

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
