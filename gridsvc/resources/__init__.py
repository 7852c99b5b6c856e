"""One blueprint per resource, all mounted under /api/v1."""
from __future__ import annotations

from gridsvc.api import Api


def register_blueprints(api: Api) -> None:
    from gridsvc.resources import (accounts, communities, enterprises, health, parking, requests, shifts, volunteers,
                                   zones)

    for module in (health, accounts, communities, zones, enterprises, volunteers, shifts, parking, requests):
        api.register_blueprint(module.blp, url_prefix="/api/v1")
