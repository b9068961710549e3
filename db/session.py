"""Engines and sessions. The caller (a request or a task) owns the transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import get_settings


@lru_cache(maxsize=4)
def engine_for(url: str) -> Engine:
    # pool_pre_ping: a worker outlives database restarts; a dead pooled connection is
    # replaced before use instead of failing the next task.
    return create_engine(
        url,
        pool_size=5,
        max_overflow=5,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


def get_engine() -> Engine:
    return engine_for(get_settings().sqlalchemy_url)


@lru_cache(maxsize=4)
def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


def new_session() -> Session:
    return session_factory(get_settings().sqlalchemy_url)()


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work: commits when the block ends, rolls back if it raises."""
    with new_session() as session, session.begin():
        yield session


@contextmanager
def connection_session() -> Iterator[Session]:
    """A session that keeps one pooled connection for several transactions in a row (begin
    each with `session.begin()`): one checkout, and one liveness ping, instead of one per
    transaction. A task's claim and its work transaction share one."""
    with (
        get_engine().connect() as connection,
        Session(connection, expire_on_commit=False) as session,
    ):
        yield session
