"""Security review of accounts, roles and tokens (each test failed before its fix, unless it says it checks
something found sound)."""
from __future__ import annotations

from sqlalchemy import select, text

from gridsvc.models import User, Volunteer
from gridsvc.seed import DEFAULT_DEMO_PASSWORD
from tests.api.test_requests import g03  # noqa: F401  (volunteers on duty in G03)
from tests.helpers import assert_problem


def sign_in(client, username: str, password: str = DEFAULT_DEMO_PASSWORD, address: str = "198.51.100.1"):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def user_id(session, username: str) -> int:
    return session.scalar(select(User.id).where(User.username == username))


def fail_from(session, address: str, times: int) -> None:
    """``times`` recent failed sign-ins from ``address``, each for another name."""
    session.execute(text("INSERT INTO login_failure (username, address, at) "
                         "SELECT 'spray-' || n, :address, clock_timestamp() FROM generate_series(1, :times) n"),
                    {"address": address, "times": times})
    session.flush()


# ---------------------------------------------------------------- sign-in throttling


def test_one_client_cannot_try_a_password_on_every_account(client, app):
    """The throttle counted failures per username only: one client could try 'Password1' on all 80 accounts
    (and 5 more guesses per account every minute, without end). Now a client address has its own budget."""
    limit = int(app.config["GRIDSVC_SIGNIN_ADDRESS_FAILURES"])
    for n in range(limit):
        assert_problem(sign_in(client, f"volunteer-{n % 60 + 1:03d}", "Password1", "203.0.113.7"), 401)
    sprayed = sign_in(client, "worker-001", "Password1", "203.0.113.7")
    body = assert_problem(sprayed, 429, "too-many-attempts")
    assert 1 <= int(sprayed.headers["Retry-After"]) <= 60 * int(app.config["GRIDSVC_SIGNIN_ADDRESS_WINDOW_MIN"])
    assert "address" in body["detail"]
    assert_problem(sign_in(client, "worker-001", address="203.0.113.7"), 429)  # even the right password
    assert sign_in(client, "worker-001", address="203.0.113.8").status_code == 200  # other clients sign in


def test_addresses_in_one_ipv6_64_are_one_client(client, app, session):
    """A client with IPv6 usually holds a whole /64: a new address per guess must not be a new budget."""
    fail_from(session, "2001:db8:1:2::", int(app.config["GRIDSVC_SIGNIN_ADDRESS_FAILURES"]))
    assert_problem(sign_in(client, "worker-002", address="2001:db8:1:2:a:b:c:d"), 429, "too-many-attempts")
    assert sign_in(client, "worker-002", address="2001:db8:1:3::1").status_code == 200


def test_a_throttled_client_cannot_keep_an_account_locked(client, app, session):
    """Five wrong passwords a minute from anywhere kept an account locked for as long as the attacker cared
    to send them. A client over its budget is answered 429 before its guess counts, so it no longer extends
    the account's lock: the owner, elsewhere, signs in."""
    fail_from(session, "203.0.113.9", int(app.config["GRIDSVC_SIGNIN_ADDRESS_FAILURES"]))
    for _ in range(10):
        assert_problem(sign_in(client, "volunteer-010", "wrong-guess", "203.0.113.9"), 429)
    assert sign_in(client, "volunteer-010", address="198.51.100.20").status_code == 200


def test_failures_older_than_the_address_window_do_not_count(client, app, session):
    fail_from(session, "203.0.113.10", int(app.config["GRIDSVC_SIGNIN_ADDRESS_FAILURES"]))
    window = int(app.config["GRIDSVC_SIGNIN_ADDRESS_WINDOW_MIN"])
    session.execute(text(f"UPDATE login_failure SET at = at - interval '{window} minutes 1 second' "
                         "WHERE address = '203.0.113.10'"))
    assert sign_in(client, "worker-003", address="203.0.113.10").status_code == 200


# ---------------------------------------------------------------- passwords


def test_a_password_equal_to_the_username_or_a_common_one_is_refused(login, session):
    """An admin could give zhang.wei the password 'zhang.wei1' ... or 'Zhang.Wei', or '12345678': the first
    guesses of anyone who knows the name."""
    admin = login("admin")
    for password in ("zhang.wei", "ZHANG.WEI", "Ｚｈａｎｇ.ｗｅｉ", "12345678", "password1"):
        body = assert_problem(admin.post("/api/v1/users", json={
            "username": "zhang.wei", "password": password, "display_name": "张伟"}), 422, "validation")
        assert "password" in body["errors"], password
    assert session.scalar(select(User).where(User.username == "zhang.wei")) is None
    uid = user_id(session, "worker-004")
    before = session.get(User, uid).password_hash
    assert_problem(admin.patch(f"/api/v1/users/{uid}", json={"password": "Worker-004"}), 422, "validation")
    session.expire_all()
    assert session.get(User, uid).password_hash == before
    assert admin.patch(f"/api/v1/users/{uid}", json={"password": "a-long-new-password"}).status_code == 200


# ---------------------------------------------------------------- administration


def test_the_last_admin_cannot_be_demoted_or_disabled(login, session):
    """One PATCH (say, an admin tidying their own roles) left the park with no admin: nobody could manage
    accounts through the API again."""
    admin = login("admin")
    uid = user_id(session, "admin")
    body = assert_problem(admin.patch(f"/api/v1/users/{uid}", json={"roles": ["planner"]}), 409)
    assert body["reason"] == "last_admin"
    assert_problem(admin.patch(f"/api/v1/users/{uid}", json={"disabled": True}), 409)
    session.expire_all()
    user = session.get(User, uid)
    assert user.roles == ["admin"] and not user.disabled
    planner = user_id(session, "planner")
    assert admin.patch(f"/api/v1/users/{planner}", json={"roles": ["admin", "planner"]}).status_code == 200
    assert admin.patch(f"/api/v1/users/{uid}", json={"roles": ["planner"]}).status_code == 200  # another admin is left


# ---------------------------------------------------------------- found sound (not covered elsewhere)


def test_a_password_change_retires_every_token_and_the_calendar_key(client, login, session):
    """Checked sound: access and refresh tokens, and the calendar URL, stop at once after a password change."""
    tokens = sign_in(client, "volunteer-011").get_json()
    calendar_url = client.get("/api/v1/me/volunteer", headers=bearer(tokens["access_token"])).get_json()["calendar_url"]
    assert client.get(calendar_url).status_code == 200
    uid = user_id(session, "volunteer-011")
    assert login("admin").patch(f"/api/v1/users/{uid}", json={"password": "a-brand-new-one"}).status_code == 200
    assert_problem(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401)
    assert_problem(client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"])), 401)
    assert_problem(client.get(calendar_url), 401)
    assert sign_in(client, "volunteer-011", "a-brand-new-one").status_code == 200


def test_a_removed_role_stops_at_once_with_the_same_token(login, session):
    """Checked sound: roles are read from the account on every request, not from the token."""
    liaison = login("liaison-g01")
    assert liaison.get("/api/v1/hours").status_code == 200
    uid = user_id(session, "liaison-g01")
    assert login("admin").patch(f"/api/v1/users/{uid}", json={"roles": ["worker"]}).status_code == 200
    assert_problem(liaison.get("/api/v1/hours"), 403)
    v1 = session.scalar(select(Volunteer.id).join(User, User.id == Volunteer.user_id)
                        .where(User.username == "volunteer-001"))
    assert_problem(liaison.get(f"/api/v1/volunteers/{v1}/hours"), 403)


# ---------------------------------------------------------------- for gridsvc/cli.py (not this review's file)


def test_an_admin_can_revoke_a_leaked_api_key(database_url, engine):
    """An Open311 key travels in URLs (the spec's api_key parameter) and leaks into proxy logs; the only way
    to stop a leaked one was to disable the account it acts for, or an UPDATE by hand."""
    from click.testing import CliRunner

    from gridsvc.cli import main
    from gridsvc.models import ApiKey

    def run(*args):
        return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url})

    try:
        assert run("user", "api-key", "worker-009", "--label", "review-leaked").exit_code == 0
        assert run("user", "api-key", "worker-009", "--label", "review-kept").exit_code == 0
        revoked = run("user", "revoke-api-keys", "worker-009", "--label", "review-leaked")
        assert revoked.exit_code == 0, revoked.output
        assert "revoked 1 api_key of worker-009" in revoked.output
        with engine.connect() as conn:
            states = dict(conn.execute(select(ApiKey.label, ApiKey.revoked).where(ApiKey.label.like("review-%"))).all())
        assert states == {"review-leaked": True, "review-kept": False}  # the other key of the account goes on
    finally:
        with engine.begin() as conn:
            conn.execute(ApiKey.__table__.delete().where(ApiKey.label.like("review-%")))


def _full_width(text: str) -> str:
    """As a Chinese keyboard in full-width mode types it (digits and + from U+FF10.., spaces as U+3000)."""
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) for c in text)


def test_an_account_or_a_requests_contact_phone_typed_in_full_width_digits_is_taken(login, g03):  # noqa: F811
    """A volunteer's phone typed on a Chinese keyboard in full-width mode was fixed, but an account's phone and a
    request's contact phone still answered "Digits, spaces, '-' and a leading '+' only"."""
    from tests.api.test_requests import file

    admin = login("admin")
    created = admin.post("/api/v1/users", json={"username": "li.na", "password": "long-enough-1", "display_name": "李娜",
                                                "roles": ["worker"], "phone": _full_width("+86 139 1234 5678")})
    assert created.status_code == 201, created.get_json()
    assert admin.get(f"/api/v1/users/{created.get_json()['id']}").get_json()["phone"] == "+86 139 1234 5678"
    filed = file(login("worker-001"), g03["here"], contact={"name": "王师傅", "phone": _full_width("13900000009")})
    assert filed.status_code == 201, filed.get_json()
    assert admin.get(f"/api/v1/requests/{filed.get_json()['id']}").get_json()["contact"]["phone"] == "13900000009"
