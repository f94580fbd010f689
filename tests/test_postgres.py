"""The store and retention tests again, on a real PostgreSQL server, plus what only PostgreSQL checks.

Needs ``CHATREC_TEST_POSTGRES_URL`` (``bash .ci/postgres.sh start`` prints one; ``.ci/run`` sets it).
Each test gets its own schema, dropped afterwards, so reruns against the same server start clean.
"""
from __future__ import annotations

import os
import threading
import uuid

import pytest
from sqlalchemy import create_engine, inspect, make_url, text

from chatrec.errors import StoreError
from chatrec.store import RecRecord, Store

# The same test functions as for SQLite; pytest runs them here with this module's ``db_url``.
from test_retention import (test_dry_run_counts_and_deletes_nothing,  # noqa: F401
                            test_purge_deletes_old_conversations_with_everything_attached)
from test_store import (migration_versions, store, test_a_turn_is_written_whole_or_not_at_all,  # noqa: F401
                        test_blank_database_gets_the_current_schema_and_every_stamp,
                        test_feedback_on_a_conversation_that_does_not_exist_is_refused,
                        test_feedback_value_and_target_are_checked,
                        test_liked_turns_follow_the_latest_vote_on_each_item,
                        test_old_database_is_migrated_to_the_same_shape_with_its_rows,
                        test_privacy_stores_only_hashes_of_conversation_text,
                        test_sql_metacharacters_in_every_text_field_come_back_verbatim,
                        test_turns_and_feedback_mark_the_conversation_active, turn_record)

SERVER = os.environ.get("CHATREC_TEST_POSTGRES_URL", "")
pytestmark = pytest.mark.skipif(
    not SERVER, reason="CHATREC_TEST_POSTGRES_URL is not set: run `export CHATREC_TEST_POSTGRES_URL=$(bash "
                       ".ci/postgres.sh start)` (PostgreSQL 15 Debian packages) or use .ci/run")


@pytest.fixture
def db_url():
    """A fresh schema on the test server; the URL puts it first on the search path."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(SERVER)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(SERVER).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_version_1_varchar_ids_are_widened_so_long_ids_log(db_url):
    store = Store(db_url)
    with store.engine.begin() as conn:  # version 1 declared these VARCHAR(200); PostgreSQL enforces that
        conn.execute(text("ALTER TABLE recommendations ALTER COLUMN item_id TYPE VARCHAR(200)"))
        conn.execute(text("ALTER TABLE turns ALTER COLUMN model TYPE VARCHAR(200)"))
        conn.execute(text("DELETE FROM schema_migrations WHERE version = 2"))
    conv = store.new_conversation()
    with pytest.raises(StoreError, match="value too long"):
        store.log_turn(turn_record(conv, recommendations=[RecRecord("i" * 300, 1, 0.5)]))
    store.close()
    migrated = Store(db_url)
    assert migrated.applied == [2] and migration_versions(migrated) == [1, 2]
    with migrated.engine.connect() as conn:
        types = {c["name"]: str(c["type"]) for c in inspect(conn).get_columns("recommendations")}
    assert types["item_id"] == "TEXT"
    turn_id = migrated.log_turn(turn_record(conv, model="m" * 300,
                                            recommendations=[RecRecord("i" * 300, 1, 0.5)]))
    assert migrated.recommended_items(turn_id) == ["i" * 300]
    migrated.close()


def test_concurrent_writers_lose_nothing(db_url):
    store = Store(db_url)
    convs = [store.new_conversation() for _ in range(8)]
    acked: list[list[int]] = [[] for _ in convs]

    def writer(n: int) -> None:
        for i in range(25):
            acked[n].append(store.add_feedback(convs[n], 1 if i % 2 else -1, target="item", item_id=f"i{i}"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(len(convs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = store.feedback_rows()
    assert sorted(r.id for r in rows) == sorted(i for ids in acked for i in ids)
    assert len(rows) == 8 * 25
    assert store.item_feedback()["i0"] == (0, 8)
    store.close()
