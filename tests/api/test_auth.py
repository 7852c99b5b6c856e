"""Sign-in, tokens, revocation, throttling, masking and zone-scoped rights."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

import pytest
from flask_jwt_extended import create_access_token
from sqlalchemy import select, text

from gridsvc.models import LoginFailure, User, Zone
from gridsvc.seed import DEFAULT_DEMO_PASSWORD
from tests.helpers import assert_problem, count


def sign_in(client, username: str, password: str = DEFAULT_DEMO_PASSWORD):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def user_id(session, username: str) -> int:
    return session.scalar(select(User.id).where(User.username == username))


def zone_id(session, code: str) -> int:
    return session.scalar(select(Zone.id).where(Zone.code == code).order_by(Zone.id))


def test_demo_liaison_signs_in_and_sees_their_zone(client):
    response = sign_in(client, "liaison-g01")
    assert response.status_code == 200, response.get_json()
    tokens = response.get_json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    me = client.get("/api/v1/me", headers=bearer(tokens["access_token"])).get_json()
    assert me["username"] == "liaison-g01" and me["roles"] == ["liaison"]
    assert [z["code"] for z in me["zones"]] == ["G01"]
    assert me["phone"] and "*" not in me["phone"]  # your own phone, unmasked


def test_department_member_sees_their_department(login):
    me = login("dept-traffic").get("/api/v1/me").get_json()
    assert me["roles"] == ["department"] and [d["code"] for d in me["departments"]] == ["traffic"]


def test_wrong_password_and_unknown_user_look_the_same(client):
    wrong = assert_problem(sign_in(client, "liaison-g01", "not-the-password"), 401, "invalid-credentials")
    unknown = assert_problem(sign_in(client, "nobody-here", "not-the-password"), 401, "invalid-credentials")
    assert wrong == unknown
    assert sign_in(client, "LIAISON-G01").status_code == 200  # usernames are not case-sensitive


def test_missing_malformed_and_forged_tokens_are_401_saying_which(client, app):
    missing = assert_problem(client.get("/api/v1/me"), 401, "unauthorized")
    assert "needs a token" in missing["detail"]
    assert client.get("/api/v1/me").headers["WWW-Authenticate"].startswith("Bearer")
    malformed = assert_problem(client.get("/api/v1/me", headers=bearer("not.a.jwt")), 401)
    assert "malformed" in malformed["detail"]
    with app.test_request_context():
        forged = create_access_token(identity="1", additional_claims={"tv": 0})
    forged = forged[:-4] + ("AAAA" if not forged.endswith("AAAA") else "BBBB")
    assert "invalid" in assert_problem(client.get("/api/v1/me", headers=bearer(forged)), 401)["detail"]
    not_bearer = assert_problem(client.get("/api/v1/me", headers={"Authorization": "Basic YWRtaW46eA=="}), 401)
    assert not_bearer["detail"]


def test_unsigned_and_foreign_tokens_are_refused_with_an_rfc6750_challenge(client, app, session):
    import jwt

    uid = str(user_id(session, "volunteer-001"))
    claims = {"sub": uid, "tv": 0, "type": "access", "exp": datetime.now(timezone.utc) + timedelta(minutes=5)}
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    foreign = jwt.encode(claims, key="some-other-secret-" + "x" * 32, algorithm="HS256")
    for token in (unsigned, foreign):
        answer = client.get("/api/v1/me", headers=bearer(token))
        assert "malformed or invalid" in assert_problem(answer, 401)["detail"]
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="gridsvc", error="invalid_token"'
    # no credentials at all: a challenge without an error code (RFC 6750 3.1), as the calendar's; a header
    # that is not a bearer token: invalid_request
    missing = client.get("/api/v1/me")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="gridsvc"'
    assert client.get("/api/v1/volunteers/1/shifts.ics").headers["WWW-Authenticate"] == 'Bearer realm="gridsvc"'
    not_bearer = client.get("/api/v1/me", headers={"Authorization": "Basic dm9sdW50ZWVyOnB3"})
    assert not_bearer.headers["WWW-Authenticate"] == 'Bearer realm="gridsvc", error="invalid_request"'


def test_expired_token_is_401_saying_expired(client, app, session):
    uid = user_id(session, "volunteer-001")
    with app.test_request_context():
        expired = create_access_token(identity=str(uid), additional_claims={"tv": 0}, expires_delta=timedelta(seconds=-5))
    body = assert_problem(client.get("/api/v1/me", headers=bearer(expired)), 401)
    assert "expired" in body["detail"] and "refresh" in body["detail"]


def test_refresh_gives_new_tokens_and_access_tokens_cannot_refresh(client):
    tokens = sign_in(client, "volunteer-001").get_json()
    renewed = client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"]))
    assert renewed.status_code == 200, renewed.get_json()
    new = renewed.get_json()
    assert client.get("/api/v1/me", headers=bearer(new["access_token"])).get_json()["username"] == "volunteer-001"
    assert_problem(client.post("/api/v1/auth/refresh", headers=bearer(tokens["access_token"])), 401)
    assert_problem(client.post("/api/v1/auth/refresh"), 401)
    # and a refresh token is not an access token
    assert_problem(client.get("/api/v1/me", headers=bearer(tokens["refresh_token"])), 401)


def test_disabled_account_tokens_stop_at_once(client, login, session):
    tokens = sign_in(client, "volunteer-002").get_json()
    assert client.get("/api/v1/me", headers=bearer(tokens["access_token"])).status_code == 200
    uid = user_id(session, "volunteer-002")
    assert login("admin").patch(f"/api/v1/users/{uid}", json={"disabled": True}).status_code == 200
    body = assert_problem(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401)
    assert "disabled" in body["detail"]
    assert_problem(client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"])), 401)
    assert_problem(sign_in(client, "volunteer-002"), 403, "account-disabled")
    login("admin").patch(f"/api/v1/users/{uid}", json={"disabled": False})
    assert_problem(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401)  # old tokens stay dead
    assert sign_in(client, "volunteer-002").status_code == 200


def test_logout_revokes_every_token(client):
    tokens = sign_in(client, "worker-001").get_json()
    assert client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"])).status_code == 204
    body = assert_problem(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401)
    assert "revoked" in body["detail"]
    assert_problem(client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"])), 401)


def test_five_failures_in_a_minute_throttle_the_username(client, session):
    for _ in range(5):
        assert_problem(sign_in(client, "volunteer-003", "wrong-password"), 401)
    throttled = sign_in(client, "volunteer-003")  # even the right password
    body = assert_problem(throttled, 429, "too-many-attempts")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert "volunteer-003" not in body["detail"]
    assert sign_in(client, "volunteer-004").status_code == 200  # other names are not affected


def test_unknown_usernames_are_throttled_the_same_way(client):
    for _ in range(5):
        sign_in(client, "ghost", "x")
    known = [sign_in(client, "volunteer-005", "x") for _ in range(5)]
    ghost, real = sign_in(client, "ghost", "x"), sign_in(client, "volunteer-005", "x")
    assert ghost.status_code == real.status_code == 429
    same_words = lambda r: re.sub(r"\d+", "N", r.get_json()["detail"])  # noqa: E731 (seconds differ)
    assert same_words(ghost) == same_words(real)
    assert all(r.status_code == 401 for r in known)


def test_failures_older_than_a_minute_do_not_count(client, session):
    session.execute(text("INSERT INTO login_failure (username, at) "
                         "SELECT 'volunteer-006', clock_timestamp() - interval '61 seconds' FROM generate_series(1, 10)"))
    session.flush()
    assert count(session, LoginFailure) >= 10
    assert sign_in(client, "volunteer-006").status_code == 200


def test_passwords_are_hashed_and_never_logged(client, session, caplog):
    caplog.set_level(logging.DEBUG)
    sign_in(client, "volunteer-007", "Secret-Guess-123")
    assert "Secret-Guess-123" not in caplog.text
    stored = session.scalar(select(User.password_hash).where(User.username == "volunteer-007"))
    assert stored.startswith("$argon2") and DEFAULT_DEMO_PASSWORD not in stored


def test_phone_is_masked_for_others(login, session):
    uid = user_id(session, "volunteer-001")
    phone = session.scalar(select(User.phone).where(User.id == uid))
    assert login("volunteer-001").get(f"/api/v1/users/{uid}").get_json()["phone"] == phone
    assert login("admin").get(f"/api/v1/users/{uid}").get_json()["phone"] == phone
    masked = login("volunteer-002").get(f"/api/v1/users/{uid}").get_json()["phone"]
    assert masked == phone[:3] + "****" + phone[-4:]
    assert login("liaison-g05").get(f"/api/v1/users/{uid}").get_json()["phone"] == masked


def test_liaison_may_rename_and_hand_over_only_their_own_zone(login, session):
    g01, g02 = zone_id(session, "G01"), zone_id(session, "G02")
    liaison = login("liaison-g01")
    renamed = liaison.patch(f"/api/v1/zones/{g01}", json={"properties": {"name": "第一网格 北门"}})
    assert renamed.status_code == 200 and renamed.get_json()["properties"]["name"] == "第一网格 北门"
    assert renamed.get_json()["properties"]["updated_by"] == "liaison-g01"
    other = assert_problem(liaison.patch(f"/api/v1/zones/{g02}", json={"properties": {"name": "x"}}), 403, "forbidden")
    assert "only the zones" in other["detail"]
    geometry = login("admin").get(f"/api/v1/zones/{g01}").get_json()["geometry"]
    assert_problem(liaison.patch(f"/api/v1/zones/{g01}", json={"geometry": geometry}), 403)
    handed = liaison.patch(f"/api/v1/zones/{g01}", json={"properties": {"liaison": "liaison-g02"}}).get_json()
    assert handed["properties"]["liaison"]["username"] == "liaison-g02"
    # the old liaison's rights go with the zone
    assert_problem(liaison.patch(f"/api/v1/zones/{g01}", json={"properties": {"name": "y"}}), 403)


def test_zone_liaison_must_be_a_liaison_account(login, session):
    g01 = zone_id(session, "G01")
    body = assert_problem(login("admin").patch(f"/api/v1/zones/{g01}", json={"properties": {"liaison": "volunteer-001"}}), 422)
    assert "liaison role" in body["detail"]
    assert_problem(login("admin").patch(f"/api/v1/zones/{g01}", json={"properties": {"liaison": "nobody"}}), 422)


def test_who_changed_what(login, lingfeng):
    created = login("admin").post("/api/v1/communities", json={
        "name": "Audit Market", "kind": "market",
        "boundary": {"type": "Polygon", "coordinates": [[[120.3, 31.5], [120.31, 31.5], [120.31, 31.51], [120.3, 31.5]]]}}).get_json()
    assert created["created_by"] == "admin" and created["updated_by"] == "admin"
    zone = login("planner").post(f"/api/v1/communities/{created['id']}/zones", json={
        "type": "Feature", "properties": {"code": "A1", "name": "A"},
        "geometry": {"type": "Polygon", "coordinates": [[[120.3, 31.5], [120.31, 31.5], [120.31, 31.51], [120.3, 31.5]]]}}).get_json()
    assert zone["properties"]["created_by"] == "planner"
    changed = login("admin").patch(f"/api/v1/zones/{zone['id']}", json={"properties": {"name": "B"}}).get_json()
    assert changed["properties"]["created_by"] == "planner" and changed["properties"]["updated_by"] == "admin"
    assert changed["properties"]["updated_at"] >= zone["properties"]["updated_at"]


def test_admin_creates_an_account_that_can_sign_in(client, login):
    admin = login("admin")
    created = admin.post("/api/v1/users", json={"username": "zhang.wei", "password": "long-enough-1", "display_name": "张伟",
                                                 "roles": ["planner"], "phone": "13900001111"})
    assert created.status_code == 201, created.get_json()
    assert sign_in(client, "zhang.wei", "long-enough-1").status_code == 200
    assert_problem(admin.post("/api/v1/users", json={"username": "zhang.wei", "password": "long-enough-1",
                                                      "display_name": "x"}), 409)
    assert_problem(admin.post("/api/v1/users", json={"username": "li", "password": "short", "display_name": "x",
                                                      "roles": ["emperor"]}), 422)
    listed = admin.get("/api/v1/users?role=planner").get_json()
    assert {u["username"] for u in listed["items"]} == {"planner", "zhang.wei"}


def test_demo_accounts_are_all_there(session):
    names = set(session.scalars(select(User.username)))
    expected = {"admin", "planner", "dept-traffic", "dept-housing", "dept-labour"}
    expected |= {f"liaison-g{i:02d}" for i in range(1, 11)}
    expected |= {f"volunteer-{i:03d}" for i in range(1, 61)}
    expected |= {f"worker-{i:03d}" for i in range(1, 11)}
    assert expected <= names


@pytest.mark.parametrize("body", [{}, {"username": "admin"}, {"username": 5, "password": "x"}, {"username": "", "password": "x"}])
def test_bad_sign_in_bodies_are_422(client, body):
    assert_problem(client.post("/api/v1/auth/token", json=body), 422)


@pytest.mark.filterwarnings("ignore:The HMAC key is")  # HS512 with our key is one of the foreign forms
def test_our_own_tokens_skip_pyjwt_and_every_other_token_goes_to_it(app):
    """auth._plain_hs256_claims takes exactly our tokens (the same claims
    as PyJWT's decode) and leaves every other form to PyJWT."""
    import jwt

    from gridsvc.auth import _plain_hs256_claims

    key, now = app.config["JWT_SECRET_KEY"], datetime.now(timezone.utc)
    with app.test_request_context():
        ours = create_access_token(identity="7", additional_claims={"tv": 3})
    claims = {"sub": "7", "type": "access", "exp": now + timedelta(minutes=5)}
    header, payload, signature = ours.split(".")
    others = {
        "padded signature": ours + "=",
        "tampered payload": f"{header}.{payload[:-2]}AA.{signature}",
        "tampered signature": f"{header}.{payload}.{signature[:-2]}AA",
        "four segments": ours + ".x",
        "unsigned": jwt.encode(claims, key=None, algorithm="none"),
        "HS512 with our key": jwt.encode(claims, key, algorithm="HS512"),
        "another header": jwt.encode(claims, key, algorithm="HS256", headers={"kid": "k1"}),
        "foreign key": jwt.encode(claims, "another-secret-" + "x" * 32, algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": now - timedelta(seconds=1)}, key, algorithm="HS256"),
        "not yet valid": jwt.encode({**claims, "nbf": now + timedelta(minutes=1)}, key, algorithm="HS256"),
        "issued in the future": jwt.encode({**claims, "iat": now + timedelta(minutes=1)}, key, algorithm="HS256"),
        "no exp": jwt.encode({"sub": "7"}, key, algorithm="HS256"),
        "no sub": jwt.encode({"exp": claims["exp"]}, key, algorithm="HS256"),
        "numeric sub": jwt.encode({**claims, "sub": 7}, key, algorithm="HS256"),
        "audience": jwt.encode({**claims, "aud": "elsewhere"}, key, algorithm="HS256"),
    }
    assert _plain_hs256_claims(ours, key) == jwt.decode(ours, key, algorithms=["HS256"])
    assert _plain_hs256_claims(ours, key)["tv"] == 3
    for name, token in others.items():
        assert _plain_hs256_claims(token, key) is None, name


# ---------------------------------------------------------------- found in review (each failed before its fix)


def test_a_refresh_token_is_exchanged_once_and_a_stolen_one_revokes_the_account(client, session):
    """A refresh token stayed good for its 30 days however often it was used: a stolen one was never found out.
    Now each is exchanged once; a retry at once (a lost answer) is still served, a later reuse revokes all."""
    tokens = sign_in(client, "worker-001").get_json()
    renewed = client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"]))
    assert renewed.status_code == 200
    retried = client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"]))
    assert retried.status_code == 200  # the phone did not get the first answer
    session.execute(text("UPDATE refresh_token_use SET used_at = used_at - interval '1 minute'"))
    problem = assert_problem(client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"])), 401)
    assert "already used" in problem["detail"]
    # every token of the account is revoked, the thief's and the owner's: the owner signs in again
    for token in (renewed.get_json()["access_token"], retried.get_json()["access_token"]):
        assert_problem(client.get("/api/v1/me", headers=bearer(token)), 401)
    assert_problem(client.post("/api/v1/auth/refresh", headers=bearer(renewed.get_json()["refresh_token"])), 401)
    assert sign_in(client, "worker-001").status_code == 200


def test_a_password_is_the_same_in_any_unicode_form(login, client, session):
    """Composed and decomposed accents, full-width letters from a Chinese IME: one password (NFKC)."""
    import unicodedata

    password = unicodedata.normalize("NFC", "Zhōngguó-café-1")
    created = login("admin").post("/api/v1/users", json={"username": "zhang.wei", "password": password,
                                                          "display_name": "张伟", "roles": ["worker"]})
    assert created.status_code == 201, created.get_json()
    for typed in (unicodedata.normalize("NFD", password), "Ｚｈōｎｇｇｕó-café-1"):
        answer = client.post("/api/v1/auth/token", json={"username": "zhang.wei", "password": typed})
        assert answer.status_code == 200, (typed, answer.get_json())


def test_a_hash_made_before_normalising_still_signs_in_and_is_renewed(client, session):
    from argon2 import PasswordHasher

    typed = "Zhōngguó-café-1"
    old_hash = PasswordHasher().hash(unicodedata_nfd := __import__("unicodedata").normalize("NFD", typed))
    user = session.scalar(select(User).where(User.username == "worker-002"))
    user.password_hash = old_hash
    session.flush()
    answer = client.post("/api/v1/auth/token", json={"username": "worker-002", "password": unicodedata_nfd})
    assert answer.status_code == 200
    session.refresh(user)
    assert user.password_hash != old_hash  # now the normal form's hash
    assert client.post("/api/v1/auth/token", json={"username": "worker-002", "password": typed}).status_code == 200


def test_signing_in_with_a_name_that_grows_when_lowercased_is_a_wrong_name(client):
    """'İ'.lower() is two characters: 64 of them (a valid body) overflowed the throttle's column (a 500)."""
    assert_problem(client.post("/api/v1/auth/token", json={"username": "\u0130" * 64, "password": "whatever-1"}), 401)


@pytest.mark.parametrize("value", [0, 1, "yes", "false"])
def test_a_body_boolean_is_json_true_or_false(login, session, value):
    """marshmallow's Boolean took 0, 1, "yes"...; the OpenAPI document says boolean (found by schemathesis)."""
    uid = session.scalar(select(User.id).where(User.username == "worker-003"))
    problem = assert_problem(login("admin").patch(f"/api/v1/users/{uid}", json={"disabled": value}), 422)
    assert "disabled" in problem["errors"]
    assert session.get(User, uid).disabled is False
