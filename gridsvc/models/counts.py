"""Exact row counts of the tables published as OGC collections.

``numberMatched`` of an unfiltered page would otherwise be a ``count(*)``
over up to a million parking spaces on every request. Statement-level
triggers (migration 0009) keep this table exact and transactional: a row's
count moves with the inserting or deleting transaction and is seen under the
same snapshot as the rows themselves.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from gridsvc.db import Base

COUNTED_TABLES = ("community", "zone", "enterprise", "parking_lot", "parking_space")


class RowCount(Base):
    __tablename__ = "row_count"

    table_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
