"""Persistence of conversations, turns, recommendations, mentions and feedback.

Any SQLAlchemy URL works (SQLite by default, PostgreSQL for scale-out). For SQLite every
connection gets WAL, a busy timeout and foreign keys. Each turn is written in one transaction;
writes that hit a locked database are retried with back-off before a ``StoreError`` is raised,
so nothing is dropped silently. A write is acknowledged (its id returned) only after its commit;
with WAL and ``synchronous=NORMAL`` a committed write survives the process being killed (not a
power cut, which would need ``synchronous=FULL`` at twice the cost per commit). With ``privacy``
the conversation text (user messages, prompts, replies, mention texts and the free-text words in
the tracked state) is stored as SHA-256 hashes; ids, scores and feedback stay usable. Schema and
migrations live in ``schema.py``; deleting old data lives in ``retention.py``.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from sqlalchemy import create_engine, event, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from .errors import StoreError
from .schema import Conversation, Feedback, Mention, Recommendation, Turn, migrate, utcnow

T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000
PRIVATE_STATE_KEYS = ("must_have", "exclude")  # words taken from the user's messages


@dataclass
class RecRecord:
    item_id: str
    rank: int
    score: float
    grounded: bool = True
    source: str = "ranker"


@dataclass
class MentionRecord:
    text: str
    item_id: str | None
    method: str
    confidence: float


@dataclass
class TurnRecord:
    conversation_id: str
    index: int
    user_text: str
    reply: str
    model: str
    latency_ms: float
    prompt: str = ""
    status: str = "ok"
    error: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    recommendations: list[RecRecord] = field(default_factory=list)
    mentions: list[MentionRecord] = field(default_factory=list)


@dataclass
class LikedTurn:
    """A logged turn whose suggestions the user liked: what the product learns its priors from."""

    conversation_id: str
    index: int  # the turn's 1-based number in its conversation
    context: list[tuple[str, str]]  # (role, text) up to and including the turn's user message
    items: list[str]  # liked items suggested on that turn


class Store:
    def __init__(self, url: str, *, privacy: bool = False, retries: int = 5,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        self.url = url
        self.privacy = privacy
        self.retries = retries
        try:
            self.engine = _make_engine(url, busy_timeout_ms)
            with self.engine.begin() as conn:
                self.applied = migrate(conn)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"cannot open database {_redact(url)}: {_reason(exc)}; "
                             "pass --db URL or set CHATREC_DB to a writable SQLAlchemy URL") from exc
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # -- writes ----------------------------------------------------------------------------
    def new_conversation(self, model: str = "", catalog: str = "") -> str:
        conv_id = str(uuid.uuid4())

        def write(s: Session) -> str:
            s.add(Conversation(id=conv_id, model=model, catalog=catalog, updated_at=utcnow()))
            return conv_id
        return self.write(write)

    def log_turn(self, record: TurnRecord) -> int:
        """Write a turn with its recommendations and mentions in one transaction; return its id.

        Plain insert statements (one for the turn, one multi-row each for its children), not ORM
        objects: the ORM's unit of work made a turn's write ~3x slower (3.9 -> 1.3 ms median)."""
        def write(s: Session) -> int:
            c = s.connection()  # statements straight to the connection: no ORM bookkeeping to do
            _touch(c, record.conversation_id, record.model)
            turn_id = c.execute(insert(Turn).returning(Turn.id).values(
                conversation_id=record.conversation_id, index=record.index,
                user_text=self._text(record.user_text), prompt=self._text(record.prompt),
                reply=self._text(record.reply), model=record.model, status=record.status,
                error=record.error, latency_ms=record.latency_ms,
                state_json=json.dumps(self._state(record.state), ensure_ascii=False))).scalar_one()
            if record.recommendations:
                c.execute(insert(Recommendation), [
                    dict(turn_id=turn_id, item_id=r.item_id, rank=r.rank, score=r.score, grounded=r.grounded,
                         source=r.source) for r in record.recommendations])
            if record.mentions:
                c.execute(insert(Mention), [
                    dict(turn_id=turn_id, text=self._text(m.text), item_id=m.item_id, method=m.method,
                         confidence=m.confidence) for m in record.mentions])
            return turn_id
        return self.write(write)

    def add_feedback(self, conversation_id: str, value: int, *, target: str = "message",
                     turn_id: int | None = None, item_id: str | None = None) -> int:
        if value not in (1, -1) or target not in ("message", "item"):
            raise ValueError("feedback value must be +1 or -1 and target 'message' or 'item'")

        def write(s: Session) -> int:
            row = Feedback(conversation_id=conversation_id, turn_id=turn_id, target=target,
                           item_id=item_id, value=value)
            s.add(row)
            s.flush()  # a conversation that does not exist fails here (foreign key), before the touch
            s.execute(update(Conversation).where(Conversation.id == conversation_id).values(updated_at=utcnow()))
            return row.id
        return self.write(write)

    # -- reads -----------------------------------------------------------------------------
    def item_feedback(self) -> dict[str, tuple[int, int]]:
        """(ups, downs) per item over all conversations; message thumbs count for each of its items."""
        totals: dict[str, list[int]] = {}
        with self.sessions() as s:
            direct = s.execute(select(Feedback.item_id, Feedback.value, func.count())
                               .where(Feedback.target == "item", Feedback.item_id.is_not(None))
                               .group_by(Feedback.item_id, Feedback.value))
            via_message = s.execute(select(Recommendation.item_id, Feedback.value, func.count())
                                    .join(Feedback, Feedback.turn_id == Recommendation.turn_id)
                                    .where(Feedback.target == "message")
                                    .group_by(Recommendation.item_id, Feedback.value))
            for item_id, value, count in [*direct, *via_message]:
                slot = totals.setdefault(item_id, [0, 0])
                slot[0 if value > 0 else 1] += count
        return {k: (v[0], v[1]) for k, v in totals.items()}

    def liked_turns(self, max_conversations: int = 1000) -> list[LikedTurn]:
        """Turns with liked suggestions, from the most recently active ``max_conversations`` that have
        votes. An item counts as liked on the last turn that suggested it when the user's latest vote on
        it is 👍, or on a turn whose message got a 👍 unless the user voted the item down."""
        with self.sessions() as s:
            convs = list(s.scalars(select(Conversation.id).where(Conversation.id.in_(select(Feedback.conversation_id)))
                                  .order_by(Conversation.updated_at.desc()).limit(max_conversations)))
            if not convs:
                return []
            votes = s.execute(select(Feedback.conversation_id, Feedback.turn_id, Feedback.target, Feedback.item_id,
                                     Feedback.value).where(Feedback.conversation_id.in_(convs))
                              .order_by(Feedback.id)).all()
            turns = s.execute(select(Turn.id, Turn.conversation_id, Turn.index, Turn.user_text, Turn.reply)
                              .where(Turn.conversation_id.in_(convs))
                              .order_by(Turn.conversation_id, Turn.index)).all()
            recs = s.execute(select(Recommendation.turn_id, Recommendation.item_id).join(Turn)
                             .where(Turn.conversation_id.in_(convs)).order_by(Recommendation.rank)).all()
        item_vote: dict[tuple[str, str], int] = {}
        message_vote: dict[int, int] = {}
        for conv, turn_id, target, item_id, value in votes:  # in order: the latest vote wins
            if target == "item" and item_id:
                item_vote[(conv, item_id)] = value
            elif target == "message" and turn_id is not None:
                message_vote[turn_id] = value
        suggested: dict[int, list[str]] = {}
        for turn_id, item_id in recs:
            suggested.setdefault(turn_id, []).append(item_id)
        last_suggested: dict[tuple[str, str], int] = {}  # (conversation, item) -> turn id
        for turn_id, conv, _, _, _ in turns:
            for item_id in suggested.get(turn_id, []):
                last_suggested[(conv, item_id)] = turn_id
        out: list[LikedTurn] = []
        context: list[tuple[str, str]] = []
        current = None
        for turn_id, conv, index, user_text, reply in turns:
            if conv != current:
                current, context = conv, []
            context.append(("user", user_text))
            liked = [i for i in suggested.get(turn_id, [])
                     if item_vote.get((conv, i)) == 1 and last_suggested[(conv, i)] == turn_id
                     or message_vote.get(turn_id) == 1 and item_vote.get((conv, i)) != -1]
            if liked:
                out.append(LikedTurn(conv, index, list(context), liked))
            context.append(("assistant", reply))
        return out

    def turns(self, conversation_id: str) -> list[Turn]:
        with self.sessions() as s:
            rows = s.scalars(select(Turn).where(Turn.conversation_id == conversation_id).order_by(Turn.index))
            out = list(rows)
            for t in out:  # load children before the session closes
                _ = t.recommendations, t.mentions
            return out

    def recommended_items(self, turn_id: int) -> list[str]:
        with self.sessions() as s:
            return list(s.scalars(select(Recommendation.item_id).where(Recommendation.turn_id == turn_id)
                                  .order_by(Recommendation.rank)))

    def feedback_rows(self, conversation_id: str | None = None) -> list[Feedback]:
        with self.sessions() as s:
            q = select(Feedback).order_by(Feedback.id)
            if conversation_id:
                q = q.where(Feedback.conversation_id == conversation_id)
            return list(s.scalars(q))

    def session(self) -> Session:
        """A read session for reports (insights, export)."""
        return self.sessions()

    # -- internals -------------------------------------------------------------------------
    def _text(self, value: str) -> str:
        if not self.privacy or not value:
            return value
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()

    def _state(self, state: dict[str, Any]) -> dict[str, Any]:
        if not self.privacy:
            return state
        return {k: ([self._text(str(w)) for w in v] if k in PRIVATE_STATE_KEYS and isinstance(v, list) else v)
                for k, v in state.items()}

    def write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in one write transaction, retrying while the database is locked."""
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                with self.sessions.begin() as s:
                    return fn(s)
            except OperationalError as exc:
                if not _is_locked(exc) or attempt == self.retries:
                    raise StoreError(f"database write failed: {_reason(exc)}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except SQLAlchemyError as exc:
                raise StoreError(f"database write failed: {_reason(exc)}") from exc
        raise AssertionError("unreachable")

    # -- reports (read-only: insights, export, the conversation viewer) --------------------
    REPORT_TABLES = ("conversations", "turns", "recommendations", "mentions", "feedback")

    def table_rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of one of ``REPORT_TABLES`` as a plain dict, in primary-key order."""
        if table not in self.REPORT_TABLES:
            raise ValueError(f"unknown table {table!r}; expected one of {', '.join(self.REPORT_TABLES)}")
        t = Conversation.metadata.tables[table]
        try:
            with self.engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
        except SQLAlchemyError as exc:
            raise StoreError(f"database read failed: {_reason(exc)}") from exc

    def conversation_list(self, limit: int = 200) -> list[dict[str, Any]]:
        """Newest first: id, created_at, n_turns and the first user message of each conversation."""
        with self.sessions() as s:
            rows = s.execute(select(Conversation.id, Conversation.created_at, func.count(Turn.id))
                             .outerjoin(Turn, Turn.conversation_id == Conversation.id)
                             .group_by(Conversation.id, Conversation.created_at)
                             .order_by(Conversation.created_at.desc(), Conversation.id).limit(limit)).all()
            ids = [r[0] for r in rows]
            first: dict[str, str] = {}
            for conv_id, text in s.execute(select(Turn.conversation_id, Turn.user_text)
                                           .where(Turn.conversation_id.in_(ids)).order_by(Turn.id)):
                first.setdefault(conv_id, text)
        return [{"id": cid, "created_at": created, "n_turns": n, "first_message": first.get(cid, "")}
                for cid, created, n in rows]


def _touch(c: Connection, conversation_id: str, model: str) -> None:
    """Mark the conversation active now, creating it on its first turn."""
    now = utcnow()
    if c.execute(update(Conversation).where(Conversation.id == conversation_id)
                 .values(updated_at=now)).rowcount == 0:
        c.execute(insert(Conversation).values(id=conversation_id, model=model, updated_at=now))


def _make_engine(url: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1].split("?", 1)[0] if "///" in url else ""
        memory = db_path in ("", ":memory:")
        if not memory:
            _prepare_sqlite_path(Path(db_path).expanduser())
        # An in-memory database exists once per connection: share one connection across threads.
        extra = {"poolclass": StaticPool} if memory else {}
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
                               **extra)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
        return engine
    return create_engine(url, pool_pre_ping=True)


def _prepare_sqlite_path(path: Path) -> None:
    """Create the database's folder; say plainly what is wrong where SQLite would only say 'unable to open'."""
    if path.is_dir():
        raise OSError(f"{path} is a folder, not a database file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OSError(f"{path.parent} (or a folder above it) is a file, not a folder") from None


def _is_locked(exc: OperationalError) -> bool:
    msg = str(exc.orig).lower() if exc.orig else str(exc).lower()
    return "locked" in msg or "busy" in msg or "deadlock" in msg


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
