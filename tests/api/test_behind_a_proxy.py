"""Behind a reverse proxy (nginx with TLS in front of gunicorn), the links we hand
out must name the public address: a phone subscribes to its calendar_url,
an OGC client follows ``next``. GRIDSVC_PROXY_HOPS says how many proxies'
X-Forwarded-* headers to believe; by default none are, since any client
can send them."""
from __future__ import annotations

import pytest
from sqlalchemy.orm import sessionmaker

from gridsvc.app import create_app
from tests.conftest import TEST_CONFIG
from tests.helpers import client_as

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "grid.lingfeng.example.cn",
             "X-Forwarded-Prefix": "/gridsvc", "X-Forwarded-For": "203.0.113.7"}


@pytest.fixture()
def proxied_app(database_url, connection):
    app = create_app({"DATABASE_URL": database_url, **TEST_CONFIG, "GRIDSVC_PROXY_HOPS": "1"})
    database = app.extensions["gridsvc.db"]
    database.sessionmaker = sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                                         expire_on_commit=False)
    yield app
    database.dispose()


def _links(body: dict) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in body["links"]}


def test_links_name_the_public_address_when_the_proxy_is_trusted(proxied_app):
    client = proxied_app.test_client()
    page = client.get("/ogc/collections/parking-lots/items?limit=2", headers=FORWARDED)
    assert page.status_code == 200, page.get_json()
    links = _links(page.get_json())
    assert links["self"].startswith("https://grid.lingfeng.example.cn/gridsvc/ogc/collections/parking-lots/items")
    assert links["next"].startswith("https://grid.lingfeng.example.cn/gridsvc/ogc/")

    me = client_as(proxied_app, "volunteer-001").get("/api/v1/me/volunteer", headers=FORWARDED).get_json()
    assert me["calendar_url"].startswith("https://grid.lingfeng.example.cn/gridsvc/api/v1/volunteers/")
    # the feed is reachable where the link points, once the proxy strips its prefix again
    path = me["calendar_url"].split("/gridsvc", 1)[1]
    assert client.get(path, headers=FORWARDED).mimetype == "text/calendar"


def test_forwarded_headers_are_ignored_by_default(client):
    page = client.get("/ogc/collections/parking-lots/items?limit=2", headers=FORWARDED)
    assert _links(page.get_json())["self"].startswith("http://localhost/ogc/collections/parking-lots/items")


@pytest.mark.parametrize("setting", ["-1", "two", "1.5", "11", True])
def test_a_wrong_setting_stops_the_start(database_url, setting):
    with pytest.raises(ValueError, match="GRIDSVC_PROXY_HOPS"):
        create_app({"DATABASE_URL": database_url, **TEST_CONFIG, "GRIDSVC_PROXY_HOPS": setting})
