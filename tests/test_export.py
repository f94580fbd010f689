"""Export of the logged tables: CSV and Parquet files (and zips) that read back to the stored rows."""
from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from chatrec.cli import main
from chatrec.errors import ConfigError
from chatrec.export import export_tables, export_zip, parse_formats
from chatrec.recommender import Recommender
from chatrec.store import Store

TABLES = ["conversations", "turns", "recommendations", "mentions", "feedback"]


@pytest.fixture
def logged(make_services, small_catalog_path):
    """A store with one conversation of two turns, an item 👍 and an answer 👎."""
    from chatrec.backends.fake import FakeBackend

    services = make_services(small_catalog_path, backend=FakeBackend(["Try [[Rag Doll Emily]].", "Or [[Nope 3000]]."]))
    rec = Recommender(services)
    state = rec.new_state()
    rec.run_turn(state, "a soft doll, with a bow")
    rec.run_turn(state, "something else, no lego")
    rec.feedback(state, 1, item_id="d2", message_index=0)
    rec.feedback(state, -1, message_index=1)
    return services, state


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_tables_read_back(logged, tmp_path, fmt):
    services, state = logged
    paths = export_tables(services.store, tmp_path / "out", (fmt,), services.catalog)
    assert [p.name for p in paths] == [f"{t}.{fmt}" for t in TABLES]
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    tables = {p.stem: read(p) for p in paths}
    assert tables["conversations"]["id"].tolist() == [state.conversation_id]
    turns = tables["turns"]
    assert turns["user_text"].tolist() == ["a soft doll, with a bow", "something else, no lego"]
    assert turns["id"].tolist() == state.turn_ids
    feedback = tables["feedback"]
    assert feedback[["target", "item_id", "item_title", "value"]].astype(object).where(
        feedback[["target", "item_id", "item_title", "value"]].notna(), None).values.tolist() == [
        ["item", "d2", "Rag Doll Emily", 1], ["message", None, None, -1]]
    recs = tables["recommendations"]
    assert recs.loc[recs["turn_id"] == state.turn_ids[0], "item_id"].iloc[0] == "d2"
    assert recs.columns.tolist()[:4] == ["id", "turn_id", "item_id", "item_title"]
    mentions = tables["mentions"]
    assert mentions["text"].tolist() == ["Rag Doll Emily", "Nope 3000"]
    assert mentions["item_id"].isna().tolist() == [False, True]


def test_empty_database_exports_headers_only(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    paths = export_tables(store, tmp_path / "out", ("csv",))
    turns = pd.read_csv(tmp_path / "out" / "turns.csv")
    assert len(paths) == 5 and turns.empty and "state_json" in turns.columns
    store.close()


def test_export_zip_holds_every_table(logged, tmp_path):
    services, _ = logged
    archive = export_zip(services.store, "parquet", tmp_path, services.catalog)
    assert archive.name.startswith("chatrec-export-parquet-") and archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == sorted(f"{t}.parquet" for t in TABLES)
        with zf.open("turns.parquet") as fh:
            assert len(pd.read_parquet(fh)) == 2


@pytest.mark.parametrize("value,expected", [("csv", ("csv",)), ("parquet, CSV", ("parquet", "csv")),
                                            ("csv,csv", ("csv",))])
def test_parse_formats(value, expected):
    assert parse_formats(value) == expected


@pytest.mark.parametrize("value", ["", "xlsx", "csv,json"])
def test_parse_formats_rejects(value):
    with pytest.raises(ConfigError, match="comma-separated list of csv, parquet"):
        parse_formats(value)


def test_export_command(logged, tmp_path, capsys):
    services, _ = logged
    out = tmp_path / "cli"
    code = main(["export", "--db", services.settings.db_url, "--catalog", str(services.settings.catalog),
                 "--out", str(out), "--format", "csv,parquet"])
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(out / f"{t}.{f}") for t in TABLES for f in ("csv", "parquet"))
    assert pd.read_parquet(out / "feedback.parquet")["value"].tolist() == [1, -1]


def test_export_command_bad_format(tmp_path, capsys):
    code = main(["export", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--out", str(tmp_path), "--format", "xls"])
    assert code == 2
    assert "--format 'xls' is not valid" in capsys.readouterr().err
