"""Databases for storage tests: a fresh SQLite file always, and a fresh PostgreSQL schema when
SHEPHERD_TEST_DATABASE_URL is set (CI sets it and SHEPHERD_TEST_REQUIRE_ALL, so it never skips)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage import Database, sqlite_url
from tests.conftest import require

PG_URL = os.environ.get("SHEPHERD_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def fresh_postgres_schema() -> tuple[str, str]:
    """Create an empty schema; returns (its name, a URL whose connections use it)."""
    schema = f"shepherd_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        admin.dispose()
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def drop_postgres_schema(schema: str) -> None:
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    require(bool(PG_URL), "PostgreSQL tests need SHEPHERD_TEST_DATABASE_URL (e.g. postgresql+psycopg://...)")
    schema, url = fresh_postgres_schema()
    try:
        yield url
    finally:
        drop_postgres_schema(schema)


@pytest.fixture
def empty_database(database_url: str) -> Iterator[Database]:
    """A Database on an empty, never-migrated store."""
    database = Database(database_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def database(empty_database: Database) -> Database:
    """A Database migrated to the newest schema."""
    empty_database.upgrade()
    return empty_database


@pytest.fixture
def postgres_database() -> Iterator[Database]:
    """A migrated PostgreSQL database in a schema of its own (for PostgreSQL-only behaviour)."""
    require(bool(PG_URL), "PostgreSQL tests need SHEPHERD_TEST_DATABASE_URL (e.g. postgresql+psycopg://...)")
    schema, url = fresh_postgres_schema()
    database = Database(url)
    try:
        database.upgrade()
        yield database
    finally:
        database.dispose()
        drop_postgres_schema(schema)
