"""Open311 GeoReport v2 under /open311/v2: the same requests, in the spec's shapes.

Every resource answers in ``.json`` and ``.xml``; errors use the spec's
format (a list of ``{code, description}``), not problem+json. Statuses map
to ``open``/``closed`` with our own state in ``status_notes``. Discovery and
the service list are public; requests need an ``api_key`` (made with
``gridsvc user api-key``), and a key sees what its account may see.
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from typing import Any
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, current_app, request, url_for
from geoalchemy2 import WKBElement
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from gridsvc import auth, clock
from gridsvc.api import (is_json_number, parameters_with_nul, refuse_unstorable_text, repeated_parameters,
                         request_has_body, strict_json_loads, undecodable_url_parts)
from gridsvc.auth import load_account
from gridsvc.clock import DATE_FORM, parse_date_time
from gridsvc.db import current_session
from gridsvc.errors import GridsvcError
from gridsvc.fields import as_shape
from gridsvc.models import OPEN_STATUSES, Community, ServiceRequest, ServiceType
from gridsvc.schemas.common import INT_MAX, parse_decimal, time_problem
from gridsvc.schemas.requests import RequestCreate
from gridsvc.services import requests as service
from gridsvc.services.accounts import account_of_api_key

blp = Blueprint("open311", __name__, url_prefix="/open311/v2")

FORMATS = {"json": "application/json", "xml": "text/xml"}
STATUS_NOTES = {
    "offered": "Offered to a nearby volunteer, waiting for an answer.",
    "assigned": "A volunteer has taken it.",
    "with_liaison": "With the zone's liaison.",
    "escalated": "Waiting for a department to claim it.",
    "claimed": "A department has claimed it.",
    "in_progress": "Being handled.",
    "resolved": "Resolved.",
    "closed": "Closed.",
    "withdrawn": "Withdrawn: no longer needed.",
}
MAX_REQUESTS = 1000


class Open311Error(Exception):
    def __init__(self, code: int, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.headers = code, description, headers or {}


def _actor_for_key(key: str | None) -> tuple[service.Actor, int]:
    if not key:
        raise Open311Error(401, "api_key is required for requests")
    session = current_session()
    user_id = account_of_api_key(session, key)
    if user_id is None:
        raise Open311Error(403, "api_key is invalid or revoked")
    session.info["actor_id"] = user_id
    return service.actor_of(session, load_account(session, user_id).principal), user_id


# ---------------------------------------------------------------- rendering


def _render(fmt: str, root: str, item: str, data: Any, status: int = 200) -> Response:
    if fmt == "json":
        return Response(json.dumps(data, ensure_ascii=False, default=str), status=status, mimetype=FORMATS["json"])
    if isinstance(data, dict):  # discovery, service_definition: the root is the object itself
        element = _to_xml(root, data)
    else:
        element = ET.Element(root)
        for entry in data:
            element.append(_to_xml(item, entry))
    body = ET.tostring(element, encoding="unicode")
    return Response('<?xml version="1.0" encoding="utf-8"?>' + body, status=status, mimetype=FORMATS["xml"])


def _to_xml(tag: str, value: Any) -> ET.Element:
    element = ET.Element(tag)
    if isinstance(value, dict):
        for key, child in value.items():
            if isinstance(child, list):
                holder = ET.SubElement(element, key)
                singular = {"attributes": "attribute", "values": "value", "endpoints": "endpoint",
                            "formats": "format", "keywords": "keyword"}.get(key, "item")
                for entry in child:
                    holder.append(_to_xml(singular, entry))
            else:
                element.append(_to_xml(key, child))
    elif value is not None:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        element.text = _NOT_XML.sub("\ufffd", text)
    return element


# Characters XML 1.0 cannot hold, not even as a character reference: ElementTree writes them raw and the
# client's parser then refuses the whole answer. A description may carry one (a pasted BEL or ESC).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _fmt(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, f"unknown format .{fmt}; use .json or .xml")
    return fmt


@blp.errorhandler(Open311Error)
def _open311_error(error: Open311Error):
    # the path's extension says the format, the view's or not (a path no resource has: _no_such_resource)
    fmt = (request.view_args or {}).get("fmt") or request.path.rsplit(".", 1)[-1]
    fmt = fmt if fmt in FORMATS else "json"
    response = _render(fmt, "errors", "error", [{"code": error.code, "description": error.description}], error.code)
    response.headers.update(error.headers)
    return response


@blp.errorhandler(GridsvcError)
def _gridsvc_error(error: GridsvcError):
    description = error.detail or error.title
    # each field's message in words, as GeoReport's one description per error has room for (a dump of the JSON
    # API's errors object read '{"service_code": ["unknown service nope"]}'); what the detail says already, once
    said = [part for part in _field_messages(error.errors or {}) if part.split(": ", 1)[-1] not in description]
    if said:
        description += " (" + "; ".join(said) + ")"
    return _open311_error(Open311Error(error.status, description))


def _field_messages(errors: dict, prefix: str = "") -> list[str]:
    """"field: message" for each message of a problem's ``errors`` (nested fields as "attributes.household")."""
    parts = []
    for name, value in errors.items():
        if isinstance(value, dict):
            parts += _field_messages(value, f"{prefix}{name}.")
        else:
            parts += [f"{prefix}{name}: {message}" for message in (value if isinstance(value, list) else [value])]
    return parts


@blp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    return _open311_error(Open311Error(error.code or 500, error.description or error.name))


# ---------------------------------------------------------------- resources


@blp.get("/discovery.<fmt>")
def discovery(fmt: str):
    _fmt(fmt)
    base = url_for("open311.services", fmt="json", _external=True).rsplit("/services.json", 1)[0]
    return _render(fmt, "discovery", "discovery", {
        "changeset": "2026-11-21T00:00:00+08:00", "contact": "the community office (社区服务中心)",
        "key_service": "ask the community office for an api_key (gridsvc user api-key)",
        "endpoints": [{"specification": "http://wiki.open311.org/GeoReport_v2", "url": base,
                       "changeset": "2026-11-21T00:00:00+08:00", "type": "production",
                       "formats": list(FORMATS.values())}]})


def _service_summary(s: ServiceType) -> dict[str, Any]:
    return {"service_code": s.code, "service_name": f"{s.name_zh} {s.name_en}", "description": s.description or s.name_en,
            "metadata": bool(s.attributes), "type": "realtime", "keywords": s.group, "group": s.group}


@blp.get("/services.<fmt>")
def services(fmt: str):
    _fmt(fmt)
    return _render(fmt, "services", "service", [_service_summary(s) for s in service.list_services(current_session())])


@blp.get("/services/<code>.<fmt>")
def service_definition(code: str, fmt: str):
    _fmt(fmt)
    found = current_session().get(ServiceType, code)
    if found is None:
        raise Open311Error(404, f"service_code {code} not found")
    attributes = [{"variable": True, "code": a["code"], "datatype": a.get("datatype", "string"),
                   "required": bool(a.get("required")), "datatype_description": "", "order": i + 1,
                   "description": a.get("description", ""), "values": a.get("values", [])}
                  for i, a in enumerate(found.attributes)]
    return _render(fmt, "service_definition", "service_definition", {"service_code": code, "attributes": attributes})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _request_view(r: ServiceRequest, names: dict[str, str], agencies: dict[int, str]) -> dict[str, Any]:
    session = current_session()
    if not isinstance(r.location, WKBElement):
        session.refresh(r, ["location"])
    point = as_shape(r.location)
    return {"service_request_id": str(r.id), "status": "open" if r.status in OPEN_STATUSES else "closed",
            "status_notes": STATUS_NOTES.get(r.status, r.status), "service_name": names.get(r.service_code, r.service_code),
            "service_code": r.service_code, "description": r.description, "agency_responsible": agencies.get(r.community_id, ""),
            "service_notice": r.zone_note or "", "requested_datetime": _iso(r.created_at),
            "updated_datetime": _iso(r.updated_at), "expected_datetime": _iso(r.sla_due_at), "address": "",
            "address_id": "", "zipcode": "", "lat": point.y, "long": point.x,
            "media_url": (r.media_urls or [""])[0]}


def _names() -> dict[str, str]:
    return {s.code: f"{s.name_zh} {s.name_en}" for s in service.list_services(current_session())}


def _agencies(requests: list[ServiceRequest]) -> dict[int, str]:
    """Who is responsible for each request: its community (a server holds many parks)."""
    ids = {r.community_id for r in requests}
    return dict(current_session().execute(select(Community.id, Community.name).where(Community.id.in_(ids))).all())


def _policy() -> service.DispatchPolicy:
    return service.DispatchPolicy.from_config(current_app.config)


def _expire_offers(session: Session, request_ids: list[int] | None = None) -> None:
    """Move expired offers on before reading, as the API's own reads do (there is no hidden cron)."""
    service.expire_offers(session, now=clock.now(), policy=_policy(), request_ids=request_ids)
    session.commit()


# A "+" typed into a URL unencoded arrives as a space: "...T08:00:00 08:00" is "...T08:00:00+08:00".
_OFFSET_SENT_AS_SPACE = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")


def _parse_time(name: str, *, end: bool = False) -> datetime | None:
    """A W3C-DTF date-time with its offset; or a date alone (W3C-DTF's complete date), the whole day on the
    default community clock (GRIDSVC_DEFAULT_TIMEZONE): from its midnight, or as ``end``, up to the next."""
    value = request.args.get(name)
    if not value:
        return None
    value = _OFFSET_SENT_AS_SPACE.sub(r"\1+\2", value)
    try:
        if DATE_FORM.fullmatch(value):
            day = date.fromisoformat(value)
            parsed = datetime.combine(day, time(0), clock.default_timezone())
        else:
            day, parsed = None, parse_date_time(value)
    except ValueError:
        raise Open311Error(400, f"{name} must be a w3 date-time, e.g. 2026-11-21T08:00:00+08:00, "
                                "or a date, 2026-11-21") from None
    if parsed.tzinfo is None:
        raise Open311Error(400, f"{name} needs a time zone offset")
    problem = time_problem(parsed)
    if problem:
        raise Open311Error(400, f"{name}: {problem}")
    if day is not None and end:  # (the year checked first: the day after 9999-12-31 does not exist)
        parsed = datetime.combine(day + timedelta(days=1), time(0), parsed.tzinfo)
    return parsed


def _items(value: str) -> list[str]:
    """A comma-separated list parameter's items: clients that build lists send ``open,`` or ``1,2,``; an empty
    item is no value, not a wrong one."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _flat(messages: Any) -> list[Any]:
    """marshmallow's messages of one field (a list, or a dict by list index) as one list."""
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flat(value)]
    return list(messages) if isinstance(messages, list) else [messages]


@blp.before_request
def _refuse_unreadable_parameters() -> None:
    unreadable = undecodable_url_parts()
    if unreadable:
        raise Open311Error(400, f"the URL's {' and '.join(unreadable)} must be UTF-8 (percent-encoded)")
    # PostgreSQL's text cannot hold NUL; said in this API's own error shape
    if "\x00" in request.path or parameters_with_nul(request.args, request.form):
        raise Open311Error(400, "parameters may not contain the NUL character (U+0000)")
    # a value each reader would take the first of, silently (a multivaluelist attribute repeats by design)
    repeated = [name for source in (request.args, request.form) for name in repeated_parameters(source)
                if not name.startswith("attribute[")]
    if repeated:
        raise Open311Error(400, f"{', '.join(sorted(set(repeated)))} given more than once; give each once")


@blp.get("/requests.<fmt>")
def list_requests(fmt: str):
    _fmt(fmt)
    actor, _ = _actor_for_key(request.args.get("api_key"))
    session = current_session()
    query = service.visible(select(ServiceRequest), actor)
    ids = request.args.get("service_request_id")
    wanted_ids = None
    if ids:
        try:
            # (ASCII digits: int() also reads "１２" and "1_2")
            wanted_ids = [int(i) if i.isascii() and i.isdigit() else -1 for i in _items(ids)]
            if not wanted_ids or not all(0 < i <= INT_MAX for i in wanted_ids):
                raise ValueError(ids)
            query = query.where(ServiceRequest.id.in_(wanted_ids))
        except ValueError:
            raise Open311Error(400, f"service_request_id must be a comma-separated list of ids, each from 1 to "
                                    f"{INT_MAX}") from None
    else:
        if request.args.get("service_code"):
            query = query.where(ServiceRequest.service_code.in_(_items(request.args["service_code"])))
        status = request.args.get("status")
        if status:
            wanted = set(_items(status))
            if not wanted or not wanted <= {"open", "closed"}:
                raise Open311Error(400, "status must be open or closed (or both, comma-separated)")
            states = [s for s in STATUS_NOTES if ("open" if s in OPEN_STATUSES else "closed") in wanted]
            query = query.where(ServiceRequest.status.in_(states))
        start, end = _parse_time("start_date"), _parse_time("end_date", end=True)
        if start:
            query = query.where(ServiceRequest.created_at >= start)
        if end:
            query = query.where(ServiceRequest.created_at < end)
    _expire_offers(session, wanted_ids)
    rows = session.scalars(query.order_by(ServiceRequest.created_at.desc()).limit(MAX_REQUESTS)).all()
    names, agencies = _names(), _agencies(rows)
    return _render(fmt, "service_requests", "request", [_request_view(r, names, agencies) for r in rows])


@blp.get("/requests/<raw_id>.<fmt>")
def one_request(raw_id: str, fmt: str):
    # the id is read here, not by an <int:> route: an id that is no number would miss the route and be answered
    # with the API's problem+json 404, not the spec's error list
    _fmt(fmt)
    if not (raw_id.isascii() and raw_id.isdigit()) or not 0 < int(raw_id) <= INT_MAX:
        raise Open311Error(404, f"service_request_id {raw_id} not found")
    request_id = int(raw_id)
    actor, _ = _actor_for_key(request.args.get("api_key"))
    session = current_session()
    _expire_offers(session, [request_id])
    found = session.get(ServiceRequest, request_id)
    if found is None or not service.may_see(session, found, actor):
        raise Open311Error(404, f"service_request_id {request_id} not found")
    return _render(fmt, "service_requests", "request", [_request_view(found, _names(), _agencies([found]))])


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _post_arguments() -> MultiDict:
    """A POST's arguments: a form, as the spec has it, or a JSON object with the same names (many clients send
    one; its ``attribute`` may be an object of codes), over any given in the query string (an api_key, as GET
    takes it)."""
    arguments = MultiDict(request.args)
    if request_has_body() and not request.is_json and request.mimetype not in FORM_TYPES:
        # (a body of another type is not read: its api_key was then "required", a 401 that hid the cause)
        raise Open311Error(415, "send the arguments as a form (application/x-www-form-urlencoded or "
                                "multipart/form-data) or as JSON, "
                                f"not as {request.mimetype or 'a body without a Content-Type'}")
    if not request.is_json or not request.get_data(cache=True):  # (an empty JSON body is none, as in /api/v1)
        for name in request.form:
            arguments.setlist(name, request.form.getlist(name))
        return arguments
    try:
        body = strict_json_loads(request.get_data())
    except ValueError:  # malformed, or not UTF-8
        raise Open311Error(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Open311Error(400, "the JSON body must be an object of the request's arguments")
    try:
        refuse_unstorable_text(body)
    except GridsvcError as exc:
        raise Open311Error(400, exc.detail or exc.title) from None
    attributes = body.pop("attribute", None)
    if attributes is not None and not isinstance(attributes, dict):
        raise Open311Error(400, "attribute must be an object of attribute codes and values")
    body.update({f"attribute[{code}]": value for code, value in (attributes or {}).items()})
    for name, value in body.items():
        if value is None:  # a client's way of sending nothing
            continue
        values = value if isinstance(value, list) and name.startswith("attribute[") else [value]
        if not all(isinstance(v, str) or is_json_number(v) for v in values):
            raise Open311Error(400, f"{name} must be text or a number")
        arguments.setlist(name, [str(v) for v in values])
    return arguments


@blp.post("/requests.<fmt>")
def create_request(fmt: str):
    """Form-encoded, as the spec has it: api_key, service_code, lat, long, attribute[code], description, media_url ..."""
    _fmt(fmt)
    form = _post_arguments()
    actor, user_id = _actor_for_key(form.get("api_key"))
    if not (auth.FILERS.roles & set(actor.roles)):
        raise Open311Error(403, "this api_key's account may not file requests")
    for name in ("service_code", "lat", "long"):
        if not form.get(name):
            raise Open311Error(400, f"{name} is required (this jurisdiction needs lat and long)")
    try:
        lat, lon = parse_decimal(form["lat"]), parse_decimal(form["long"])
    except ValueError:
        raise Open311Error(400, "lat and long must be numbers") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or lat != lat or lon != lon:
        raise Open311Error(400, "lat must be within [-90, 90] and long within [-180, 180]")
    definitions = {a["code"]: a for a in getattr(current_session().get(ServiceType, form["service_code"]), "attributes", [])}
    attributes: dict[str, Any] = {}
    for key in form:
        if key.startswith("attribute[") and key.endswith("]"):
            # a multivaluelist comes as repeated attribute[code][] (PHP-style) or attribute[code] keys
            code = key[10:-3] if key.endswith("][]") else key[10:-1]
            values = attributes.get(code, []) + form.getlist(key)
            attributes[code] = values
    for code, values in list(attributes.items()):
        # a multivaluelist is a list even of one value; anything else one value (several stay a list: refused)
        if definitions.get(code, {}).get("datatype") != "multivaluelist" and len(values) == 1:
            attributes[code] = values[0]
    for code, value in list(attributes.items()):  # form values are text: numbers become numbers
        if definitions.get(code, {}).get("datatype") == "number":
            try:
                attributes[code] = parse_decimal(value)
            except (TypeError, ValueError):
                pass
    contact = {k: form[k] for k in ("email", "first_name", "last_name", "phone") if form.get(k)}
    try:  # the JSON API's rules: a description of at most 4,000 characters, an http(s) media_url
        loaded = RequestCreate().load({"service_code": form["service_code"], "lon": lon, "lat": lat,
                                       "description": form.get("description") or form["service_code"][:4000],
                                       "attributes": attributes, "contact": contact or None,
                                       "media_urls": [form["media_url"]] if form.get("media_url") else []})
    except ValidationError as exc:
        wrong = {"media_urls": "media_url"}
        raise Open311Error(400, "; ".join(f"{wrong.get(name, name)}: {' '.join(map(str, _flat(messages)))}"
                                          for name, messages in exc.messages.items())) from None
    session = current_session()
    filed, _offer = service.file_request(session, requester_id=user_id, service_code=loaded["service_code"],
                                 description=loaded["description"], lon=lon, lat=lat,
                                 input_crs="wgs84", attributes=loaded["attributes"],
                                 media_urls=loaded["media_urls"], contact=loaded["contact"],
                                 now=clock.now(), policy=_policy())
    session.commit()
    return _render(fmt, "service_requests", "request",
                   [{"service_request_id": str(filed.id), "service_notice": filed.zone_note or "", "account_id": str(user_id)}],
                   201)


@blp.route("/", defaults={"anything": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@blp.route("/<path:anything>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def _no_such_resource(anything: str):
    """What no resource answers, in the spec's error shape rather than the JSON API's problem+json: a method the
    path's resource does not take (405, with the methods it does), or a path that is no resource (404). The
    routes above are more specific, so they match first; this one takes the rest."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST"):
        endpoint, _ = adapter.match(method=method)
        if endpoint != "open311._no_such_resource":
            allowed.append(method)
    if allowed:
        raise Open311Error(405, f"{request.method} is not allowed here; use {' or '.join(allowed)}",
                           headers={"Allow": ", ".join(allowed)})
    raise Open311Error(404, f"there is no resource {request.path}; see {url_for('open311.discovery', fmt='json')}")
