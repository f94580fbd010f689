"""Retention: old conversations go with their turns, recommendations, mentions and feedback; recent
ones (by last activity) stay whole; the command's output and errors; deleted text is gone from disk.

Tests that take ``db_url`` also run on PostgreSQL (tests/test_postgres.py)."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, text

from chatrec import cli
from chatrec.retention import purge
from chatrec.store import Store
from test_store import turn_record

NOW = datetime(2026, 6, 1, 12, 0, 0)


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'chatrec.db'}"


def conversation(store: Store, *, created_days_ago: float, active_days_ago: float | None,
                 words: str = "a train") -> str:
    """A conversation with two turns (2 recommendations and 1 mention each) and two feedback rows."""
    conv = store.new_conversation(model="fake")
    first = store.log_turn(turn_record(conv, 1, text=words))
    store.log_turn(turn_record(conv, 2, text=words + " again"))
    store.add_feedback(conv, 1, turn_id=first)
    store.add_feedback(conv, -1, target="item", item_id="t2")
    active = None if active_days_ago is None else NOW - timedelta(days=active_days_ago)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE conversations SET created_at = :c, updated_at = :u WHERE id = :id"),
                     {"c": NOW - timedelta(days=created_days_ago), "u": active, "id": conv})
    return conv


def counts(store: Store) -> dict[str, int]:
    return {t: len(store.table_rows(t)) for t in Store.REPORT_TABLES}


def test_purge_deletes_old_conversations_with_everything_attached(db_url):
    store = Store(db_url)
    old = conversation(store, created_days_ago=90, active_days_ago=40)
    never_backfilled = conversation(store, created_days_ago=50, active_days_ago=None)
    long_running = conversation(store, created_days_ago=60, active_days_ago=5)  # still in use: kept whole
    recent = conversation(store, created_days_ago=1, active_days_ago=1)
    result = purge(store, older_than=timedelta(days=30), now=NOW)
    assert (result.conversations, result.turns, result.recommendations, result.mentions, result.feedback) == (
        2, 4, 8, 4, 4)
    assert result.summary() == ("deleted 2 conversation(s) with no activity since 2026-05-02 12:00 UTC: 4 turn(s), "
                                "8 recommendation(s), 4 mention(s), 4 feedback row(s)")
    assert sorted(r["id"] for r in store.table_rows("conversations")) == sorted([long_running, recent])
    assert {r["conversation_id"] for r in store.table_rows("turns")} == {long_running, recent}
    assert {r["conversation_id"] for r in store.table_rows("feedback")} == {long_running, recent}
    assert counts(store) == {"conversations": 2, "turns": 4, "recommendations": 8, "mentions": 4, "feedback": 4}
    assert store.turns(old) == [] and store.turns(never_backfilled) == []
    assert store.item_feedback() == {"t1": (2, 0), "t2": (2, 2)}  # only the kept conversations' votes
    store.close()


def test_dry_run_counts_and_deletes_nothing(db_url):
    store = Store(db_url)
    conversation(store, created_days_ago=90, active_days_ago=40)
    conversation(store, created_days_ago=1, active_days_ago=1)
    before = counts(store)
    result = purge(store, older_than=timedelta(days=30), dry_run=True, now=NOW)
    assert result.summary().startswith("would delete 1 conversation(s)")
    assert (result.turns, result.recommendations, result.mentions, result.feedback) == (2, 4, 2, 2)
    assert counts(store) == before
    nothing = purge(store, older_than=timedelta(days=3650), now=NOW)
    assert nothing.conversations == 0 and counts(store) == before
    store.close()


def test_command_deletes_and_reports(db_url, capsys):
    store = Store(db_url)
    conversation(store, created_days_ago=400, active_days_ago=400)
    kept = store.new_conversation()
    store.close()
    assert cli.main(["retention", "--days", "30", "--db", db_url, "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["dry_run"], report["conversations"], report["turns"], report["feedback"]) == (True, 1, 2, 2)
    assert cli.main(["retention", "--days", "30", "--db", db_url]) == 0
    assert capsys.readouterr().out.startswith("deleted 1 conversation(s) with no activity since ")
    store = Store(db_url)
    assert [r["id"] for r in store.table_rows("conversations")] == [kept]
    store.close()


@pytest.mark.parametrize("argv, message", [
    (["--days", "-1"], "error: --days -1 is negative: pass 0 or more"),
    (["--days", "30", "--db", "sqlite:///{tmp}/missing.db"], "error: no database at {tmp}/missing.db: pass --db URL"),
])
def test_command_errors_say_how_to_fix(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(["retention", *argv]) == 2
    assert capsys.readouterr().err.startswith(message.replace("{tmp}", str(tmp_path)))
    assert not (tmp_path / "missing.db").exists()  # a wrong path is reported, not created


def test_deleted_text_does_not_linger_in_the_sqlite_files(tmp_path):
    path = tmp_path / "chatrec.db"
    store = Store(f"sqlite:///{path}")

    @event.listens_for(store.engine, "connect")
    def _like_a_stock_sqlite_build(dbapi_conn, _record):  # Debian compiles secure_delete on; upstream does not
        dbapi_conn.execute("PRAGMA secure_delete=OFF")

    store.engine.dispose()
    conversation(store, created_days_ago=90, active_days_ago=90, words="secret-shopping-list-Zanzibar")
    conversation(store, created_days_ago=1, active_days_ago=1, words="kept-words-Quokka")

    def on_disk() -> bytes:  # the store stays open: nothing is checkpointed or cleaned up by closing it
        return b"".join(p.read_bytes() for p in tmp_path.glob("chatrec.db*"))

    assert b"Zanzibar" in on_disk()
    purge(store, older_than=timedelta(days=30), now=NOW)
    assert b"Zanzibar" not in on_disk() and b"Quokka" in on_disk()
    store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_purge_retried_after_a_lock_reports_each_row_once(db_url, monkeypatch):
    from sqlalchemy.exc import OperationalError

    store = Store(db_url)
    conversation(store, created_days_ago=90, active_days_ago=40)
    write, attempts = store.write, []

    def locked_once(fn):
        def first_attempt_hits_a_lock(s):
            out = fn(s)  # all the work done, then the commit finds the database locked
            attempts.append(out)
            if len(attempts) == 1:
                raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))
            return out
        return write(first_attempt_hits_a_lock)

    monkeypatch.setattr(store, "write", locked_once)
    result = purge(store, older_than=timedelta(days=30), now=NOW)
    assert len(attempts) == 2  # rolled back and run again
    assert (result.conversations, result.turns, result.recommendations, result.mentions, result.feedback) == (
        1, 2, 4, 2, 2)
    assert counts(store) == {"conversations": 0, "turns": 0, "recommendations": 0, "mentions": 0, "feedback": 0}
