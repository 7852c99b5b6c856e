"""The OpenAPI document against what the API does, as a client generated from it sees it.

Generic where it can be: every route of the app is in the document; every
operation of the access matrix is called by each caller (and with a bad
token, and with an unknown id) and each answer's status, media type, body and
headers must be what the document says of it; the security requirements
follow the access rules; every signed-in write documents Idempotency-Key and
the headers of a retry; every example validates against its own schema.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from gridsvc.idempotency import KEYED_METHODS
from tests.api import test_access_matrix
from tests.api.test_access_matrix import BODIES, CALLERS, MATRIX, _url
from tests.api.test_contract import Spec

METHODS = ("get", "post", "put", "patch", "delete")
UNKNOWN_ID = 2147483000
ids = test_access_matrix.ids  # the fixture: concrete targets in G01


class StrictSpec(Spec):
    """The contract test's validator, plus the constraints a generator turns into checks."""

    def errors(self, schema, value, where="$"):
        found = super().errors(schema, value, where)
        schema = self.resolve(schema)
        if value is None:
            return found
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                found.append(f"{where}: {value!r} < minimum {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                found.append(f"{where}: {value!r} > maximum {schema['maximum']}")
        if isinstance(value, str):
            if len(value) < schema.get("minLength", 0):
                found.append(f"{where}: shorter than {schema['minLength']}")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                found.append(f"{where}: longer than {schema['maxLength']}")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                found.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if isinstance(value, list):
            if len(value) < schema.get("minItems", 0):
                found.append(f"{where}: fewer than {schema['minItems']} items")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                found.append(f"{where}: more than {schema['maxItems']} items")
        return found


@pytest.fixture()
def doc(client):
    return StrictSpec(client.get("/api/openapi.json").get_json())


def operations(doc):
    for path, item in doc.doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def view_rule(app, method, path):
    """The access rule of the view behind an operation of the document."""
    flask_path = re.sub(r"\{(\w+)\}", r"<\1>", path)
    for rule in app.url_map.iter_rules():
        if re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule.rule) == flask_path and method in rule.methods:
            view = app.view_functions[rule.endpoint]
            return getattr(view.view_class, method.lower()).access_rule
    raise AssertionError(f"no view for {method} {path}")


def is_keyed(app, method, path):
    rule = view_rule(app, method, path)
    return method in KEYED_METHODS and not (rule.public or rule.refresh)


def all_parameters(doc, method, path):
    return doc.operation(method, path).get("parameters", []) + doc.doc["paths"][path].get("parameters", [])


def header_problems(doc, method, path, response):
    """The response headers a client reads (Retry-After, Idempotent-Replayed) that the document does not name."""
    documented = doc.response(method, path, response.status_code) or {}
    names = {name.lower() for name in documented.get("headers", {})}
    return [f"{name} not documented on {response.status_code}" for name in ("Retry-After", "Idempotent-Replayed")
            if name in response.headers and name.lower() not in names]


# ---------------------------------------------------------------- the document covers the app


def test_every_api_route_is_in_the_document(app, doc):
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routed |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(m, p) for m, p, _ in operations(doc)}
    assert routed == documented, (routed - documented, documented - routed)


def test_every_response_object_is_complete(doc):
    """OpenAPI requires a description on every response; an answer with a body must say its media type.
    A view's own `responses` written with string codes ("201") replaced the generated one (int 201) whole:
    check-in's and check-out's 201 and 422 lost their schema and description, the exports' 200 its description."""
    broken = []
    for method, path, operation in operations(doc):
        for status, response in operation["responses"].items():
            response = doc.resolve(response)
            if "description" not in response:
                broken.append((method, path, status, "no description"))
            if status not in ("204", "304") and not response.get("content") \
                    and (method, path) not in UNDOCUMENTED_BODIES:
                broken.append((method, path, status, "no content"))
    assert broken == [], broken


# Every 2xx but a 204/304 describes its body (the capacity and gap answers, written by hand, had none).
UNDOCUMENTED_BODIES: set[tuple[str, str]] = set()


def test_capacity_and_gap_answers_are_described(doc):
    """The capacity and gap views write their answers by hand (JSON, or CSV/GeoJSON by ?format=): with
    @blp.response(200) and no schema, a generated client saw an answer with no fields."""
    for method, path in (("GET", "/api/v1/parking/capacity"), ("POST", "/api/v1/parking/capacity"),
                         ("GET", "/api/v1/parking/gap")):
        content = doc.response(method, path, 200).get("content", {})
        assert "application/json" in content and content["application/json"].get("schema"), (method, path)
    assert "text/csv" in doc.response("GET", "/api/v1/parking/gap", 200)["content"]


# ---------------------------------------------------------------- security follows the access rules


def test_security_follows_each_views_access_rule(app, doc):
    wrong = []
    for method, path, operation in operations(doc):
        rule = view_rule(app, method, path)
        security = operation.get("security", doc.doc.get("security", []))
        token_optional = not security or {} in security
        if rule.public and not token_optional:
            wrong.append((method, path, "public, but the document demands a token", security))
        if not rule.public and (token_optional or not any("bearerAuth" in s for s in security)):
            wrong.append((method, path, "needs a token, but the document does not demand one", security))
        if not rule.public and not {"401", "403"} <= set(operation["responses"]):
            wrong.append((method, path, "401/403 not documented"))
    assert wrong == [], wrong


def test_a_public_route_whose_answer_depends_on_the_token_says_so(doc, client):
    """A public route reads a token when one is sent and refuses a bad one (401). A generated SDK attaches
    the token only to operations whose `security` names it: the zone map shows a liaison the volunteers'
    positions, and the requests they may see, only when the token is sent."""
    operation = doc.operation("GET", "/api/v1/zones/{zone_id}/map")
    assert {"bearerAuth": []} in operation.get("security", []), operation.get("security")
    assert {} in operation["security"]


# ---------------------------------------------------------------- every route, every caller, against the document


def _call(client, method, url, body, **kwargs):
    return client.open(url, method=method, **({"json": body} if method in ("POST", "PATCH", "PUT") else {}), **kwargs)


# Statuses these routes really answer that their view does not declare (needs the views, see the report).
KNOWN_UNDECLARED: set[tuple[str, str, int]] = set()  # every status a view answers is declared


@pytest.mark.parametrize("operation", sorted(MATRIX), ids=lambda op: f"{op[0]} {op[1]}")
def test_every_answer_is_what_the_document_says(app, login, ids, doc, operation):
    """Each caller of the access matrix, a signed-in caller with a token that does not verify, and an
    unknown id in the path: status, media type, body and headers as documented."""
    method, path = operation
    body = BODIES[operation](ids) if operation in BODIES else {}
    url = _url(path, ids)
    found = []
    calls = [("bad token", app.test_client(), url, {"headers": {"Authorization": "Bearer not.a.token"}})]
    if "{" in path and re.search(r"\{\w+_id\}", path):
        unknown = re.sub(r"\{\w+_id\}", str(UNKNOWN_ID), path, count=1).format(**ids)
        calls.append(("unknown id", login("admin"), _url(path, ids).replace(path.format(**ids), unknown), {}))
    calls += [(caller, app.test_client() if caller == "anonymous" else login(caller), url, {}) for caller in CALLERS]
    for caller, client, target, kwargs in calls:
        response = _call(client, method, target, body, **kwargs)
        problems = doc.check(method, path, response) + header_problems(doc, method, path, response)
        if (method, path, response.status_code) in KNOWN_UNDECLARED:
            problems = [p for p in problems if not p.startswith("status")]
        if problems:
            found.append((caller, response.status_code, problems))
    assert found == [], found


def test_statuses_views_answer_besides_their_own_are_declared(app, login, ids, doc, session):
    """GET /zones/locate is a 404 when no zone holds the point (README), /requests/stats and /dispatch/batch
    a 404 for an unknown community_id, sign-in of a disabled account a 403 (/problems/account-disabled):
    none of them said so."""
    from gridsvc.models import User

    admin = login("admin")
    session.execute(update(User).where(User.username == "worker-002").values(disabled=True))
    session.commit()
    seen = {
        ("POST", "/api/v1/auth/token"): app.test_client().post(
            "/api/v1/auth/token", json={"username": "worker-002", "password": "gridsvc-demo"}),
        ("GET", "/api/v1/zones/locate"): app.test_client().get("/api/v1/zones/locate?lon=0&lat=0"),
        ("GET", "/api/v1/requests/stats"): admin.get(f"/api/v1/requests/stats?community_id={UNKNOWN_ID}"),
        ("POST", "/api/v1/dispatch/batch"): admin.post(f"/api/v1/dispatch/batch?community_id={UNKNOWN_ID}"),
    }
    for (method, path), response in seen.items():
        status = 403 if path.endswith("/auth/token") else 404
        assert response.status_code == status, (path, response.get_json())
        assert str(status) in doc.operation(method, path)["responses"], (method, path, status)


# ---------------------------------------------------------------- retries: Idempotency-Key and its headers


def test_every_signed_in_write_documents_the_retry_contract(app, doc):
    """README: every write of a signed-in caller takes Idempotency-Key; a retry is answered with
    Idempotent-Replayed: true; a copy sent meanwhile is a 409 with Retry-After, a reused key a 422."""
    missing = []
    for method, path, operation in operations(doc):
        if not is_keyed(app, method, path):
            continue
        names = {p["name"].lower() for p in all_parameters(doc, method, path) if p["in"] == "header"}
        if "idempotency-key" not in names:
            missing.append((method, path, "no Idempotency-Key parameter"))
        for status in ("409", "422"):
            if status not in operation["responses"]:
                missing.append((method, path, f"{status} not documented"))
        for status, response in operation["responses"].items():
            headers = {name.lower() for name in doc.resolve(response).get("headers", {})}
            if status.startswith("2") and "idempotent-replayed" not in headers:
                missing.append((method, path, status, "no Idempotent-Replayed header"))
            if status == "409" and "retry-after" not in headers:
                missing.append((method, path, status, "no Retry-After header"))
    assert missing == [], missing


def test_retry_after_is_documented_wherever_it_is_sent(doc):
    """429 (sign-in throttle), 503 (database down) and 409 (request in progress, concurrent update)."""
    for method, path, status in (("POST", "/api/v1/auth/token", 429), ("GET", "/api/v1/health", 503),
                                 ("POST", "/api/v1/auth/token", 409)):
        headers = {name.lower() for name in doc.response(method, path, status).get("headers", {})}
        assert "retry-after" in headers, (method, path, status)


def test_a_replayed_answer_matches_the_document(login, doc, session):
    """A real retry: the replayed answer's status, body and headers are documented."""
    admin = login("admin")
    headers = {"Idempotency-Key": "review-openapi-1"}
    body = {"code": "review_oas", "name_zh": "审查", "name_en": "Review"}
    first = admin.post("/api/v1/skills", json=body, headers=headers)
    again = admin.post("/api/v1/skills", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert doc.check("POST", "/api/v1/skills", again) + header_problems(doc, "POST", "/api/v1/skills", again) == []
    reused = admin.post("/api/v1/skills", json={**body, "code": "other"}, headers=headers)
    assert reused.status_code == 422 and doc.check("POST", "/api/v1/skills", reused) == []


# ---------------------------------------------------------------- examples


def _examples(node, where=""):
    """(where, schema, example) of every schema in the document that carries an example."""
    if isinstance(node, dict):
        if "example" in node and ("type" in node or "$ref" in node or "allOf" in node):
            yield where, node, node["example"]
        for key, value in node.items():
            if key != "example":
                yield from _examples(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _examples(value, f"{where}/{index}")


def test_every_example_validates_against_its_schema(doc):
    examples = list(_examples(doc.doc))
    assert examples, "no examples found"
    wrong = [(where, example, doc.errors({k: v for k, v in schema.items() if k != "example"}, example))
             for where, schema, example in examples]
    assert [w for w in wrong if w[2]] == []


def test_every_example_is_accepted_by_the_api(app, doc):
    """The document's examples as the schemas load them: an SDK user who copies one gets no 422."""
    from apispec.ext.marshmallow import MarshmallowPlugin

    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    plugin = next(p for p in api.spec.plugins if isinstance(p, MarshmallowPlugin))
    refused = []
    for schema_key, name in plugin.converter.refs.items():
        schema = schema_key[0] if isinstance(schema_key, tuple) else schema_key
        schema = schema() if isinstance(schema, type) else schema
        for field_name, field in schema.fields.items():
            example = (field.metadata or {}).get("example")
            if example is None or field.dump_only:
                continue
            try:
                field.deserialize(example)
            except Exception as exc:  # noqa: BLE001 (any refusal is the finding)
                refused.append((name, field_name, example, str(exc)))
    assert refused == [], refused


def test_the_parking_import_documents_its_body(doc):
    """The import reads its body by hand (a byte order mark allowed): the document said it took none, so an SDK
    could not send the FeatureCollection."""
    body = doc.operation("POST", "/api/v1/parking/import").get("requestBody", {})
    assert body.get("required") is True and "application/json" in body.get("content", {}), body
