"""The database schema (SQLAlchemy 2.0 typed ORM) and its migrations. The only module that owns it.

Versioning: ``schema_migrations`` records each applied migration by number and name. A blank
database gets the current schema in one go and is stamped with every migration; an older one
runs only the migrations it lacks, in order, in the store's opening transaction (all or nothing
on PostgreSQL; SQLite commits DDL as it goes, so migrations are written to be safe to rerun). To
change the schema, edit the models *and* append a migration that brings an old database to the same
shape; tests/test_store.py checks both shapes are equal. Down-migrations are deliberately absent.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import (Boolean, Connection, DateTime, Float, ForeignKey, Integer, String, Text,
                        inspect, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class SchemaMigration(Base):
    __tablename__ = "schema_migrations"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100))
    applied_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    model: Mapped[str] = mapped_column(Text, default="")
    catalog: Mapped[str] = mapped_column(Text, default="")
    # Last turn or feedback (retention keys on it, so a conversation in use is never purged). Last and
    # nullable because migration 2 appends it to tables that already have rows; the store always sets it.
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, default=utcnow, nullable=True, index=True)
    turns: Mapped[list["Turn"]] = relationship(back_populates="conversation", cascade="all, delete-orphan",
                                               order_by="Turn.index")


class Turn(Base):
    __tablename__ = "turns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)  # 1-based user turn number within the conversation
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    user_text: Mapped[str] = mapped_column(Text)
    prompt: Mapped[str] = mapped_column(Text, default="")
    reply: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="ok")  # ok | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    state_json: Mapped[str] = mapped_column(Text, default="{}")  # what the tracker understood
    conversation: Mapped[Conversation] = relationship(back_populates="turns")
    recommendations: Mapped[list["Recommendation"]] = relationship(
        cascade="all, delete-orphan", order_by="Recommendation.rank")
    mentions: Mapped[list["Mention"]] = relationship(cascade="all, delete-orphan")


class Recommendation(Base):
    __tablename__ = "recommendations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[str] = mapped_column(Text, index=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    grounded: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(20), default="ranker")  # span | text | ranker


class Mention(Base):
    """Every item name the LM wrote, grounded or not (ungrounded ones are never shown as items)."""

    __tablename__ = "mentions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    item_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    method: Mapped[str] = mapped_column(String(20))  # span | exact | normalized | fuzzy | embedding | none
    confidence: Mapped[float] = mapped_column(Float, default=0.0)


class Feedback(Base):
    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    turn_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), nullable=True)
    target: Mapped[str] = mapped_column(String(10))  # message | item
    item_id: Mapped[str | None] = mapped_column(Text, nullable=True, index=True)
    value: Mapped[int] = mapped_column(Integer)  # +1 up, -1 down
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


def _m001_initial(conn: Connection) -> None:
    Base.metadata.create_all(conn, tables=[t for name, t in Base.metadata.tables.items()
                                           if name != "schema_migrations"])


# Columns that were VARCHAR(n) in version 1. PostgreSQL enforces the length, so a catalog with long
# ids or a model at a long path made every turn fail to log there (SQLite ignores lengths).
_WIDENED = {"conversations": ["model", "catalog"], "turns": ["model"], "recommendations": ["item_id"],
            "mentions": ["item_id"], "feedback": ["item_id"]}


def _m002_activity_and_text_ids(conn: Connection) -> None:
    """conversations.updated_at (last activity, backfilled), and unbounded text for ids and names.

    Idempotent, because migration 1 creates missing tables in the current shape."""
    columns = {c["name"] for c in inspect(conn).get_columns("conversations")}
    if "updated_at" not in columns:
        kind = DateTime().compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE conversations ADD COLUMN updated_at {kind}"))
        conn.execute(text("UPDATE conversations SET updated_at = COALESCE((SELECT MAX(t.created_at) FROM turns t "
                          "WHERE t.conversation_id = conversations.id), created_at)"))
        conn.execute(text("CREATE INDEX ix_conversations_updated_at ON conversations (updated_at)"))
    if conn.dialect.name == "postgresql":
        for table, names in _WIDENED.items():
            for name in names:
                conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN {name} TYPE TEXT"))


# (version, name, function). Append only; never edit a migration that has shipped.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial", _m001_initial),
    (2, "activity_and_text_ids", _m002_activity_and_text_ids),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def migrate(conn: Connection) -> list[int]:
    """Bring the database to ``SCHEMA_VERSION``; return the versions applied (or stamped)."""
    SchemaMigration.__table__.create(conn, checkfirst=True)
    applied = {row[0] for row in conn.execute(text("SELECT version FROM schema_migrations"))}
    existing = set(inspect(conn).get_table_names()) - {"schema_migrations"}
    pending = [m for m in MIGRATIONS if m[0] not in applied]
    if not applied and not existing:
        Base.metadata.create_all(conn)  # blank database: current schema at once, stamp all
        for version, name, _ in pending:
            conn.execute(SchemaMigration.__table__.insert().values(version=version, name=name, applied_at=utcnow()))
        return [m[0] for m in pending]
    for version, name, func in pending:
        func(conn)
        conn.execute(SchemaMigration.__table__.insert().values(version=version, name=name, applied_at=utcnow()))
    return [m[0] for m in pending]
