"""Alembic environment: migrations run on the connection `scanner.service.store.db.migrate` passes in
(`config.attributes["connection"]`), or on the configured URL. SQLite gets batch mode so that later
revisions can alter tables there too."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from scanner.service.store.db import make_engine
from scanner.service.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL configured for the migration")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("camscan migrations run online only (camscan db upgrade)")
run_migrations_online()
