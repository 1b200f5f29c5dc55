"""The service's commands: `camscan serve`, `camscan db|users|tokens|sites ...` (docs/service.md's contract).

`register(app)` adds them to the camscan typer app; everything heavy is imported inside the commands, so
that `camscan scan` does not pay for FastAPI and SQLAlchemy.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from scanner.service.store.db import Database
    from scanner.service.store.models import Site

DbUrl = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional here
    typer.Option(
        "--db",
        help="Database URL (sqlite:///PATH or postgresql://...). Default: $CAMSCAN_DB, else SQLite "
        "in the data directory.",
    ),
]
DataDir = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--data-dir",
        help="camscan's data directory (default: $CAMSCAN_DATA_DIR, else $XDG_DATA_HOME/camscan, else "
        "~/.local/share/camscan).",
        file_okay=False,
    ),
]
Role = Annotated[str, typer.Option("--role", help="admin, operator or auditor.")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    print("error: " + _plain(message), file=sys.stderr)
    return typer.Exit(code)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid {os.getuid()}"


def _open(db: str | None, data_dir: Path | None, migrate: bool = True) -> Database:
    from sqlalchemy.exc import SQLAlchemyError

    from scanner.service.store.db import Database, DatabaseError, check_schema, database_url, redact
    from scanner.service.store.db import migrate as run_migrations

    try:
        url = database_url(db, data_dir)
        if migrate:
            run_migrations(url)
        opened = Database.open(url)
        if not migrate:
            check_schema(opened)
        return opened
    except DatabaseError as exc:
        raise _fail(str(exc)) from None
    except SQLAlchemyError as exc:
        raise _fail(
            f"cannot use the database {redact(url)}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from None


@contextmanager
def _store(db: str | None, data_dir: Path | None) -> Iterator[Session]:
    """A session on the (migrated) database, committed when the block ends without an error, rolled back
    otherwise; the database is closed either way."""
    database = _open(db, data_dir)
    try:
        with database.session() as s:
            yield s
    finally:
        database.close()


def _site_limit(s: Session, slug: str | None) -> Site | None:
    """The site a user or token is limited to (None: every site); a missing site is an error."""
    from sqlalchemy import select

    from scanner.service.store.models import Site

    if slug is None:
        return None
    site = s.scalars(select(Site).where(Site.slug == slug)).first()
    if site is None:
        raise _fail(f"no site {slug!r}")
    return site


def register(app: typer.Typer) -> None:
    """Add `serve` and the `db`, `users`, `tokens`, `sites` groups to the camscan command line."""
    app.command("serve")(serve)
    db_app = typer.Typer(help="The service's database: migrate, rebuild the inventory.", no_args_is_help=True)
    db_app.command("upgrade")(db_upgrade)
    db_app.command("rebuild")(db_rebuild)
    app.add_typer(db_app, name="db")
    users_app = typer.Typer(help="People who log in to the service's pages.", no_args_is_help=True)
    users_app.command("add")(users_add)
    app.add_typer(users_app, name="users")
    tokens_app = typer.Typer(help="API tokens for programs (shown once, stored hashed).", no_args_is_help=True)
    tokens_app.command("create")(tokens_create)
    tokens_app.command("list")(tokens_list)
    tokens_app.command("revoke")(tokens_revoke)
    app.add_typer(tokens_app, name="tokens")
    sites_app = typer.Typer(help="The sites the service scans, with their targets and schedules.", no_args_is_help=True)
    sites_app.command("add")(sites_add)
    sites_app.command("list")(sites_list)
    app.add_typer(sites_app, name="sites")
    # scan agents (the multi-site issue)
    app.command("agent")(agent)


def serve(
    db: DbUrl = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback unless you say otherwise).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8800,
    data_dir: DataDir = None,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="Refuse to start on an old schema instead of migrating it.")
    ] = False,
    scan_timeout: Annotated[float, typer.Option(help="Seconds a scan may run before it is killed.")] = 900.0,
    max_scans: Annotated[int, typer.Option(help="Scans run at the same time (different sites).")] = 2,
    smtp_host: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(envvar="CAMSCAN_SMTP_HOST", help="SMTP server for alert mails (none: mails are not sent)."),
    ] = None,
    smtp_port: Annotated[int, typer.Option(envvar="CAMSCAN_SMTP_PORT", help="SMTP port.")] = 25,
    smtp_from: Annotated[
        str, typer.Option(envvar="CAMSCAN_SMTP_FROM", help="Sender address of alert mails.")
    ] = "camscan@localhost",
    smtp_starttls: Annotated[
        bool, typer.Option("--smtp-starttls", envvar="CAMSCAN_SMTP_STARTTLS", help="Upgrade with STARTTLS.")
    ] = False,
    smtp_tls: Annotated[
        bool, typer.Option("--smtp-tls", envvar="CAMSCAN_SMTP_TLS", help="Implicit TLS (usually port 465).")
    ] = False,
    smtp_user: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(envvar="CAMSCAN_SMTP_USER", help="SMTP login; the password comes from $CAMSCAN_SMTP_PASSWORD."),
    ] = None,
    broker: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--broker",
            envvar="CAMSCAN_BROKER",
            help="Celery broker URL (amqp://... or redis://...) through which sites assigned to an agent get "
            "their jobs. Without it, such sites' scans fail with a message saying so.",
        ),
    ] = None,
) -> None:
    """Run the service: the HTTP API, the scheduler and the local scan executor, in one process.

    Logs one line per request to standard error. SIGTERM or Ctrl-C stops it within a few seconds; scans
    that were running are marked interrupted and queued again at the next start.
    """
    import logging

    import uvicorn

    from scanner.service.api import Service, asgi
    from scanner.service.api.app import settle_heap
    from scanner.service.local import LocalExecutor
    from scanner.service.scheduler import Scheduler, leader_lock_for
    from scanner.service.store.db import redact
    from scanner.userdata import user_data_dir

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    database = _open(db, data_dir, migrate=not no_migrate)
    work = user_data_dir(data_dir) / "scans"
    remote = None
    if broker:
        from scanner.service.remote import CeleryExecutor

        remote = CeleryExecutor(broker)
    scheduler = Scheduler(
        database,
        LocalExecutor(work, max_parallel=max(1, max_scans)),
        leader_lock_for(database),
        time_limit=scan_timeout,
        remote=remote,
    )
    config = uvicorn.Config(
        asgi(Service(database, scheduler)),
        host=host,
        port=port,
        access_log=False,  # our middleware logs each request once, with the caller
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    server = uvicorn.Server(config)
    settle_heap()
    logging.getLogger("camscan.service").info(
        "camscan serve: database %s, listening on http://%s:%d", redact(database.url), host, port
    )
    import signal

    received: list[int] = []

    def note(sig: int, _frame: object) -> None:  # uvicorn hands the signal back once it has shut down
        received.append(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, note)
    from scanner.service.alerts import AlertWorker, DeliverySettings, SmtpSettings

    smtp = SmtpSettings(host=smtp_host, port=smtp_port, sender=smtp_from, starttls=smtp_starttls, tls=smtp_tls,
                        username=smtp_user, password=os.environ.get("CAMSCAN_SMTP_PASSWORD") or None)  # fmt: skip
    alert_worker = AlertWorker(database, DeliverySettings(smtp=smtp))
    scheduler.start()
    alert_worker.start()
    try:
        server.run()
    finally:
        alert_worker.stop()
        stopped = scheduler.stop()
        if stopped:
            logging.getLogger("camscan.service").info(
                "stopped %d running scan(s); queued again at the next start", len(stopped)
            )
        database.close()
        logging.getLogger("camscan.service").info("camscan serve stopped")


def db_upgrade(db: DbUrl = None, data_dir: DataDir = None) -> None:
    """Apply the database migrations (create the schema on a new database)."""
    from scanner.service.store.db import HEAD, redact

    database = _open(db, data_dir)
    print(f"database {redact(database.url)} is at schema {HEAD}")
    database.close()


def db_rebuild(db: DbUrl = None, data_dir: DataDir = None) -> None:
    """Recompute devices, observations and findings from the stored reports (lifecycle fields are kept)."""
    from scanner.service.auth import audit
    from scanner.service.ingest import rebuild_all

    with _store(db, data_dir) as s:
        done = rebuild_all(s)
        audit(s, _actor(), "db.rebuild", None, {"sites": done})
    for slug, n in done.items():
        print(f"{slug}: rebuilt from {n} report(s)")
    print(f"{len(done)} site(s) rebuilt")


def users_add(
    email: Annotated[str, typer.Argument(help="The person's email address (their login).")],
    role: Role,
    site: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--site", help="Limit the person to this site (they see and act on it alone)."),
    ] = None,
    db: DbUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Add a person who logs in to the pages; the password is read from standard input (never from the
    command line)."""
    from scanner.service.auth import AuthError, add_user, audit
    from scanner.service.store.models import UserSite

    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    try:
        with _store(db, data_dir) as s:
            limit = _site_limit(s, site)
            user = add_user(s, email, role, password, created_by=_actor())
            if limit is not None:
                s.add(UserSite(user_id=user.id, site_id=limit.id))
                audit(s, _actor(), "user.site", f"user:{user.email}", {"site": limit.slug})
    except AuthError as exc:
        raise _fail(str(exc)) from None
    print(f"user {user.email} added ({user.role}{', site ' + site if site else ''})")


def tokens_create(
    name: Annotated[str, typer.Argument(help="What the token is for (shown in `tokens list`).")],
    role: Role,
    site: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--site", help="Limit the token to this site."),
    ] = None,
    db: DbUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API token; it is printed once, alone on the last line (only its hash is kept)."""
    from scanner.service.auth import AuthError, create_token

    try:
        with _store(db, data_dir) as s:
            row, token = create_token(s, name, role, _site_limit(s, site), created_by=_actor())
    except AuthError as exc:
        raise _fail(str(exc)) from None
    print(f"token {row.id} {row.name!r} ({row.role}{', site ' + site if site else ''}); it is shown only now:")
    print(token)


def tokens_list(db: DbUrl = None, data_dir: DataDir = None) -> None:
    """List tokens: id, name, role, site, created, last used, revoked (never the token)."""
    from sqlalchemy import select

    from scanner.service.store.models import ApiToken, Site

    with _store(db, data_dir) as s:
        rows = s.execute(
            select(ApiToken, Site.slug).outerjoin(Site, Site.id == ApiToken.site_id).order_by(ApiToken.id)
        ).all()
        print("id\tname\trole\tsite\tprefix\tcreated\tlast used\trevoked")
        for t, slug in rows:
            cells = (t.id, t.name, t.role, slug or "*", t.prefix + "...", t.created_at, t.last_used_at, t.revoked_at)
            print("\t".join("-" if c is None else _plain(c) for c in cells))


def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (from `tokens list`).")],
    db: DbUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Revoke a token: it stops working at once."""
    from scanner.service.auth import audit
    from scanner.service.store.models import ApiToken, utcnow

    with _store(db, data_dir) as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            raise _fail(f"no token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit(s, _actor(), "token.revoke", f"token:{row.id}", {"name": row.name})
    print(f"token {token_id} revoked")


def sites_add(
    slug: Annotated[str, typer.Argument(help="Short name used in URLs: lower-case letters, digits, dashes.")],
    name: Annotated[str, typer.Option("--name", help="The site's name, as reports show it.")],
    targets: Annotated[str, typer.Option("--targets", help="Comma-separated addresses, networks or ranges.")],
    interface: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--interface", help="Interface to scan from."),
    ] = None,
    schedule: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--schedule", help="Cron expression (minute hour day month weekday), e.g. '0 2 * * *'."),
    ] = None,
    tz: Annotated[str, typer.Option("--tz", help="Time zone of the schedule (IANA name).")] = "UTC",
    methods: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--methods", help="Comma-separated scan methods (default: all)."),
    ] = None,
    packs: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--packs", help="Comma-separated policy packs (default: all)."),
    ] = None,
    allow_public: Annotated[
        bool, typer.Option("--allow-public", help="Allow public addresses in the targets (you are authorised).")
    ] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add the site without scheduling it.")] = False,
    agent_name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--agent", help="The scan agent (its --name) that scans this site in its building."),
    ] = None,
    db: DbUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Add a site to scan."""
    from sqlalchemy.exc import IntegrityError

    from scanner.service import sites as rules
    from scanner.service.auth import audit
    from scanner.service.store.models import Site, utcnow

    def split(value: str | None) -> list[str] | None:
        return None if value is None else [v.strip() for v in value.split(",") if v.strip()]

    try:
        rules.check_slug(slug)
        checked = rules.check_targets(split(targets) or [], allow_public)
        rules.check_interface(interface)
        rules.check_schedule_fields(schedule, tz)
        chosen_methods = rules.check_methods(split(methods))
        chosen_packs = rules.check_packs(split(packs))
    except rules.SiteError as exc:
        raise _fail(str(exc)) from None
    if not name.strip() or len(name) > 200:
        raise _fail("name: 1 to 200 characters")
    now = utcnow()
    site = Site(
        slug=slug,
        name=name.strip(),
        targets=checked,
        interface=interface,
        schedule=schedule,
        timezone=tz,
        methods=chosen_methods,
        packs=chosen_packs,
        enabled=not disabled,
        allow_public=allow_public,
        agent=agent_name or None,
        created_at=now,
        updated_at=now,
    )
    rules.first_run(site, now)
    try:
        with _store(db, data_dir) as s:
            s.add(site)
            s.flush()
            audit(s, _actor(), "site.create", f"site:{slug}", rules.site_json(site))
    except IntegrityError:
        raise _fail(f"a site {slug!r} exists already") from None
    when = f"; next scan {site.next_run_at.isoformat()}" if site.next_run_at else "; no schedule (scan it by API)"
    print(f"site {slug} added: {', '.join(checked)}{when}")


def sites_list(db: DbUrl = None, data_dir: DataDir = None) -> None:
    """List the sites: slug, name, targets, interface, schedule, next run."""
    from sqlalchemy import select

    from scanner.service.store.models import Site

    with _store(db, data_dir) as s:
        print("slug\tname\ttargets\tinterface\tschedule\ttz\tenabled\tnext run")
        for site in s.scalars(select(Site).order_by(Site.slug)):
            cells = (site.slug, site.name, ",".join(site.targets), site.interface, site.schedule, site.timezone,
                     "yes" if site.enabled else "no", site.next_run_at)  # fmt: skip
            print("\t".join("-" if c is None else _plain(c) for c in cells))


def _plain(value: object) -> str:
    """A table cell made harmless for a terminal (names come from people, who may paste anything)."""
    text = str(value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


# ---- scan agents (the multi-site issue): keep this block together, at the end ----------------------


def agent(
    site: Annotated[str, typer.Option("--site", help="The site (slug) this agent scans.")],
    broker: Annotated[
        str,
        typer.Option(
            "--broker", envvar="CAMSCAN_BROKER", help="Broker URL, e.g. amqps://USER:PASS@broker.example:5671/camscan."
        ),
    ],
    service: Annotated[str, typer.Option("--service", help="The service's URL, e.g. https://camscan.example.")],
    token_file: Annotated[
        Path,
        typer.Option(
            "--token-file", help="File holding the site's API token (operator, limited to the site).", dir_okay=False
        ),
    ],
    allow: Annotated[
        str, typer.Option("--allow", help="Comma-separated networks this agent may scan; it refuses other targets.")
    ],
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--name", help="The agent's name, as the site's `agent` field names it (default: the site slug)."),
    ] = None,
    spool: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--spool", help="Where reports wait to be sent (default: DATA_DIR/agent-SITE).", file_okay=False),
    ] = None,
    max_scan_time: Annotated[
        float, typer.Option(help="Seconds a scan may run at most (below the broker's consumer timeout).")
    ] = 1500.0,
    heartbeat: Annotated[float, typer.Option(help="Seconds between heartbeats to the service.")] = 30.0,
    ca_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--ca-file", help="CA certificate(s) to check the service's TLS certificate.", dir_okay=False),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Run a scan agent at a building: a Celery worker on the site's queue that scans and reports back.

    It only connects out (to the broker and to the service). SIGTERM lets a running scan finish, then stops.
    """
    import logging

    from scanner.scope import ScopeError
    from scanner.service.agent_worker import Agent, ServiceClient, allowed, run
    from scanner.service.broker import SLUG
    from scanner.userdata import user_data_dir

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per heartbeat
    if not SLUG.match(site):
        raise _fail(f"--site: {site!r} is not a site slug")
    allow_list = [a.strip() for a in allow.split(",") if a.strip()]
    try:
        allow_set = allowed(allow_list)
    except ScopeError as exc:
        raise _fail(f"--allow: {exc}") from None
    try:
        token = token_file.read_text(encoding="utf-8").strip()
        mode = token_file.stat().st_mode
    except OSError as exc:
        raise _fail(f"--token-file: {exc.strerror}: {token_file}") from None
    if not token:
        raise _fail(f"--token-file: {token_file} is empty")
    if mode & 0o077:
        print(f"warning: {token_file} can be read by other users; chmod 600 it", file=sys.stderr)
    if not service.startswith(("https://", "http://")):
        raise _fail("--service: give the service's URL (https://...)")
    agent_name = name or site
    client = ServiceClient(service, token, agent_name, verify=str(ca_file) if ca_file else True)
    worker = Agent(
        site=site,
        name=agent_name,
        client=client,
        allow=allow_set,
        allow_text=allow_list,
        spool=spool or user_data_dir(data_dir) / f"agent-{site}",
        max_scan_time=max_scan_time,
    )
    raise typer.Exit(run(worker, broker, heartbeat_every=heartbeat))
