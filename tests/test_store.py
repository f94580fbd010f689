"""The store: migrations on open, SQLite connection settings, verbatim round trips of hostile text,
one transaction per turn, and the privacy switch.

Tests that take the ``db_url`` fixture run here on SQLite and again on a real PostgreSQL server
in tests/test_postgres.py (which overrides ``db_url``); SQLite-only ones take ``tmp_path`` instead.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from sqlalchemy import inspect, text

from chatrec.errors import StoreError
from chatrec.recommender import Recommender
from chatrec.schema import SCHEMA_VERSION
from chatrec.store import MentionRecord, RecRecord, Store, TurnRecord

COLUMNS = {
    "schema_migrations": ["version", "name", "applied_at"],
    "conversations": ["id", "created_at", "model", "catalog", "updated_at"],
    "turns": ["id", "conversation_id", "index", "created_at", "user_text", "prompt", "reply", "model", "status",
              "error", "latency_ms", "state_json"],
    "recommendations": ["id", "turn_id", "item_id", "rank", "score", "grounded", "source"],
    "mentions": ["id", "turn_id", "text", "item_id", "method", "confidence"],
    "feedback": ["id", "conversation_id", "turn_id", "target", "item_id", "value", "created_at"],
}
# Text that breaks naive SQL building, LIKE patterns, bind-parameter styles (sqlite ?, SQLAlchemy :name,
# psycopg %s / %(x)s), PostgreSQL dollar quoting and backslash escapes, plus unicode and a large value.
UGLY = ["'; DROP TABLE turns; --", 'Robert"); DROP TABLE conversations;--', "O'Brien's \"quoted\" `ticks`",
        "100% _wild_ [chars] \\ \\\\ \\n", "?, :name, %s, %(x)s, $1, $$dollar$$", "/* comment */ -- tail",
        "emoji 🚂🧸 RTL \u202e mixed قطار", "line\nbreak\ttab\r\n", "x" * 100_000, "i" * 300]


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'chatrec.db'}"


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def turn_record(conv_id: str, index: int = 1, text: str = "a train", item: str = "t1", **kw) -> TurnRecord:
    defaults = dict(reply=f"Try [[{text}]]", model="fake", latency_ms=12.5, prompt=f"[user]\n{text}",
                    state={"category": "Trains", "must_have": [text], "exclude": [], "budget": None},
                    recommendations=[RecRecord(item, 1, 0.9, True, "span"), RecRecord("t2", 2, 0.5, True, "ranker")],
                    mentions=[MentionRecord(text, item, "span", 1.0)])
    return TurnRecord(conversation_id=conv_id, index=index, user_text=text, **{**defaults, **kw})


def schema_shape(url: str) -> dict[str, list[str]]:
    """Columns (in order) and index names per table."""
    s = Store(url)
    try:
        with s.engine.connect() as conn:
            insp = inspect(conn)
            return {t: [c["name"] for c in insp.get_columns(t)] + sorted(i["name"] for i in insp.get_indexes(t))
                    for t in sorted(insp.get_table_names())}
    finally:
        s.close()


def expected_shape() -> dict[str, list[str]]:
    indexed = {"conversations": ["created_at", "updated_at"], "turns": ["conversation_id", "created_at"],
               "recommendations": ["item_id", "turn_id"], "mentions": ["turn_id"],
               "feedback": ["conversation_id", "created_at", "item_id"]}
    return {t: cols + [f"ix_{t}_{c}" for c in indexed.get(t, [])] for t, cols in sorted(COLUMNS.items())}


def migration_versions(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT version FROM schema_migrations ORDER BY version"))]


def test_blank_database_gets_the_current_schema_and_every_stamp(db_url):
    store = Store(db_url)
    assert store.applied == [1, 2] and SCHEMA_VERSION == 2
    assert migration_versions(store) == [1, 2]
    store.close()
    assert schema_shape(db_url) == expected_shape()
    again = Store(db_url)
    assert again.applied == []  # reopening migrates nothing
    again.close()


@pytest.mark.parametrize("era", ["version 1", "before migrations"])
def test_old_database_is_migrated_to_the_same_shape_with_its_rows(db_url, era):
    store = Store(db_url)
    conv = store.new_conversation(model="m")
    store.log_turn(turn_record(conv))
    with store.engine.begin() as conn:  # take the database back to how an older chatrec left it
        conn.execute(text("DROP INDEX ix_conversations_updated_at"))
        conn.execute(text("ALTER TABLE conversations DROP COLUMN updated_at"))
        conn.execute(text("UPDATE turns SET created_at = :t"), {"t": "2026-01-02 03:04:05"})
        if era == "version 1":
            conn.execute(text("DELETE FROM schema_migrations WHERE version = 2"))
        else:
            conn.execute(text("DROP TABLE schema_migrations"))
    store.close()
    migrated = Store(db_url)
    assert migrated.applied == ([2] if era == "version 1" else [1, 2])
    assert migration_versions(migrated) == [1, 2]
    rows = migrated.table_rows("conversations")
    assert [(r["id"], f"{r['updated_at']:%Y-%m-%d %H:%M:%S}") for r in rows] == [(conv, "2026-01-02 03:04:05")]
    assert [t.user_text for t in migrated.turns(conv)] == ["a train"]
    migrated.close()
    assert schema_shape(db_url) == expected_shape()


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'c.db'}", busy_timeout_ms=1234)
    with store.engine.connect() as conn:
        got = [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "busy_timeout", "foreign_keys")]
    assert got == ["wal", 1234, 1]
    store.close()
    with sqlite3.connect(tmp_path / "c.db") as raw:  # WAL is a property of the file: other clients see it too
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_in_memory_database_is_shared_across_threads():
    import threading

    store = Store("sqlite://")
    conv = store.new_conversation()
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(store.log_turn(turn_record(conv))))
    worker.start()
    worker.join()
    assert [t.id for t in store.turns(conv)] == seen == [1]


def test_feedback_on_a_conversation_that_does_not_exist_is_refused(store):
    with pytest.raises(StoreError, match="database write failed"):
        store.add_feedback("no-such-conversation", 1, target="item", item_id="t1")
    assert store.feedback_rows() == []


@pytest.mark.parametrize("value, target", [(0, "item"), (2, "item"), (1, "thread")])
def test_feedback_value_and_target_are_checked(store, value, target):
    conv = store.new_conversation()
    with pytest.raises(ValueError, match=r"\+1 or -1"):
        store.add_feedback(conv, value, target=target, item_id="t1")


@pytest.mark.parametrize("ugly", UGLY, ids=lambda u: repr(u[:12]))
def test_sql_metacharacters_in_every_text_field_come_back_verbatim(store, ugly):
    conv = store.new_conversation(model=ugly, catalog=ugly)
    record = turn_record(conv, text=ugly, item=ugly, reply=ugly, prompt=ugly, model=ugly, error=ugly,
                         state={"must_have": [ugly], "category": ugly},
                         recommendations=[RecRecord(ugly, 1, 0.25, True, "span")],
                         mentions=[MentionRecord(ugly, ugly, "fuzzy", 0.5)])
    turn_id = store.log_turn(record)
    fb = store.add_feedback(conv, -1, target="item", turn_id=turn_id, item_id=ugly)
    (turn,) = store.turns(conv)
    assert (turn.user_text, turn.prompt, turn.reply, turn.model, turn.error) == (ugly,) * 5
    assert json.loads(turn.state_json) == {"must_have": [ugly], "category": ugly}
    assert [(r.item_id, r.score) for r in turn.recommendations] == [(ugly, 0.25)]
    assert [(m.text, m.item_id) for m in turn.mentions] == [(ugly, ugly)]
    assert store.recommended_items(turn_id) == [ugly]
    assert [(f.id, f.item_id, f.value) for f in store.feedback_rows(conv)] == [(fb, ugly, -1)]
    assert store.item_feedback() == {ugly: (0, 1)}
    (row,) = store.table_rows("conversations")
    assert (row["model"], row["catalog"]) == (ugly, ugly)
    assert store.conversation_list()[0]["first_message"] == ugly
    assert migration_versions(store) == [1, 2]  # and every table is still there
    with store.engine.connect() as conn:
        assert sorted(inspect(conn).get_table_names()) == sorted(COLUMNS)


def test_a_turn_is_written_whole_or_not_at_all(store):
    conv = store.new_conversation()
    broken = turn_record(conv, recommendations=[RecRecord("t1", 1, 0.9), RecRecord("t2", None, 0.5)])  # NOT NULL
    with pytest.raises(StoreError, match="database write failed"):
        store.log_turn(broken)
    assert store.turns(conv) == [] and store.table_rows("recommendations") == []
    assert store.table_rows("mentions") == []
    ok = store.log_turn(turn_record(conv))
    assert [t.id for t in store.turns(conv)] == [ok]


def test_turns_and_feedback_mark_the_conversation_active(store):
    conv = store.new_conversation()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE conversations SET updated_at = :t"), {"t": "2020-01-01 00:00:00"})
    turn_id = store.log_turn(turn_record(conv))
    after_turn = store.table_rows("conversations")[0]["updated_at"]
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE conversations SET updated_at = :t"), {"t": "2020-01-01 00:00:00"})
    store.add_feedback(conv, 1, turn_id=turn_id)
    after_feedback = store.table_rows("conversations")[0]["updated_at"]
    assert after_turn.year > 2020 and after_feedback.year > 2020
    # a turn for a conversation the store has never seen creates it
    store.log_turn(turn_record("fresh-conversation"))
    assert sorted(r["id"] for r in store.table_rows("conversations")) == sorted([conv, "fresh-conversation"])


def sha(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def test_privacy_stores_only_hashes_of_conversation_text(db_url):
    store = Store(db_url, privacy=True)
    secret = "my daughter Alice loves dinosaurs"
    conv = store.new_conversation(model="fake")
    turn_id = store.log_turn(turn_record(conv, text=secret, reply=f"For Alice: [[{secret}]]", prompt=f"[user]\n{secret}",
                                         state={"category": "Dolls", "must_have": ["alice", "dinosaurs"],
                                                "exclude": ["spiders"], "liked": ["t1"]}))
    store.add_feedback(conv, 1, turn_id=turn_id)
    store.add_feedback(conv, -1, target="item", item_id="t2")
    (turn,) = store.turns(conv)
    assert (turn.user_text, turn.prompt, turn.reply) == (sha(secret), sha(f"[user]\n{secret}"),
                                                         sha(f"For Alice: [[{secret}]]"))
    assert [m.text for m in turn.mentions] == [sha(secret)]
    assert json.loads(turn.state_json) == {"category": "Dolls", "must_have": [sha("alice"), sha("dinosaurs")],
                                           "exclude": [sha("spiders")], "liked": ["t1"]}
    # ids, scores and feedback still work, so ranking from feedback is unaffected
    assert store.recommended_items(turn_id) == ["t1", "t2"]
    assert store.item_feedback() == {"t1": (1, 0), "t2": (1, 1)}
    everything = json.dumps([store.table_rows(t) for t in Store.REPORT_TABLES], default=str).lower()
    for word in ("alice", "dinosaurs", "spiders"):
        assert word not in everything
    store.close()


def test_privacy_switch_through_the_whole_pipeline_leaves_no_text_on_disk(make_services, small_catalog_path, tmp_path):
    services = make_services(small_catalog_path, privacy=True)
    rec = Recommender(services)
    state = rec.new_state()
    first = rec.run_turn(state, "a zebraphant train for Bartholomew")
    rec.feedback(state, 1, message_index=0)
    rec.feedback(state, -1, item_id=first.recommendations[1].item.id)
    assert services.store.item_feedback()[first.recommendations[0].item.id] == (1, 0)
    services.store.close()
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "home").glob("chatrec.db*"))
    assert b"Bartholomew" not in on_disk and b"zebraphant" not in on_disk
    assert sha("a zebraphant train for Bartholomew").encode() in on_disk


def test_write_retries_then_reports_a_locked_database(tmp_path):
    path = tmp_path / "locked.db"
    store = Store(f"sqlite:///{path}", retries=2, busy_timeout_ms=50)
    conv = store.new_conversation()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="database write failed: database is locked"):
            store.add_feedback(conv, 1, target="item", item_id="t1")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.add_feedback(conv, 1, target="item", item_id="t1") == 1  # and it works once released
    store.close()


def test_liked_turns_follow_the_latest_vote_on_each_item(store):
    """What the product learns from: item 👍 on the last turn that suggested the item, message 👍 for
    the message's items unless voted down, the latest vote winning; conversations without votes skipped."""
    from chatrec.store import LikedTurn

    conv, quiet = store.new_conversation(), store.new_conversation()
    t1 = store.log_turn(turn_record(conv, 1, "a train", "t1"))  # suggests t1, t2
    store.log_turn(turn_record(conv, 2, "a cheaper one", "t3"))  # suggests t3, t2
    store.log_turn(turn_record(quiet, 1, "a drone", "d1"))
    store.add_feedback(conv, 1, turn_id=t1)  # message 👍 on turn 1: t1 and t2...
    store.add_feedback(conv, -1, target="item", item_id="t1")  # ...but t1 is voted down afterwards
    store.add_feedback(conv, -1, target="item", item_id="t3")
    store.add_feedback(conv, 1, target="item", item_id="t3")  # the latest vote wins
    assert store.liked_turns() == [
        LikedTurn(conv, 1, [("user", "a train")], ["t2"]),
        LikedTurn(conv, 2, [("user", "a train"), ("assistant", "Try [[a train]]"), ("user", "a cheaper one")], ["t3"])]
