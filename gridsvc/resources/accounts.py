"""Sign-in, tokens, the caller's own account, and account administration."""
from __future__ import annotations

from flask import current_app, request, url_for
from flask.views import MethodView
from sqlalchemy import select

from gridsvc import auth
from gridsvc.api import Blueprint
from gridsvc.db import current_session
from gridsvc.errors import InvalidCredentials
from gridsvc.models import Zone
from gridsvc.schemas.accounts import MeOut, TokenOut, TokenRequest, UserCreate, UserOut, UserPageOut, UserQuery, UserUpdate
from gridsvc.services import accounts as service
from gridsvc.services.checks import CheckPolicy
from gridsvc.services.requests import DispatchPolicy

blp = Blueprint("accounts", __name__, description="Sign-in, tokens and accounts")


def user_view(user, *, reveal: bool) -> dict:
    """The account as shown to the caller: the phone only for itself and admins."""
    return {
        "id": user.id, "username": user.username, "display_name": user.display_name,
        "phone": user.phone if reveal else auth.mask_phone(user.phone),
        "roles": user.roles, "departments": user.departments, "disabled": user.disabled,
        "created_at": user.created_at, "last_login_at": user.last_login_at,
    }


def _may_see_everything(user_id: int) -> bool:
    principal = auth.current_principal()
    return principal.user_id == user_id or "admin" in principal.roles


@blp.route("/auth/token")
class Token(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.arguments(TokenRequest)
    @blp.response(200, TokenOut)
    @blp.alt_response(401, description="Wrong username or password")
    @blp.alt_response(403, description="The account is disabled (only said to someone who gave its password)")
    @blp.alt_response(429, description="Too many failed attempts for this username, or from this client's "
                                       "address; see Retry-After")
    def post(self, credentials):
        """Sign in: exchange a username and password for an access and a refresh token"""
        session = current_session()
        config = current_app.config
        try:
            # remote_addr is the client's, not a proxy's, once GRIDSVC_PROXY_HOPS is set (ProxyFix, gridsvc/app.py)
            user = service.authenticate(
                session, credentials["username"], credentials["password"], address=request.remote_addr,
                address_failures=int(config["GRIDSVC_SIGNIN_ADDRESS_FAILURES"]),
                address_window_s=60 * int(config["GRIDSVC_SIGNIN_ADDRESS_WINDOW_MIN"]))
        except InvalidCredentials:
            session.commit()  # keep the failure: it feeds the throttle
            raise
        tokens = auth.issue_tokens(user)
        session.commit()
        return tokens


@blp.route("/auth/refresh")
class Refresh(MethodView):
    @auth.access(auth.REFRESH)
    @blp.response(200, TokenOut)
    def post(self):
        """Renew: a refresh token in the Authorization header gives a new pair of tokens

        Each refresh token is exchanged once (rotation): keep the new one. Sent again later than a retry of a lost
        answer would be (30 s), it is taken as stolen: every token of the account is revoked (401).
        """
        session = current_session()
        try:
            user = service.exchange_refresh_token(session, auth.current_principal().user_id, auth.request_token_claims())
        except service.RefreshTokenReused:
            session.commit()  # the revocation is the point
            raise
        tokens = auth.issue_tokens(user)
        session.commit()
        return tokens


@blp.route("/auth/logout")
class Logout(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.response(204)
    def post(self):
        """Sign out everywhere: every token of this account stops working"""
        session = current_session()
        service.sign_out_everywhere(session, auth.current_principal().user_id)
        session.commit()


@blp.route("/me")
class Me(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.response(200, MeOut)
    def get(self):
        """Your account: roles, the zones you are liaison of, your departments"""
        session = current_session()
        user = service.get_user(session, auth.current_principal().user_id)
        zones = session.scalars(select(Zone).where(Zone.liaison_id == user.id).order_by(Zone.code)).all()
        return dict(user_view(user, reveal=True), zones=zones)


@blp.route("/users")
class Users(MethodView):
    @auth.access(auth.ADMIN)
    @blp.arguments(UserQuery, location="query")
    @blp.response(200, UserPageOut)
    def get(self, query):
        """List accounts"""
        page = service.list_users(current_session(), **query)
        return {"total": page.total, "limit": page.limit, "offset": page.offset,
                "items": [user_view(u, reveal=True) for u in page.items]}

    @auth.access(auth.ADMIN)
    @blp.arguments(UserCreate)
    @blp.response(201, UserOut)
    def post(self, data):
        """Create an account"""
        session = current_session()
        user = service.create_user(session, **data)
        session.commit()
        return user_view(user, reveal=True), {"Location": url_for("accounts.UserItem", user_id=user.id)}


@blp.route("/users/<int:user_id>")
class UserItem(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.response(200, UserOut)
    def get(self, user_id):
        """One account (the phone is masked unless it is yours or you are an admin)"""
        user = service.get_user(current_session(), user_id)
        return user_view(user, reveal=_may_see_everything(user_id))

    @auth.access(auth.ADMIN)
    @blp.arguments(UserUpdate)
    @blp.response(200, UserOut)
    def patch(self, data, user_id):
        """Change an account: roles, departments, password, or disable it (its tokens stop at once)"""
        session = current_session()
        user = service.update_user(session, user_id, data, check_policy=CheckPolicy.of_app(current_app),
                                   dispatch_policy=DispatchPolicy.from_config(current_app.config))
        session.commit()
        return user_view(user, reveal=True)
