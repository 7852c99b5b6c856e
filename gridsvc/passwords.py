"""Passwords: hashed with Argon2id, after NFKC. No Flask and no database here: the services and the seed hash
and check passwords without the web layer."""
from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the username does not exist, so that a miss costs
# the same time as a wrong password and timing reveals no account names.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def _normal(password: str) -> str:
    """The password as it is hashed: NFKC, so that one password typed on another keyboard or IME (composed or
    decomposed accents, full-width letters) is the same password (NIST SP 800-63B 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return _hasher.hash(_normal(password))


def check_password(password_hash: str | None, password: str) -> tuple[bool, bool]:
    """(whether ``password`` matches, whether its hash should be written again).

    A hash made before passwords were normalised matches the password as it was typed: it is accepted once
    more and should be replaced by the normal form's."""
    if _verifies(password_hash, _normal(password)):
        return password_hash is not None, password_hash is not None and _hasher.check_needs_rehash(password_hash)
    if password_hash is not None and _normal(password) != password and _verifies(password_hash, password):
        return True, True
    return False, False


def verify_password(password_hash: str | None, password: str) -> bool:
    return check_password(password_hash, password)[0]


def _verifies(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
