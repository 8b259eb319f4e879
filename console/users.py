"""Console users: argon2id password hashes (argon2-cffi), roles, and `ccas console user add`'s insert."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("viewer", "qa_lead", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_PASSWORD_LENGTH = 12
# argon2-cffi's defaults (RFC 9106 low-memory profile: 64 MiB, 3 passes); the hash string records them.
_hasher = PasswordHasher()
# Verified against when the name is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-password-anyone-has")


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def may(self, minimum: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[minimum]


def check_new_user(name: str, role: str, password: str) -> None:
    """ValueError saying what is wrong with a user about to be created."""
    if not NAME_PATTERN.match(name):
        raise ValueError("a name is 1-64 characters of A-Z a-z 0-9 . _ @ -")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def add_user(connection: Any, name: str, role: str, password: str) -> None:
    """Insert the user (ValueError when it exists or is not valid); the caller commits."""
    check_new_user(name, role, password)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO console_user (name, password_hash, role) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                       (name, hash_password(password), role))
        if cursor.rowcount == 0:
            raise ValueError(f"user {name!r} exists already")


def authenticate(stored: dict[str, Any] | None, password: str) -> User | None:
    """The user when `password` matches the stored row (name, password_hash, role); None otherwise, in similar time."""
    try:
        _hasher.verify(stored["password_hash"] if stored else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return User(stored["name"], stored["role"]) if stored else None
