"""Alembic environment, driven from code by ``storage.Database.upgrade``.

``Database`` hands over its own connection in ``config.attributes["connection"]``, so the
migration runs with the same engine settings (on SQLite: WAL, foreign keys, BEGIN IMMEDIATE, so
the whole upgrade is one transaction). Run from the command line, the URL comes from
``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from storage.models import Base

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


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as fresh:
        _run(fresh)


if context.is_offline_mode():
    run_offline()
else:
    run_online()
