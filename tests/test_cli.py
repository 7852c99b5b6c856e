"""The gridsvc command against the test database (real commits, cleaned up)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

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


@pytest.mark.parametrize("password", ["short7!", "长" * 257])
def test_user_add_refuses_a_password_the_api_would_not_take(database_url, engine, password):
    """`user add` checked only the shortest length: a 280-character password created an account that could never
    sign in (the token endpoint takes at most 256)."""
    try:
        added = run(database_url, "user", "add", "zhou.long", "--name", "周龙", "--role", "worker",
                    env={"GRIDSVC_NEW_PASSWORD": password})
        assert added.exit_code == 1 and "must have 8 to 256 characters" in added.output, added.output
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(User).where(User.username == "zhou.long")).scalar() == 0
    finally:
        with engine.begin() as conn:
            conn.execute(User.__table__.delete().where(User.username == "zhou.long"))


def test_user_disable_of_a_volunteer_frees_their_place(database_url, engine):
    """`gridsvc user disable` of a volunteer gives their confirmed place in a shift to come to the waitlist, as the
    API's PATCH does (the command has no app: the check-in policy comes from the settings)."""
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        user_id = conn.execute(text("INSERT INTO app_user (username, display_name, password_hash) "
                                    "VALUES ('cli.volunteer', '志愿者', 'x') RETURNING id")).scalar()
        conn.execute(text("INSERT INTO user_role (user_id, role) VALUES (:u, 'volunteer')"), {"u": user_id})
        volunteer_id = conn.execute(text("INSERT INTO volunteer (user_id, real_name, phone, created_by_id, updated_by_id) "
                                         "VALUES (:u, '志愿者', '13800000001', :u, :u) RETURNING id"), {"u": user_id}).scalar()
        zone = conn.execute(text("SELECT id, community_id FROM zone ORDER BY id LIMIT 1")).one()
        shift_id = conn.execute(text(
            "INSERT INTO shift (community_id, zone_id, title, activity, starts_at, ends_at, capacity) "
            "VALUES (:c, :z, 'CLI disable', 'traffic_guidance', :s, :e, 1) RETURNING id"),
            {"c": zone.community_id, "z": zone.id, "s": now + timedelta(days=300),
             "e": now + timedelta(days=300, hours=2)}).scalar()
        conn.execute(text("INSERT INTO signup (shift_id, volunteer_id, status) VALUES (:s, :v, 'confirmed')"),
                     {"s": shift_id, "v": volunteer_id})
    try:
        result = run(database_url, "user", "disable", "cli.volunteer")
        assert result.exit_code == 0, result.output
        with engine.connect() as conn:
            assert conn.execute(text("SELECT status FROM signup WHERE shift_id = :s"), {"s": shift_id}).scalar() \
                == "waitlisted"
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM signup WHERE shift_id = :s"), {"s": shift_id})
            conn.execute(text("DELETE FROM shift WHERE id = :s"), {"s": shift_id})
            conn.execute(text("DELETE FROM volunteer WHERE id = :v"), {"v": volunteer_id})
            conn.execute(text("DELETE FROM user_role WHERE user_id = :u"), {"u": user_id})
            conn.execute(text("DELETE FROM app_user WHERE id = :u"), {"u": user_id})


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


def test_purge_deletes_stored_answers_to_retried_writes_after_24_hours(database_url, engine):
    with engine.begin() as conn:
        uid = conn.execute(text("SELECT id FROM app_user ORDER BY id LIMIT 1")).scalar()
        conn.execute(text("INSERT INTO idempotent_request (user_id, key, fingerprint, method, path, status_code, body, "
                          "created_at) VALUES (:u, 'purge-old', 'f', 'POST', '/x', 201, 'a', now() - interval '25 hours'), "
                          "(:u, 'purge-new', 'f', 'POST', '/x', 201, 'b', now() - interval '23 hours')"), {"u": uid})
    try:
        result = run(database_url, "purge")
        assert result.exit_code == 0 and "1 stored answer(s)" in result.output
        with engine.connect() as conn:
            assert conn.execute(text("SELECT array_agg(key) FROM idempotent_request WHERE key LIKE 'purge-%'")).scalar() \
                == ["purge-new"]
        assert run(database_url, "purge", env={"GRIDSVC_IDEMPOTENCY_HOURS": "a day"}).exit_code == 2
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM idempotent_request WHERE key LIKE 'purge-%'"))


@pytest.mark.parametrize("args, env", [(["--days", "0"], {}), (["--days", "-7"], {}),
                                       ([], {"GRIDSVC_POSITION_RETENTION_DAYS": "0"}),
                                       ([], {"GRIDSVC_POSITION_RETENTION_DAYS": "a week"})])
def test_purge_refuses_a_retention_that_would_delete_every_last_known_position(database_url, engine, args, env):
    with engine.begin() as conn:
        vid = conn.execute(select(Volunteer.id).order_by(Volunteer.id).limit(1)).scalar()
        conn.execute(text("INSERT INTO volunteer_position (volunteer_id, position, input_crs, recorded_at) VALUES "
                          "(:v, ST_SetSRID(ST_MakePoint(121.78, 29.87), 4326), 'wgs84', now())"), {"v": vid})
    try:
        result = run(database_url, "purge", *args, env=env)
        assert result.exit_code == 2 and ("above 0" in result.output or "0<x" in result.output)
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).where(VolunteerPosition.volunteer_id == vid)).scalar() == 1
    finally:
        with engine.begin() as conn:
            conn.execute(VolunteerPosition.__table__.delete().where(VolunteerPosition.volunteer_id == vid))


def test_tick_closes_nothing_when_nothing_is_overdue(database_url):
    result = run(database_url, "tick")
    assert result.exit_code == 0 and "closed 0 check-in" in result.output and "moved on 0 offer(s)" in result.output


def test_serve_answers_what_gunicorn_refuses_as_problem_json(database_url):
    """gunicorn refuses some requests before the app sees them; those answers are problem+json too."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url, "GRIDSVC_SECRET_KEY": "test-secret-" + "x" * 32}
    server = subprocess.Popen([sys.executable, "-m", "gridsvc.cli", "serve", "--port", str(port), "--workers", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def raw(request: bytes) -> tuple[int, str, dict]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), headers["Content-Type"], json.loads(body)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                # the worker may still be importing the app when the master already
                # accepts: a slow first answer is a wait, not a failure (timeouts are OSErrors)
                urllib.request.urlopen(base + "/api/v1/health/live", timeout=10)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "gridsvc serve did not start"
                time.sleep(0.2)
        long_line = b"GET /api/v1/shifts?near=" + b"1" * 6000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        status, content_type, problem = raw(long_line)
        assert (status, content_type, problem["status"], problem["title"]) == (414, "application/problem+json", 414,
                                                                                "URI Too Long")
        status, content_type, problem = raw(b"NOT A REQUEST LINE\r\n\r\n")
        assert (status, content_type, problem["status"]) == (400, "application/problem+json", 400)
        many_headers = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n"
        status, content_type, problem = raw(many_headers)
        assert (status, content_type, problem["status"]) == (431, "application/problem+json", 431)
        # and what the app itself refuses, as before
        status, content_type, problem = raw(b"GET /api/v1/nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (status, content_type) == (404, "application/problem+json")
    finally:
        server.terminate()
        server.wait(timeout=20)
