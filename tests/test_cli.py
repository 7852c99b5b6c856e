"""The gridsvc command against the test database (real commits, cleaned up)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from click.testing import CliRunner
from sqlalchemy import select, text

from gridsvc.cli import main
from gridsvc.models import User, Volunteer, VolunteerPosition


def run(database_url, *args, env=None):
    result = CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url, **(env or {})}, catch_exceptions=False)
    return result


def test_user_add_and_disable(database_url, engine):
    try:
        added = run(database_url, "user", "add", "li.qiang", "--name", "李强", "--role", "liaison", "--role", "planner",
                    env={"GRIDSVC_NEW_PASSWORD": "a-long-password"})
        assert added.exit_code == 0, added.output
        with engine.connect() as conn:
            user = conn.execute(select(User.id, User.disabled).where(User.username == "li.qiang")).one()
        assert user.disabled is False
        again = run(database_url, "user", "add", "li.qiang", "--name", "x", "--role", "admin",
                    env={"GRIDSVC_NEW_PASSWORD": "a-long-password"})
        assert again.exit_code != 0 and "taken" in again.output
        assert run(database_url, "user", "disable", "li.qiang").exit_code == 0
        with engine.connect() as conn:
            assert conn.execute(select(User.disabled).where(User.username == "li.qiang")).scalar() is True
    finally:
        with engine.begin() as conn:
            conn.execute(User.__table__.delete().where(User.username == "li.qiang"))


def test_purge_deletes_old_positions_only(database_url, engine):
    with engine.begin() as conn:
        vid = conn.execute(select(Volunteer.id).order_by(Volunteer.id).limit(1)).scalar()
        old = datetime.now(timezone.utc) - timedelta(days=10)
        conn.execute(text("INSERT INTO volunteer_position (volunteer_id, position, input_crs, recorded_at) VALUES "
                          "(:v, ST_SetSRID(ST_MakePoint(121.78, 29.87), 4326), 'wgs84', :old), "
                          "(:v, ST_SetSRID(ST_MakePoint(121.78, 29.87), 4326), 'wgs84', now())"), {"v": vid, "old": old})
    try:
        result = run(database_url, "purge")
        assert result.exit_code == 0 and "deleted 1 position" in result.output
    finally:
        with engine.begin() as conn:
            conn.execute(VolunteerPosition.__table__.delete().where(VolunteerPosition.volunteer_id == vid))


def test_tick_closes_nothing_when_nothing_is_overdue(database_url):
    result = run(database_url, "tick")
    assert result.exit_code == 0 and "closed 0 check-in" in result.output and "0 expired offer" in result.output
