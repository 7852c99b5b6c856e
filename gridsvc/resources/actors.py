"""Who is calling, in the terms the request and zone-map rules need (shared by their resources)."""
from __future__ import annotations

from flask import g

from gridsvc import auth
from gridsvc.db import current_session
from gridsvc.services.requests import Actor
from gridsvc.services.volunteers import volunteer_of_user


def actor() -> Actor:
    """The request's principal as an Actor (its volunteer profile looked up when it has the role).

    Looked up once per HTTP request: a view and each request it shows ask for it."""
    if "gridsvc_actor" not in g:
        principal = auth.current_principal()
        volunteer = volunteer_of_user(current_session(), principal.user_id) if "volunteer" in principal.roles else None
        g.gridsvc_actor = Actor(user_id=principal.user_id, roles=principal.roles,
                                liaison_zone_ids=principal.liaison_zone_ids, department_ids=principal.department_ids,
                                volunteer_id=volunteer.id if volunteer else None)
    return g.gridsvc_actor
