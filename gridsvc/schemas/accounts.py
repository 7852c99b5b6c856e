"""Sign-in, token and account shapes."""
from __future__ import annotations

import unicodedata

from marshmallow import Schema, fields, validate

from gridsvc.models import PASSWORD_LENGTH, ROLES
from gridsvc.schemas.common import Int, JsonBool, NotBlank, PageOut, PageQuery, Trimmed, WholeText

USERNAME = WholeText(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$", error="2-64 letters, digits, '.', '_' or '-'.")
PASSWORD = validate.Length(*PASSWORD_LENGTH)
# at least 5 digits, beginning and ending with one: "     " or "-----" matched a pattern of the characters alone
PHONE = WholeText(r"^(?=(?:[^0-9]*[0-9]){5})\+?[0-9][0-9 -]{3,18}[0-9]$",
                  error="5-20 digits, spaces and '-' (at least 5 digits, beginning and ending with one), "
                        "after an optional '+'.")


class Phone(fields.Str):
    """A phone number as people type it, kept in ASCII. Why: a Chinese IME in full-width mode types
    "１３９１２３４５６７８" (and "＋８６"), which was refused as not being digits; NFKC makes them ASCII
    (and nothing else: a trailing newline is still refused, not trimmed into a number)."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        return unicodedata.normalize("NFKC", super()._deserialize(value, attr, data, **kwargs))


class TokenRequest(Schema):
    username = fields.Str(required=True, validate=validate.Length(1, 64), metadata={"example": "liaison-g01"})
    password = fields.Str(required=True, validate=validate.Length(1, 256), load_only=True,
                          metadata={"example": "gridsvc-demo"})


class TokenOut(Schema):
    access_token = fields.Str()
    refresh_token = fields.Str()
    token_type = fields.Str(metadata={"example": "Bearer"})
    expires_in = Int(metadata={"description": "seconds until the access token expires"})


class LiaisonZoneOut(Schema):
    id = Int()
    code = fields.Str()
    name = fields.Str()
    community_id = Int()


class DepartmentRefOut(Schema):
    id = Int()
    code = fields.Str()
    name = fields.Str()


class UserOut(Schema):
    """An account; ``phone`` is masked unless you are the account or an admin."""

    id = Int()
    username = fields.Str()
    display_name = fields.Str()
    phone = fields.Str(allow_none=True)
    roles = fields.List(fields.Str())
    departments = fields.List(fields.Nested(DepartmentRefOut))
    disabled = fields.Bool()
    created_at = fields.DateTime()
    last_login_at = fields.DateTime(allow_none=True)


class MeOut(UserOut):
    zones = fields.List(fields.Nested(LiaisonZoneOut), metadata={"description": "zones you are the liaison of"})


class UserCreate(Schema):
    username = fields.Str(required=True, validate=USERNAME)
    password = fields.Str(required=True, validate=PASSWORD, load_only=True)
    display_name = Trimmed(required=True, validate=NotBlank(200))
    phone = Phone(allow_none=True, validate=PHONE)
    roles = fields.List(fields.Str(validate=validate.OneOf(ROLES)), load_default=list)
    departments = fields.List(fields.Str(), load_default=list, metadata={"description": "department codes"})


class UserUpdate(Schema):
    password = fields.Str(validate=PASSWORD, load_only=True)
    display_name = Trimmed(validate=NotBlank(200))
    phone = Phone(allow_none=True, validate=PHONE)
    roles = fields.List(fields.Str(validate=validate.OneOf(ROLES)))
    departments = fields.List(fields.Str())
    disabled = JsonBool(metadata={"description": "a disabled account's tokens stop working at once"})


class UserQuery(PageQuery):
    role = fields.Str(validate=validate.OneOf(ROLES))


class UserPageOut(PageOut):
    items = fields.List(fields.Nested(UserOut))
