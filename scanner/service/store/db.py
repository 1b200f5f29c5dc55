"""Opening the service's database and migrating it.

The URL comes from `--db`, else $CAMSCAN_DB, else SQLite at <data dir>/camscan.db. `postgresql://...` is
driven by psycopg 3 (`postgresql+psycopg://`). SQLite is put in WAL mode with a busy timeout and every
transaction begins IMMEDIATE: the web app and the scheduler write from several threads (and maybe two
processes), and a deferred transaction that upgrades to a write lock can fail at once instead of waiting.

Migrations are Alembic revisions shipped inside the package (store/migrations), so an installed wheel
migrates with no source tree: `migrate(url)` is `camscan db upgrade`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from scanner.userdata import user_data_dir

HEAD = "0002_agents"


class DatabaseError(RuntimeError):
    pass


def database_url(db: str | None = None, data_dir: Path | None = None) -> str:
    """The database URL to use, as SQLAlchemy wants it."""
    url = db or os.environ.get("CAMSCAN_DB")
    if not url:
        return f"sqlite:///{user_data_dir(data_dir) / 'camscan.db'}"
    return normalise_url(url)


def normalise_url(url: str) -> str:
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise DatabaseError(f"unsupported database URL {redact(url)!r}: use sqlite:///PATH or postgresql://...")
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL: say nothing of it
        return "<unparsable URL>"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the begin hook below decide how transactions start
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed: URL = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8, **kwargs)


@dataclass
class Database:
    """An engine and its session factory; `session()` is one transaction, committed on success."""

    url: str
    engine: Engine
    factory: sessionmaker[Session]

    @classmethod
    def open(cls, url: str) -> Database:
        engine = make_engine(url)
        return cls(url, engine, sessionmaker(engine, expire_on_commit=False))

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.factory() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "scanner.service.store:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision` (Alembic `upgrade`)."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(db: Database) -> None:
    """Refuse a database that was not migrated to this version's schema (for `serve --no-migrate`)."""
    if "alembic_version" not in inspect(db.engine).get_table_names():
        raise DatabaseError("the database has no camscan schema: run `camscan db upgrade`")
    rev = current_revision(db)
    if rev != HEAD:
        raise DatabaseError(f"the database schema is at {rev!r}, this camscan needs {HEAD!r}: run `camscan db upgrade`")
