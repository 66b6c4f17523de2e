"""The billing database: its URL, engine and sessions (SQLAlchemy 2 ORM, sync)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from fastapi import Request
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///billing.db"  # a file in the working directory


def database_url() -> str:
    """``DATABASE_URL`` from the environment (the same variable plugdock's CLI reads)."""
    return os.environ.get("DATABASE_URL") or DEFAULT_URL


class Database:
    """One engine and its session factory, kept on ``app.state.db``."""

    def __init__(self, url: str | None = None) -> None:
        url = url or database_url()
        # SQLite with several workers: wait for another worker's write instead of failing.
        options = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
        self.engine: Engine = create_engine(url, pool_pre_ping=True, **options)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)


def get_db(request: Request) -> Iterator[Session]:
    """A session per request, closed afterwards (routes commit what they change)."""
    database: Database = request.app.state.db
    with database.sessions() as session:
        yield session
