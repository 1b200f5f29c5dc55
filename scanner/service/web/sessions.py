"""People's logins to the pages: argon2 passwords (scanner/service/auth.py), server-side sessions, CSRF
tokens, and the login throttle.

- The session cookie holds 256 random bits; the database keeps only their SHA-256 (table web_sessions), so a
  copy of the database logs nobody in. A session ends after IDLE without a request, or ABSOLUTE after the
  login, or at `POST /logout` (the row is deleted). Logging in always makes a new session (no fixation).
- The cookie is HttpOnly, SameSite=Lax, Path=/. Over https it is also Secure and named with the `__Host-`
  prefix (the browser then refuses it from any other origin or path). Over plain http a Secure cookie
  would never come back, so it is sent without the flag, and plain http is accepted for logins only from
  a loopback client (127.0.0.0/8, ::1: `camscan serve` binds 127.0.0.1 by default); from anywhere else a
  login over http is refused with a page that says to put the service behind https.
- CSRF: every form carries a hidden `csrf` field. Once logged in it must equal the session's own token;
  on the login form (no session yet) it must equal a random cookie set with the form (double submit).
  Both are compared in constant time; a POST without a match is refused (403) and changes nothing.
- Throttle: failed logins are rows of login_failures keyed by a hash of (email, client address). At most
  FAILS_PER_KEY failures per key in WINDOW, and FAILS_PER_CLIENT per client address whatever the email
  (spraying many addresses); past that a login answers 429 before any password is checked (so the argon2
  cost cannot be used to load the server either). A good login clears its key. Rows live in the database,
  so the limit holds across restarts and across several service processes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from scanner.service.auth import Principal, hash_password, verify_password
from scanner.service.store.models import LoginFailure, User, UserSite, WebSession, utcnow

IDLE = timedelta(hours=8)
ABSOLUTE = timedelta(days=7)
TOUCH_EVERY = timedelta(minutes=1)  # how stale last_seen_at may get before a request rewrites it
WINDOW = timedelta(minutes=15)
FAILS_PER_KEY = 5
FAILS_PER_CLIENT = 30

_DUMMY_HASH = hash_password("camscan: a password nobody has, for unknown emails")


@dataclass(frozen=True)
class Viewer:
    """The person behind one page request: who they are (as the API's Principal) and their CSRF token."""

    email: str
    principal: Principal
    csrf: str
    session_hash: str

    @property
    def role(self) -> str:
        return self.principal.role


def cookie_names(https: bool) -> tuple[str, str]:
    """(session cookie, login-form CSRF cookie) names for this scheme."""
    return ("__Host-camscan_session", "__Host-camscan_login") if https else ("camscan_session", "camscan_login")


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


# ---- throttle ------------------------------------------------------------------------------------------


def _keys(email: str, client: str) -> tuple[str, str]:
    return _sha(f"email+client\0{email.strip().lower()}\0{client}"), _sha(f"client\0{client}")


def throttled(s: Session, email: str, client: str) -> bool:
    """Whether this email from this client (or this client at all) has failed too often lately."""
    since = utcnow() - WINDOW
    per_key, per_client = _keys(email, client)

    def count(key: str) -> int:
        return int(
            s.scalar(
                select(func.count()).select_from(LoginFailure).where(LoginFailure.key == key, LoginFailure.at > since)
            )
            or 0
        )

    return count(per_key) >= FAILS_PER_KEY or count(per_client) >= FAILS_PER_CLIENT


def record_failure(s: Session, email: str, client: str) -> None:
    now = utcnow()
    s.execute(delete(LoginFailure).where(LoginFailure.at < now - WINDOW))
    for key in _keys(email, client):
        s.add(LoginFailure(key=key, at=now))


def check_password(s: Session, email: str, password: str) -> User | None:
    """The enabled user with this email and password, else None (after the same argon2 work either way)."""
    user = s.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None or user.disabled:
        verify_password(_DUMMY_HASH, password)
        return None
    return user if verify_password(user.password_hash, password) else None


# ---- sessions ------------------------------------------------------------------------------------------


def start_session(s: Session, user: User, email: str, client: str) -> str:
    """A new session for the user (its failures for this client forgotten); returns the cookie value."""
    s.execute(delete(LoginFailure).where(LoginFailure.key == _keys(email, client)[0]))
    token = new_token()
    now = utcnow()
    s.add(
        WebSession(
            token_hash=_sha(token),
            user_id=user.id,
            csrf=new_token(),
            created_at=now,
            last_seen_at=now,
            expires_at=now + ABSOLUTE,
            client=client[:64],
        )
    )
    s.execute(delete(WebSession).where(WebSession.expires_at < now))
    return token


def viewer_for(s: Session, token: str | None) -> Viewer | None:
    """The person whose session this cookie value is, or None (unknown, expired, idle too long, disabled)."""
    if not token or len(token) > 100:
        return None
    row = s.get(WebSession, _sha(token))
    if row is None:
        return None
    now = utcnow()
    user = s.get(User, row.user_id)
    if user is None or user.disabled or row.expires_at <= now or now - row.last_seen_at > IDLE:
        s.delete(row)
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    limit = s.get(UserSite, user.id)
    principal = Principal(name=f"user:{user.email}", role=user.role, site_id=limit.site_id if limit else None)
    return Viewer(email=user.email, principal=principal, csrf=row.csrf, session_hash=row.token_hash)


def end_session(s: Session, session_hash: str) -> None:
    s.execute(delete(WebSession).where(WebSession.token_hash == session_hash))


def end_sessions_of(s: Session, user_id: int) -> None:
    """Log a person out everywhere (their account was disabled, or their role or site changed)."""
    s.execute(delete(WebSession).where(WebSession.user_id == user_id))
