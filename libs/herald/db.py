"""Engines and sessions: async for the services and actors, sync for migrations, jobs and the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from herald.settings import get_settings


@lru_cache
def async_engine() -> AsyncEngine:
    settings = get_settings()
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


@lru_cache
def sync_engine() -> Engine:
    settings = get_settings()
    return create_engine(settings.sqlalchemy_url, pool_size=5, max_overflow=5, pool_pre_ping=True)


@lru_cache
def _async_sessions() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(async_engine(), class_=AsyncSession, expire_on_commit=False)


@lru_cache
def _sync_sessions() -> sessionmaker[Session]:
    return sessionmaker(sync_engine(), expire_on_commit=False)


@asynccontextmanager
async def session_scope() -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on error; queued jobs leave only after commit."""
    from herald import queue

    async with _async_sessions()() as session:
        with queue.enqueue_buffer() as buffer:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                buffer.clear()
                raise
        buffer.flush()


@contextmanager
def sync_session_scope() -> Iterator[Session]:
    """Sync twin of session_scope for jobs and the CLI."""
    from herald import queue

    with _sync_sessions()() as session, queue.enqueue_buffer() as buffer:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            buffer.clear()
            raise
        buffer.flush()


async def dispose_engines() -> None:
    if async_engine.cache_info().currsize:
        await async_engine().dispose()
    if sync_engine.cache_info().currsize:
        sync_engine().dispose()
    for cached in (async_engine, sync_engine, _async_sessions, _sync_sessions):
        cached.cache_clear()
