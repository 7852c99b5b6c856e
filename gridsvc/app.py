"""create_app: the only place the service is wired together."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from gridsvc.api import Api, IdConverter
from gridsvc.config import check_settings, load_config, proxy_hops
from gridsvc.db import Database, close_session


class GridsvcFlask(Flask):
    def make_default_options_response(self) -> Any:
        """OPTIONS: 204 with the Allow header and no body, so no Content-Type (Flask answers an empty 200 it calls
        text/html)."""
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response

    def process_response(self, response: Any) -> Any:
        """A 204 (a DELETE done) carries no body, so no Content-Type: flask-smorest labelled the nothing it sends
        application/json."""
        response = super().process_response(response)
        if response.status_code == 204:
            del response.headers["Content-Type"]
        return response


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app; ``config`` overrides defaults and the environment."""
    app = GridsvcFlask(__name__)
    # before any route is added: ids as the API writes them, and a path with "//" is not one of ours (a 404 problem,
    # as a trailing slash is, not a redirect written as an HTML page)
    app.url_map.converters["int"] = IdConverter
    app.url_map.merge_slashes = False
    app.config.update(load_config(config))
    check_settings(app.config)  # a typo in a setting stops the start, naming it, not every request
    logging.basicConfig(level=str(app.config["GRIDSVC_LOG_LEVEL"]).upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app.json.ensure_ascii = False  # Chinese names stay readable
    app.json.sort_keys = False

    hops = proxy_hops(app.config)
    url = app.config["DATABASE_URL"]
    if not url:
        raise RuntimeError("no database configured: set DATABASE_URL or run `gridsvc db start` first")
    app.extensions["gridsvc.db"] = Database(
        url, connect_timeout=app.config["GRIDSVC_DB_CONNECT_TIMEOUT"], pool_size=app.config["GRIDSVC_DB_POOL_SIZE"]
    )
    app.teardown_appcontext(close_session)

    from gridsvc.auth import init_auth, views_without_rules

    init_auth(app)
    api = Api(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    from gridsvc.resources import register_blueprints

    register_blueprints(api)
    from gridsvc.open311 import blp as open311

    app.register_blueprint(open311)  # its own formats and error shapes; not in the OpenAPI document
    from gridsvc.webmap import blp as webmap

    app.register_blueprint(webmap)  # the liaison web map page at /map
    from gridsvc.ogc import blp as ogc

    app.register_blueprint(ogc)  # OGC API - Features: its own OpenAPI document at /ogc/api
    from gridsvc.tiles import blp as tiles

    app.register_blueprint(tiles)
    # Every API route states who may call it; a route without a rule is a bug
    # that must not reach a user, so the app refuses to start.
    missing = views_without_rules(app)
    if missing:
        raise RuntimeError(f"API routes without an access rule: {', '.join(missing)}")
    if hops:  # only then: the X-Forwarded-* headers of a client reaching us directly are not to be believed
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)  # type: ignore[method-assign]
    from gridsvc.fastpath import CheckInFastPath

    # check-in, the hottest write, answered without Flask's machinery when it can be
    app.wsgi_app = CheckInFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    return app
