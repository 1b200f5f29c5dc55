"""Who may do what: API tokens (hashed at rest), passwords (argon2), roles, the audit log.

Roles (docs/service.md): `admin` does everything; `operator` manages sites, scans and device lifecycle;
`auditor` only reads. A token may be limited to one site: it then sees and acts on that site alone.
A token is 256 random bits shown once; only its SHA-256 is stored (a slow hash buys nothing for a
secret that long, and every API request checks one). Passwords are people's choices: argon2id.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from scanner.service.store.models import ROLES, ApiToken, AuditEntry, Site, User, utcnow

TOKEN_PREFIX = "cst_"
RANK = {"auditor": 0, "operator": 1, "admin": 2}
LAST_USED_EVERY = timedelta(minutes=1)  # how stale last_used_at may get before a request rewrites it


class AuthError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    name: str
    role: str
    site_id: int | None = None
    token_id: int | None = None

    def has(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    def may_see(self, site_id: int) -> bool:
        return self.site_id is None or self.site_id == site_id


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session, name: str, role: str, site: Site | None = None, created_by: str = "cli"
) -> tuple[ApiToken, str]:
    """A new token: the row (holding only the hash) and the token itself, to be shown once."""
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name.strip() or len(name) > 120:
        raise AuthError("the token's name must be 1 to 120 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name.strip(),
        role=role,
        site_id=site.id if site else None,
        token_hash=hash_token(token),
        prefix=token[: len(TOKEN_PREFIX) + 4],
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        created_by,
        "token.create",
        f"token:{row.id}",
        {"name": row.name, "role": role, "site": site and site.slug},
    )
    return row, token


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None (unknown, revoked or malformed)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        row.last_used_at = now
    return Principal(name=f"token:{row.name}", role=row.role, site_id=row.site_id, token_id=row.id)


_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def add_user(session: Session, email: str, role: str, password: str, created_by: str = "cli") -> User:
    email = email.strip().lower()
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise AuthError(f"{email!r} is not an email address")
    if len(password) < 12:
        raise AuthError("the password must be at least 12 characters")
    if session.scalars(select(User).where(User.email == email)).first() is not None:
        raise AuthError(f"a user {email} exists already")
    user = User(email=email, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    audit(session, created_by, "user.create", f"user:{email}", {"role": role})
    return user


def audit(session: Session, actor: str, action: str, target: str | None, detail: dict[str, Any] | None = None) -> None:
    """Append one line to the audit log, in the caller's transaction (so it exists iff the change does)."""
    session.add(
        AuditEntry(at=utcnow(), actor=actor[:200], action=action, target=target and target[:200], detail=detail)
    )
