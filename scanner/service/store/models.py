"""The service's tables (SQLAlchemy 2, typed declarative mapping).

Two kinds of table live here. *Source* tables hold what cannot be recomputed: sites, scans (with the
ScanReport JSON exactly as the scan wrote it, and its digest), users, API tokens, the audit log. *Derived*
tables (devices, observations, findings) are computed from the stored reports by scanner/service/ingest.py
and can be dropped and rebuilt (`camscan db rebuild`), except the lifecycle fields a person set on a
device, which the rebuild carries over by device identity.

Times are stored as naive UTC and read back as aware UTC (`UTCDateTime`), so SQLite and PostgreSQL
behave alike. Change a table only together with a new Alembic revision in store/migrations/versions/
(a test compares the migrated schema with these models).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Scan states, in the contract's words (docs/service.md).
SCAN_STATUSES = ("queued", "running", "succeeded", "failed", "interrupted")
ROLES = ("admin", "operator", "auditor")
LIFECYCLE_STATES = ("flagged", "replacement_planned", "removed", "exception")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in Python, a naive UTC timestamp in the database (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), date: Date(), dict[str, Any]: JSONType}


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    targets: Mapped[list[str]] = mapped_column(JSONType)
    interface: Mapped[str | None] = mapped_column(String(64))
    schedule: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    methods: Mapped[list[str] | None] = mapped_column(JSONType)
    packs: Mapped[list[str] | None] = mapped_column(JSONType)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_public: Mapped[bool] = mapped_column(Boolean, default=False)
    agent: Mapped[str | None] = mapped_column(String(120))
    next_run_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Lifecycle (revision 0002_alerts): a device unseen in this many consecutive scans is removed.
    removed_after_scans: Mapped[int] = mapped_column(default=3, server_default="3")


class Scan(Base):
    __tablename__ = "scans"
    __table_args__ = (
        Index("ix_scans_site_queued", "site_id", "queued_at"),
        Index("ix_scans_status", "status"),
        Index("ix_scans_site_started", "site_id", "report_started_at"),
        # At most one scan per site is queued or running: the database refuses a second (the API's 409).
        Index(
            "uq_scans_one_active_per_site",
            "site_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(16))  # manual | schedule | retry | import
    requested_by: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    retry_of: Mapped[str | None] = mapped_column(String(36))
    requeued: Mapped[bool] = mapped_column(Boolean, default=False)
    runner: Mapped[str | None] = mapped_column(String(120))  # which service process runs it, and the child's pid
    # The report, exactly as the scan wrote it: zlib-compressed bytes whose decompression is the verbatim
    # file; sha256 of those bytes; the report's own integrity digest; its report_id (unique: ingesting the
    # same report twice stores it once).
    report_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    report_body: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # loaded only when asked for
    report_sha256: Mapped[str | None] = mapped_column(String(64))
    report_digest: Mapped[str | None] = mapped_column(String(64))
    report_size: Mapped[int | None]
    report_started_at: Mapped[datetime | None]
    summary: Mapped[dict[str, Any] | None]


class Device(Base):
    """One device of a site across scans, keyed by its stable identity (MAC, else serial, else IP)."""

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("site_id", "identity_kind", "identity_key", name="uq_devices_identity"),
        Index("ix_devices_site_id_id", "site_id", "id"),
        Index("ix_devices_flagged_id", "flagged", "id"),
        Index("ix_devices_site_flagged_id", "site_id", "flagged", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    identity_kind: Mapped[str] = mapped_column(String(8))  # mac | serial | ip
    identity_key: Mapped[str] = mapped_column(String(160))
    ip: Mapped[str | None] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(32))
    serial: Mapped[str | None] = mapped_column(String(160))
    manufacturer: Mapped[str | None] = mapped_column(String(200))
    brand: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    firmware: Mapped[str | None] = mapped_column(String(200))
    device_type: Mapped[str | None] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    n_findings: Mapped[int] = mapped_column(default=0)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(8))  # present | gone
    first_scan_id: Mapped[str | None] = mapped_column(String(36))
    last_scan_id: Mapped[str | None] = mapped_column(String(36))
    # Lifecycle (docs/service.md): set by people through PATCH; part 2 of the service adds the logic around it.
    lifecycle: Mapped[str | None] = mapped_column(String(24))
    replacement_due: Mapped[date | None]
    replacement_owner: Mapped[str | None] = mapped_column(String(200))
    exception_reason: Mapped[str | None] = mapped_column(Text)
    exception_approver: Mapped[str | None] = mapped_column(String(200))
    exception_expires: Mapped[date | None]
    lifecycle_note: Mapped[str | None] = mapped_column(Text)
    lifecycle_updated_at: Mapped[datetime | None]
    lifecycle_updated_by: Mapped[str | None] = mapped_column(String(200))


class Observation(Base):
    """A device as one scan saw it: the history of a device page."""

    __tablename__ = "observations"
    __table_args__ = (Index("ix_observations_device_seen", "device_id", "seen_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    seen_at: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(32))
    manufacturer: Mapped[str | None] = mapped_column(String(200))
    brand: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    firmware: Mapped[str | None] = mapped_column(String(200))
    device_type: Mapped[str | None] = mapped_column(String(32))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    n_findings: Mapped[int] = mapped_column(default=0)


class Finding(Base):
    """A finding of a device from the scan that first showed it until the scan that no longer did."""

    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_device_open", "device_id", "resolved_at"),
        Index("ix_findings_site_open", "site_id", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    pack: Mapped[str] = mapped_column(String(120))
    rule: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]  # written when resolved; while open, the device's last_seen is the finding's
    resolved_at: Mapped[datetime | None]
    first_scan_id: Mapped[str] = mapped_column(String(36))
    last_scan_id: Mapped[str] = mapped_column(String(36))
    resolved_scan_id: Mapped[str | None] = mapped_column(String(36))


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """An API token: only its SHA-256 is kept (the token is 256 random bits, so a fast hash is enough)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who did what, when. Append-only: the migration installs triggers that refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None]


# ---- the web pages (scanner/service/web): sessions, login throttling, users limited to one site ---------


class WebSession(Base):
    """A person's login: the cookie holds a random token, this row only its SHA-256 (like API tokens), the
    session's CSRF token, and when it ends (idle or absolute, whichever comes first)."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user", "user_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    client: Mapped[str | None] = mapped_column(String(64))


class LoginFailure(Base):
    """One failed login, keyed by a hash of (email, client address): the throttle counts these."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class UserSite(Base):
    """A person limited to one site (like a site-limited API token): they see and act on that site alone."""

    __tablename__ = "user_sites"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))

# ---- alerts, the asset register (revision 0002_alerts) ----------------------------------------------

#: The events an alert rule can name (docs/service.md); "*" in a rule means every one of them.
ALERT_EVENTS = (
    "device.new",
    "device.flagged",
    "device.gone",
    "finding.new",
    "finding.resolved",
    "device.overdue",
    "scan.failed",
    "agent.offline",
)


class AlertRule(Base):
    """Where to send an event: a webhook (URL and HMAC secret) and/or email addresses; site None = every site."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[list[str] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))


class AlertEvent(Base):
    """The outbox: an event, written in the transaction that caused it (ingest, a failed scan, the overdue
    check), with the devices it is about. `dedupe` makes an event happen once (device.overdue per due date)."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_site_at", "site_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    scan_id: Mapped[str | None] = mapped_column(String(36))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    devices: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    detail: Mapped[dict[str, Any] | None]
    dedupe: Mapped[str | None] = mapped_column(String(200), unique=True)


class AlertDelivery(Base):
    """One message to one rule's destination: a webhook POST of one event, or one summary mail of the events
    of one scan. Sent by the delivery worker, retried with exponential backoff until `max_attempts`."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("alert_rules.id", ondelete="SET NULL"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(8))  # webhook | email
    target: Mapped[str] = mapped_column(Text)
    event_ids: Mapped[list[int]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(12))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class AlertAttempt(Base):
    """Every attempt at a delivery, with what the other end said."""

    __tablename__ = "alert_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("alert_deliveries.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)


class RegisterEntry(Base):
    """A line of a site's asset register (the last CSV imported replaces the previous one whole)."""

    __tablename__ = "register_entries"
    __table_args__ = (Index("ix_register_entries_site", "site_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    line: Mapped[int]
    mac: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    asset_tag: Mapped[str | None] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(200))
    approved: Mapped[bool] = mapped_column(Boolean, default=False)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    imported_by: Mapped[str | None] = mapped_column(String(200))

# ---- scan agents (the multi-site issue): keep this block together, at the end ------------------------


class Agent(Base):
    """A scan agent at a building: what it last said of itself (heartbeat) and when.

    `name` is what a site's `agent` column names; an agent serves the site its token is limited to.
    `offline_since` is set when the service noticed the agent stopped calling in (the `agent.offline`
    event is raised then, once) and cleared by its next heartbeat."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    schema_version: Mapped[str | None] = mapped_column(String(16))
    hostname: Mapped[str | None] = mapped_column(String(200))
    allow: Mapped[list[str] | None] = mapped_column(JSONType)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    offline_since: Mapped[datetime | None]
    refused: Mapped[str | None] = mapped_column(Text)  # why the last heartbeat was refused (too old), if it was
