"""Who may call the ops API: named bearer tokens, each with a role, and the caller a matching token identifies.

CCAS_OPS_TOKENS holds `name:role:token` entries, comma-separated. The roles are ordered, each allowing what the one before it
does and more:

- viewer: list and show dead letters, payloads masked;
- operator: also requeue;
- admin: also read full (unmasked) payloads.

The single-token form, CCAS_OPS_TOKEN, is one operator named `ops` (what it could do before tokens had names).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

ROLES: tuple[str, ...] = ("viewer", "operator", "admin")  # ascending: a role may do everything the ones before it may
SINGLE_TOKEN_NAME = "ops"
SINGLE_TOKEN_ROLE = "operator"
MIN_TOKEN_LENGTH = 16
# 64: a name is what `dlq_requeue.requested_by` (String(64)) records for a requeue.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


@dataclass(frozen=True)
class OpsToken:
    name: str
    role: str
    token: str = field(repr=False)  # never in a repr, a log line or an error message


@dataclass(frozen=True)
class OpsCaller:
    """The identity a request proved: the token's name and role, and the address it came from (None when unknown)."""

    name: str
    role: str
    source: str | None = None

    def may(self, minimum: str) -> bool:
        return role_rank(self.role) >= role_rank(minimum)


def role_rank(role: str) -> int:
    return ROLES.index(role)


def parse_tokens(text: str) -> list[OpsToken]:
    """CCAS_OPS_TOKENS' entries; ValueError listing every problem, naming entries by position or name, never by token."""
    tokens: list[OpsToken] = []
    problems: list[str] = []
    entries = [entry.strip() for entry in text.split(",")]
    for number, entry in enumerate(entries, 1):
        parts = entry.split(":", 2)  # a token may itself hold ':'
        if len(parts) != 3:
            problems.append(f"entry {number} is not name:role:token")
            continue
        name, role, token = (part.strip() for part in parts)
        if not NAME_PATTERN.match(name):
            problems.append(f"entry {number}: name {name!r} must be 1-64 of A-Z a-z 0-9 . _ @ -")
        if role not in ROLES:
            problems.append(f"entry {number} ({name}): role {role!r} is not one of {', '.join(ROLES)}")
        if len(token) < MIN_TOKEN_LENGTH:
            problems.append(f"entry {number} ({name}): token must be at least {MIN_TOKEN_LENGTH} characters")
        tokens.append(OpsToken(name, role, token))
    names = [t.name for t in tokens]
    problems += [f"name {name!r} appears more than once" for name in sorted({n for n in names if names.count(n) > 1})]
    values = [t.token for t in tokens]
    problems += [f"{t.name} has the same token as an entry before it" for i, t in enumerate(tokens) if t.token in values[:i]]
    if problems:
        raise ValueError("; ".join(problems))
    return tokens


def with_single_token(named: list[OpsToken], single: str | None) -> list[OpsToken]:
    """The named tokens plus CCAS_OPS_TOKEN as operator `ops`; ValueError when the two cannot be told apart.

    When the single token is also one of the named tokens (the local stack hands out both), the named entry is kept: it carries
    the person's own name, and the same secret must not map to two identities.
    """
    if not single:
        return list(named)
    if any(t.token == single for t in named):
        return list(named)
    if any(t.name == SINGLE_TOKEN_NAME for t in named):
        raise ValueError(f"CCAS_OPS_TOKENS names a token {SINGLE_TOKEN_NAME!r}, the name CCAS_OPS_TOKEN gets: rename one")
    return [*named, OpsToken(SINGLE_TOKEN_NAME, SINGLE_TOKEN_ROLE, single)]


def identify(presented: str, tokens: list[OpsToken]) -> OpsToken | None:
    """The token equal to `presented`, or None. Every token is compared in constant time and none is skipped once one
    matches, so the time taken tells nothing about which tokens exist or how much of one was guessed."""
    given = presented.encode()
    found: OpsToken | None = None
    for token in tokens:
        if secrets.compare_digest(given, token.token.encode()) and found is None:
            found = token
    return found
