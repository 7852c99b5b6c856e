"""A small GeoReport v2 client written from the spec (wiki.open311.org/GeoReport_v2),
not from our code: it builds the spec's URLs, posts form-encoded bodies with
``attribute[code]`` keys, and reads the spec's element names in JSON or XML."""
from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

LISTS = {"attributes", "values", "endpoints", "formats"}


def _from_xml(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text
    if element.tag in LISTS:
        return [_from_xml(child) for child in children]
    return {child.tag: _from_xml(child) for child in children}


class GeoReportClient:
    def __init__(self, http, base: str = "/open311/v2", api_key: str | None = None, fmt: str = "json") -> None:
        self.http, self.base, self.api_key, self.fmt = http, base, api_key, fmt

    def _read(self, response) -> tuple[int, Any]:
        if self.fmt == "json":
            assert response.mimetype == "application/json", response.mimetype
            return response.status_code, response.get_json()
        assert response.mimetype == "text/xml", response.mimetype
        root = ET.fromstring(response.get_data())
        return response.status_code, [_from_xml(child) for child in root] if root.tag in (
            "services", "service_requests", "errors") else _from_xml(root)

    def get(self, path: str, **params) -> tuple[int, Any]:
        return self._read(self.http.get(f"{self.base}/{path}.{self.fmt}", query_string=params))

    def discovery(self):
        return self.get("discovery")

    def services(self):
        return self.get("services")

    def service_definition(self, code: str):
        return self.get(f"services/{code}")

    def requests(self, **filters):
        return self.get("requests", **({"api_key": self.api_key} if self.api_key else {}), **filters)

    def request(self, request_id: str):
        return self.get(f"requests/{request_id}", **({"api_key": self.api_key} if self.api_key else {}))

    def post_request(self, service_code: str, lat: float, long: float, attributes: dict | None = None, **fields):
        form: dict[str, Any] = {"service_code": service_code, "lat": str(lat), "long": str(long), **fields}
        if self.api_key:
            form["api_key"] = self.api_key
        for code, value in (attributes or {}).items():
            form[f"attribute[{code}]"] = value
        return self._read(self.http.post(f"{self.base}/requests.{self.fmt}", data=form,
                                         content_type="application/x-www-form-urlencoded"))
