"""The service's database: models, engine and sessions, Alembic migrations (store/migrations)."""

from scanner.service.store.db import Database, DatabaseError, database_url, migrate

__all__ = ["Database", "DatabaseError", "database_url", "migrate"]
