"""The Lingfeng demo loads once: a second load adds nothing."""
from __future__ import annotations

from gridsvc.models import Community, Enterprise, Zone
from gridsvc.seed import load_lingfeng
from tests.helpers import count


def test_second_load_adds_nothing(session):
    before = (count(session, Community), count(session, Zone), count(session, Enterprise))
    result = load_lingfeng(session)
    assert result.created is False and "Lingfeng" in result.community.name
    assert (count(session, Community), count(session, Zone), count(session, Enterprise)) == before


def test_load_into_empty_database_creates_everything(session):
    lingfeng = session.query(Community).filter(Community.name.like("%Lingfeng%")).one()
    session.delete(lingfeng)
    session.flush()
    result = load_lingfeng(session)
    assert result.created and result.zones == 10 and result.enterprises == 78
    assert session.query(Enterprise).filter(Enterprise.community_id == result.community.id, Enterprise.zone_id.is_(None)).count() == 0
