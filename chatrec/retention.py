"""``python -m chatrec retention --days N``: delete conversations with no activity for N days.

A conversation goes with everything that hangs off it: its turns, their recommendations and
mentions, and every feedback row on it, all in one transaction (child rows first, so it works
whether or not the database enforces ``ON DELETE CASCADE``). "Activity" is the conversation's last
turn or feedback (``conversations.updated_at``), so a conversation someone is still using is never
cut in half. On SQLite the deleted rows are also overwritten on disk (``secure_delete``) and the
write-ahead log is checkpointed, so the text does not linger in free pages. ``--dry-run`` counts
without deleting. Deliberately left out: scheduling (run it from cron or a systemd timer) and
anonymising instead of deleting (see ``--privacy`` for storing hashes from the start).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, StoreError

if TYPE_CHECKING:  # the CLI imports every command module to build its parser: keep SQLAlchemy out of that
    from sqlalchemy.orm import Session

    from .store import Store

CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit


@dataclass
class Purged:
    cutoff: str
    dry_run: bool
    conversations: int = 0
    turns: int = 0
    recommendations: int = 0
    mentions: int = 0
    feedback: int = 0

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (f"{verb} {self.conversations} conversation(s) with no activity since {self.cutoff} UTC: "
                f"{self.turns} turn(s), {self.recommendations} recommendation(s), {self.mentions} mention(s), "
                f"{self.feedback} feedback row(s)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, required=True,
                        help="delete conversations whose last turn or feedback is older than this many days")
    parser.add_argument("--db", help="SQLAlchemy database URL [CHATREC_DB; default: sqlite under --home]")
    parser.add_argument("--home", help="folder of the default SQLite database [CHATREC_HOME]")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true", help="count what would go, delete nothing")
    parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")


def run(args: argparse.Namespace) -> int:
    from .settings import Settings
    from .store import Store

    if args.days < 0:
        raise ConfigError(f"--days {args.days} is negative: pass 0 or more (0 deletes everything before now)")
    url = Settings.load({"db": args.db, "home": args.home}).db_url
    _require_existing_sqlite(url)
    store = Store(url)
    try:
        result = purge(store, older_than=timedelta(days=args.days), dry_run=args.dry_run)
    finally:
        store.close()
    print(json.dumps(asdict(result)) if args.json else result.summary())
    return 0


def purge(store: Store, *, older_than: timedelta, dry_run: bool = False, now: datetime | None = None) -> Purged:
    """Delete (or with ``dry_run`` only count) conversations inactive for ``older_than``."""
    from sqlalchemy import text

    from .schema import utcnow

    cutoff = (now or utcnow()) - older_than
    sqlite = store.engine.dialect.name == "sqlite"

    def work(s: Session) -> Purged:  # store.write may run it again after a lock: count from zero
        result = Purged(cutoff=f"{cutoff:%Y-%m-%d %H:%M}", dry_run=dry_run)
        if sqlite and not dry_run:
            s.execute(text("PRAGMA secure_delete=ON"))  # zero the freed pages, not just unlink them
        ids = _stale_ids(s, cutoff, lock=not dry_run)
        for start in range(0, len(ids), CHUNK):
            _count_or_delete(s, ids[start:start + CHUNK], result, dry_run)
        return result

    result = store.write(work)
    if sqlite and not dry_run and result.conversations:
        with store.engine.connect() as conn:  # copy the WAL back and truncate it, deleted text included
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return result


def _stale_ids(s: Session, cutoff: datetime, lock: bool) -> list[str]:
    from sqlalchemy import func, select

    from .schema import Conversation

    # updated_at is NULL only on rows a crashed migration never backfilled: fall back to created_at.
    last = func.coalesce(Conversation.updated_at, Conversation.created_at)
    query = select(Conversation.id).where(last < cutoff).order_by(Conversation.id)
    # On a server database, lock the rows: a turn logged meanwhile (it touches updated_at) either
    # commits first and its conversation is re-checked out of the list, or waits for the purge.
    # SQLite's write transaction already excludes other writers (the dialect ignores FOR UPDATE).
    return list(s.scalars(query.with_for_update() if lock else query))


def _count_or_delete(s: Session, ids: list[str], result: Purged, dry_run: bool) -> None:
    from sqlalchemy import delete, func, or_, select

    from .schema import Conversation, Feedback, Mention, Recommendation, Turn

    turns = select(Turn.id).where(Turn.conversation_id.in_(ids)).scalar_subquery()
    steps = [("feedback", Feedback, or_(Feedback.conversation_id.in_(ids), Feedback.turn_id.in_(turns))),
             ("mentions", Mention, Mention.turn_id.in_(turns)),
             ("recommendations", Recommendation, Recommendation.turn_id.in_(turns)),
             ("turns", Turn, Turn.conversation_id.in_(ids)),
             ("conversations", Conversation, Conversation.id.in_(ids))]
    for name, model, where in steps:  # children first: correct with or without ON DELETE CASCADE
        if dry_run:
            n = s.scalar(select(func.count()).select_from(model).where(where)) or 0
        else:
            n = s.execute(delete(model).where(where).execution_options(synchronize_session=False)).rowcount
        setattr(result, name, getattr(result, name) + n)


def _require_existing_sqlite(url: str) -> None:
    """Opening a store creates a missing SQLite file; for a clean-up command that hides a wrong path."""
    if url.startswith("sqlite") and "///" in url:
        path = url.split("///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).expanduser().exists():
            raise StoreError(f"no database at {path}: pass --db URL or --home DIR (or set CHATREC_DB)")
