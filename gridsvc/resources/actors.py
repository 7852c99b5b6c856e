"""Who is calling, in the terms the request and zone-map rules need (shared by their resources)."""
from __future__ import annotations

from flask import g

from gridsvc import auth
from gridsvc.db import current_session
from gridsvc.services.requests import Actor, actor_of


def actor() -> Actor:
    """The request's principal as an Actor (its volunteer profile looked up when it has the role).

    Looked up once per HTTP request: a view and each request it shows ask for it."""
    if "gridsvc_actor" not in g:
        g.gridsvc_actor = actor_of(current_session(), auth.current_principal())
    return g.gridsvc_actor
