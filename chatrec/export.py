"""Export the logged conversations, turns, recommendations, mentions and feedback as CSV or Parquet.

``python -m chatrec export --out DIR [--format csv,parquet]`` writes one file per table (plus
``item_title`` columns when the catalog loads); the Insights tab offers the same data as zip
downloads via :func:`export_zip`. Rows are exported exactly as stored: with ``--privacy`` the
texts are already hashes. This module does not filter, sample or anonymise further.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .cli import add_common, settings_from_args
from .errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from .catalog import Catalog
    from .store import Store

FORMATS = ("csv", "parquet")
# Tables whose rows name a catalog item; they get a readable item_title column next to item_id.
_TITLED = ("recommendations", "mentions", "feedback")


def parse_formats(value: str) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"--format {value!r} is not valid: use a comma-separated list of {', '.join(FORMATS)}")
    return formats


def table_frames(store: "Store", catalog: "Catalog | None" = None) -> dict[str, "pd.DataFrame"]:
    """One DataFrame per table, with the schema's columns even when a table is empty."""
    import pandas as pd

    from .schema import Base

    frames: dict[str, pd.DataFrame] = {}
    for name in store.REPORT_TABLES:
        columns = list(Base.metadata.tables[name].columns.keys())
        frame = pd.DataFrame(store.table_rows(name), columns=columns)
        if catalog is not None and name in _TITLED:
            titles = [catalog.by_id[i].title if i in catalog.by_id else None for i in frame["item_id"]]
            frame.insert(columns.index("item_id") + 1, "item_title", titles)
        frames[name] = frame
    return frames


def export_tables(store: "Store", out_dir: str | Path, formats: Sequence[str] = ("csv",),
                  catalog: "Catalog | None" = None) -> list[Path]:
    """Write ``<table>.<format>`` for every table into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, frame in table_frames(store, catalog).items():
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            if fmt == "csv":
                frame.to_csv(path, index=False)
            elif fmt == "parquet":
                frame.to_parquet(path, index=False)
            else:
                raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
            written.append(path)
    return written


def export_zip(store: "Store", fmt: str, dest_dir: str | Path, catalog: "Catalog | None" = None) -> Path:
    """All tables in one format, zipped: ``chatrec-export-<fmt>-<UTC time>.zip`` in ``dest_dir``."""
    dest = Path(dest_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    archive = dest / f"chatrec-export-{fmt}-{stamp}.zip"
    with tempfile.TemporaryDirectory(prefix="chatrec-export-") as staging:  # only the zip stays
        files = export_tables(store, staging, (fmt,), catalog)
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                zf.write(path, arcname=path.name)
    return archive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--out", required=True, help="folder to write <table>.<format> files into")
    parser.add_argument("--format", default="csv", help="comma-separated: csv, parquet (default: csv)")


def run(args: argparse.Namespace) -> int:
    from .catalog import load_catalog
    from .errors import CatalogError
    from .store import Store

    formats = parse_formats(args.format)
    settings = settings_from_args(args)
    try:
        catalog = load_catalog(settings.catalog, skip_bad_rows=True)
    except CatalogError as exc:
        print(f"note: exporting without item titles ({str(exc).splitlines()[0]})", file=sys.stderr)
        catalog = None
    store = Store(settings.db_url, privacy=settings.privacy)
    try:
        paths = export_tables(store, args.out, formats, catalog)
    finally:
        store.close()
    for path in paths:
        print(path)
    return 0
