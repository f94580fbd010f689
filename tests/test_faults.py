"""Faults: a writer killed with SIGKILL, a database locked by another writer, a database that cannot be
opened, a model that fails to load or fails mid-reply, and a corrupt or stale embedding cache.

The kill tests run a real child process that prints the id of each write once ``Store`` has
returned it (acknowledged = committed); after the kill every printed id must be in the database.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from chatrec import cli
from chatrec.backends.fake import FakeBackend
from chatrec.catalog import load_catalog
from chatrec.errors import ConfigError, GenerationError, StoreError
from chatrec.index import build_index, cache_path
from chatrec.recommender import Recommender
from chatrec.schema import Turn
from chatrec.services import build_services
from chatrec.settings import Settings
from chatrec.store import Store
from conftest import ROOT, SMALL_CATALOG, HashEmbedder, write_jsonl

WRITER = textwrap.dedent("""
    import sys
    from chatrec.store import MentionRecord, RecRecord, Store, TurnRecord
    store = Store(sys.argv[1])
    conv, kind, i = sys.argv[2], sys.argv[3], 0
    while True:
        if kind == "feedback":
            ack = store.add_feedback(conv, 1 if i % 2 else -1, target="item", item_id=f"item-{i}")
        else:
            ack = store.log_turn(TurnRecord(conv, i, f"turn {i}", "reply " * 50, "fake", 1.0, prompt="p" * 2000,
                                            recommendations=[RecRecord(f"r{i}-{k}", k, 0.5) for k in range(1, 6)],
                                            mentions=[MentionRecord(f"m{i}", None, "none", 0.0)]))
        print(ack, flush=True)
        i += 1
""")


def kill_mid_stream(tmp_path: Path, url: str, conv: str, kind: str, acks_before_kill: int) -> list[int]:
    """Start a writer, SIGKILL it after ``acks_before_kill`` acknowledged writes; return every acked id."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, str(script), url, conv, kind], stdout=subprocess.PIPE, text=True, env=env)
    acked = []
    for line in child.stdout:
        acked.append(int(line))
        if len(acked) == acks_before_kill:
            child.send_signal(signal.SIGKILL)  # it keeps writing until the signal lands: mid-transaction
            break
    acked += [int(line) for line in child.stdout if line.endswith("\n")]  # acks already in the pipe count too
    assert child.wait() == -signal.SIGKILL
    return acked


@pytest.mark.parametrize("kind", ["feedback", "turns"])
def test_sigkill_mid_write_stream_loses_no_acknowledged_write(tmp_path, kind):
    path = tmp_path / "chatrec.db"
    url = f"sqlite:///{path}"
    store = Store(url)
    conv = store.new_conversation()
    store.close()
    acked: list[int] = []
    for _ in range(3):  # kill, restart, kill again: recovery after a crash is itself crash-safe
        acked += kill_mid_stream(tmp_path, url, conv, kind, acks_before_kill=60)
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    store = Store(url)
    assert store.applied == []
    if kind == "feedback":
        stored = {r.id for r in store.feedback_rows(conv)}
    else:
        turns = store.turns(conv)
        stored = {t.id for t in turns}
        # a turn is all there or not there: never a turn without its recommendations and mention
        assert {(len(t.recommendations), len(t.mentions)) for t in turns} == {(5, 1)}
    assert len(acked) >= 180 and set(acked) <= stored
    store.close()


@pytest.fixture
def rec(make_services, small_catalog_path):
    return Recommender(make_services(small_catalog_path, backend=FakeBackend()))


def hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> threading.Thread:
    """Another writer: takes the write lock, writes a marker feedback row, commits after ``seconds``."""
    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        conv = conn.execute("SELECT id FROM conversations LIMIT 1").fetchone()[0]
        conn.execute("INSERT INTO feedback (conversation_id, target, item_id, value, created_at) "
                     "VALUES (?, 'item', 'holder', 1, '2026-01-01 00:00:00')", (conv,))
        locked.set()
        threading.Event().wait(seconds)
        conn.execute("COMMIT")
        conn.close()
    thread = threading.Thread(target=hold)
    thread.start()
    return thread


@pytest.mark.parametrize("busy_timeout_ms", [5000, 100], ids=["busy-timeout", "retries"])
def test_turns_and_feedback_wait_for_a_locked_database_and_succeed(rec, tmp_path, busy_timeout_ms):
    rec.s.store = Store(rec.s.settings.db_url, busy_timeout_ms=busy_timeout_ms, retries=6)
    state = rec.new_state()
    first = rec.run_turn(state, "a train")
    locked = threading.Event()
    holder = hold_write_lock(tmp_path / "home" / "chatrec.db", 1.0, locked)
    locked.wait()
    second = rec.run_turn(state, "a wooden train")
    feedback_id = rec.feedback(state, 1, item_id=second.recommendations[0].item.id).row
    holder.join()
    assert (first.status, second.status) == ("ok", "ok") and None not in state.turn_ids
    rows = rec.s.store.feedback_rows(state.conversation_id)
    # ours was committed after the holder's row, so it did wait for the lock rather than skip it
    assert [(r.item_id, r.id) for r in rows] == [("holder", feedback_id - 1),
                                                 (second.recommendations[0].item.id, feedback_id)]
    assert [t.id for t in rec.s.store.turns(state.conversation_id)] == state.turn_ids


def test_a_lock_held_too_long_is_reported_not_dropped_and_the_next_turn_logs(rec, tmp_path):
    rec.s.store = Store(rec.s.settings.db_url, busy_timeout_ms=20, retries=1)
    state = rec.new_state()
    rec.run_turn(state, "a train")
    holder = sqlite3.connect(tmp_path / "home" / "chatrec.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        unlogged = rec.run_turn(state, "a wooden train")
        with pytest.raises(StoreError, match="database is locked"):
            rec.feedback(state, 1, item_id="t1")
        assert "t1" not in state.liked  # a vote that was not saved changes nothing on screen either
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert unlogged.status == "unlogged" and "database is locked" in unlogged.error
    assert unlogged.recommendations  # the user still got an answer
    after = rec.run_turn(state, "a train engine")
    assert after.status == "ok"
    assert [t.index for t in rec.s.store.turns(state.conversation_id)] == [1, 3]


@pytest.mark.parametrize("make_url, reason", [
    (lambda tmp: f"sqlite:///{tmp}", "{tmp} is a folder, not a database file"),
    (lambda tmp: f"sqlite:///{tmp / 'notes.txt' / 'chatrec.db'}", "{tmp}/notes.txt (or a folder above it) is a file"),
    (lambda tmp: f"sqlite:///{tmp / 'garbage.db'}", "file is not a database"),
    (lambda tmp: "postgresql+psycopg://app:hunter2@127.0.0.1:1/chatrec", "127.0.0.1"),
], ids=["directory", "parent-is-a-file", "not-a-database", "server-down"])
def test_a_database_that_cannot_be_opened_gives_a_clear_error(tmp_path, make_url, reason):
    (tmp_path / "notes.txt").write_text("not a folder")
    (tmp_path / "garbage.db").write_bytes(b"this is not an sqlite file" * 100)
    with pytest.raises(StoreError) as caught:
        Store(make_url(tmp_path))
    message = str(caught.value)
    assert message.startswith("cannot open database ") and reason.format(tmp=tmp_path) in message
    assert message.endswith("pass --db URL or set CHATREC_DB to a writable SQLAlchemy URL")
    assert "hunter2" not in message


def test_start_up_stops_with_that_error_before_loading_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("chatrec.services.SentenceTransformerEmbedder", None)  # reaching it would be the bug
    argv = ["chat", "--model", "none", "--home", str(tmp_path), "--db", f"sqlite:///{tmp_path}", "a train"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot open database sqlite:///{tmp_path}: ")


def test_an_unknown_collaborative_method_stops_start_up_with_its_name(tmp_path, small_catalog_path):
    settings = Settings.load({"catalog": small_catalog_path, "home": tmp_path / "home", "model": "none"},
                             env={"CHATREC_COLLAB": "svd"})
    with pytest.raises(ConfigError, match="CHATREC_COLLAB='svd': use auto, ease or cosine"):
        build_services(settings, backend=None, embedder=HashEmbedder())
    assert not (tmp_path / "home").exists()  # failed before opening the database


def test_a_model_that_fails_to_load_leaves_a_notice_and_no_lm_mode(tmp_path, small_catalog_path):
    settings = Settings.load({"catalog": small_catalog_path, "home": tmp_path / "home",
                              "model": str(tmp_path / "no-such-model")}, env={})
    services = build_services(settings, backend="load", embedder=HashEmbedder())
    assert services.backend is None and services.model_name == "none"
    assert len(services.notices) == 1
    assert services.notices[0].startswith(f"Running without a language model: no usable model at path "
                                          f"'{tmp_path / 'no-such-model'}'")
    result = Recommender(services).run_turn(Recommender(services).new_state(), "a jigsaw puzzle")
    assert result.status == "ok" and result.recommendations[0].item.id == "p1"
    assert [(t.model, t.status) for t in services.store.turns(result_conversation(services))] == [("none", "ok")]
    services.store.close()


def result_conversation(services) -> str:
    with services.store.session() as s:
        return s.scalars(select(Turn.conversation_id)).one()


class BreaksMidReply(FakeBackend):
    """Streams a few tokens, then fails the way a backend does (or a bug would) on its first call."""

    def __init__(self, error: Exception):
        super().__init__(["Sure, [[Thomas Tank Engine]] is lovely."])
        self.error = error

    def stream(self, messages, options):
        if len(self.calls) == 0:
            self.calls.append((messages, options))
            yield from ["Let ", "me ", "think ", "about "]
            raise self.error
        yield from super().stream(messages, options)


@pytest.mark.parametrize("error, logged, shown", [
    (GenerationError("the language model failed mid-reply: CUDA out of memory"), "CUDA out of memory",
     "the language model failed mid-reply: CUDA out of memory"),
    (RuntimeError("index out of range in self"), "internal error (RuntimeError: index out of range in self)",
     "an unexpected error; details in the server log"),  # internals stay in the log and the turn row
], ids=["generation-error", "backend-bug"])
def test_a_model_failing_mid_reply_is_shown_logged_as_failed_and_the_next_turn_works(
        make_services, small_catalog_path, error, logged, shown):
    rec = Recommender(make_services(small_catalog_path, backend=BreaksMidReply(error)))
    state = rec.new_state()
    events = list(rec.respond(state, "a train"))
    partials, failed = events[:-1], events[-1]
    assert partials[-1] == "Let me think about "  # the user saw it streaming before it broke
    assert failed.status == "failed" and logged in failed.error
    assert failed.display.startswith(f"⚠️ Sorry — the language model failed while answering ({shown}). ")
    assert failed.recommendations and failed.turn_id is not None
    ok = rec.run_turn(state, "a train engine")
    assert ok.status == "ok" and ok.recommendations[0].item.id == "t3"
    turns = rec.s.store.turns(state.conversation_id)
    assert [(t.status, t.error) for t in turns] == [("failed", failed.error), ("ok", None)]
    assert [m.role for m in state.messages] == ["user", "assistant", "user", "assistant"]


def garbage(path: Path) -> None:
    path.write_bytes(b"\x93NUMPY garbage" * 10)


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def other_catalog_version(path: Path) -> None:  # vectors of a catalog with one item fewer
    np.save(path, np.load(path)[:-1])


def not_finite(path: Path) -> None:
    vectors = np.load(path)
    vectors[3, 5] = np.nan
    np.save(path, vectors)


def pickled_objects(path: Path) -> None:
    np.save(path, np.array([{"evil": "payload"}], dtype=object), allow_pickle=True)


@pytest.mark.parametrize("damage", [garbage, truncated, other_catalog_version, not_finite, pickled_objects])
def test_a_damaged_embedding_cache_is_detected_and_rebuilt(tmp_path, small_catalog_path, damage, caplog):
    catalog = load_catalog(small_catalog_path)
    embedder = HashEmbedder()
    fresh = build_index(catalog, embedder, tmp_path / "cache").vectors
    path = cache_path(tmp_path / "cache", embedder.name, catalog)
    damage(path)
    rebuilt = build_index(catalog, embedder, tmp_path / "cache")
    assert embedder.calls == 2 and np.array_equal(rebuilt.vectors, fresh)
    assert f"embedding cache {path} is corrupt or stale; rebuilding it" in caplog.text
    again = build_index(catalog, embedder, tmp_path / "cache")  # and the repaired file is used next time
    assert embedder.calls == 2 and np.array_equal(again.vectors, fresh)


def test_an_edited_catalog_never_uses_the_old_versions_vectors(tmp_path):
    embedder = HashEmbedder()
    old = load_catalog(write_jsonl(tmp_path / "v1.jsonl", SMALL_CATALOG))
    build_index(old, embedder, tmp_path / "cache")
    edited = [dict(row, title="Solar System Planetarium") if row["id"] == "t1" else row for row in SMALL_CATALOG]
    new = load_catalog(write_jsonl(tmp_path / "v2.jsonl", edited))  # same ids, same length, one title changed
    index = build_index(new, embedder, tmp_path / "cache")
    assert embedder.calls == 2
    assert np.array_equal(index.vectors, HashEmbedder().encode([i.search_text() for i in new]))
    assert cache_path(tmp_path / "cache", embedder.name, new) != cache_path(tmp_path / "cache", embedder.name, old)
