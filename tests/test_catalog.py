"""Catalog loading: the EVAL.md format in JSONL and CSV, and clear errors naming file and line."""
from __future__ import annotations

import json

import pytest

from chatrec.catalog import Item, load_catalog, parse_age_range
from chatrec.errors import CatalogError
from conftest import ROOT, SMALL_CATALOG, write_jsonl

GOOD = {"id": "a", "title": "Alpha"}


def test_demo_catalog_ships_all_products_with_fields():
    catalog = load_catalog(ROOT / "catalog" / "toys.jsonl")
    assert len(catalog) == 863
    assert catalog.warnings == []
    with_price = [i for i in catalog if i.price is not None]
    assert len(with_price) == 718
    item = catalog.by_id["f82cb6573e01270552f1649a1f1f5f24"]
    assert item.title == "Hornby R1151 Caledonian Belle 00 Gauge Electric Train Set"
    assert (item.price, item.brand, item.rating, item.review_count) == (63.99, "Hornby", 4.4, 97)
    assert (ROOT / "catalog" / "LICENSE").read_text().count("CC BY-SA 4.0") >= 1


def test_jsonl_round_trip_of_all_fields(small_catalog_path):
    catalog = load_catalog(small_catalog_path)
    assert [i.id for i in catalog] == [r["id"] for r in SMALL_CATALOG]
    t1 = catalog.by_id["t1"]
    assert (t1.title, t1.category, t1.price, t1.brand, t1.review_count) == (
        "Hornby Express Train Set", "Trains", 79.99, "Hornby", 120)


@pytest.mark.parametrize("line, reason", [
    ('{"title": "No id"}', "missing or empty 'id'"),
    ('{"id": "x", "title": "   "}', "missing or empty 'title'"),
    ('{"id": "x"}', "missing or empty 'title'"),
    ('{"id": "a", "title": "Duplicate"}', "duplicate id 'a' (first on line 1)"),
    ('{"id": "x", "title": "T", "price": "cheap"}', "'price' must be a number, got 'cheap'"),
    ('{"id": "x", "title": "T", "price": -3}', "'price' must be a non-negative number"),
    ('{"id": "x", "title": "T", "price": true}', "'price' must be a number"),
    ('{"id": "x", "title": "T", "attributes": [1, 2]}', "'attributes' must be an object"),
    ('{"id": "x", "title": "T", "attributes": {"k": {"nested": 1}}}', "attribute 'k' must be a string, number or list"),
    ('{"id": "x", "title": "T", "description": 5}', "'description' must be a string"),
    ('{"id": "x", "title": "T"', "unparsable JSON"),
    ('["a", "b"]', "expected an object, got list"),
])
def test_bad_jsonl_row_is_reported_with_file_and_line(tmp_path, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert err.value.problems == [f"{path}:2: {reason}"] or err.value.problems[0].startswith(f"{path}:2: {reason}")
    assert "--skip-bad-rows" in str(err.value)


def test_skip_bad_rows_keeps_good_rows_and_lists_the_bad(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"id": "a", "title": "A"}\n\nnot json\n{"id": "b", "title": "B 🧸 مرحبا"}\n{"id": "a", "title": "A2"}\n',
                    encoding="utf-8")
    catalog = load_catalog(path, skip_bad_rows=True)
    assert [i.id for i in catalog] == ["a", "b"]
    assert catalog.by_id["b"].title == "B 🧸 مرحبا"
    assert [w.split(": ")[0] for w in catalog.warnings] == [f"{path}:3", f"{path}:5"]


def test_csv_with_json_attributes(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('id,title,description,category,price,attributes\n'
                    '1,"Kite, red",A kite,Outdoor,5.5,"{""brand"": ""Acme"", ""colors"": [""red""]}"\n'
                    '2,Ball,,Outdoor,,\n', encoding="utf-8")
    catalog = load_catalog(path)
    assert catalog.by_id["1"].title == "Kite, red"
    assert catalog.by_id["1"].attributes == {"brand": "Acme", "colors": ["red"]}
    assert catalog.by_id["2"].price is None and catalog.by_id["2"].description == ""


def test_csv_bad_attributes_names_the_line(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('id,title,attributes\n1,Kite,{}\n2,Ball,{broken\n', encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert err.value.problems == [f"{path}:3: 'attributes' column is not valid JSON"]


@pytest.mark.parametrize("content, message", [
    ("", "no usable items"),
    ("id,name\n1,x\n", "CSV header must name at least 'id' and 'title'"),
])
def test_unusable_files(tmp_path, content, message):
    path = tmp_path / ("c.csv" if "," in content else "c.jsonl")
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CatalogError, match=message):
        load_catalog(path)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(CatalogError, match="does not exist: pass --catalog PATH"):
        load_catalog(tmp_path / "nope.jsonl")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"id": "1", "title": "Caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(CatalogError, match="not UTF-8"):
        load_catalog(latin)


def test_fingerprint_changes_with_any_edit(tmp_path):
    a = load_catalog(write_jsonl(tmp_path / "a.jsonl", SMALL_CATALOG))
    edited = [dict(r) for r in SMALL_CATALOG]
    edited[3]["price"] = 88.0
    b = load_catalog(write_jsonl(tmp_path / "b.jsonl", edited))
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == load_catalog(tmp_path / "a.jsonl").fingerprint()


def test_listings_pair_a_title_with_and_without_its_year(tmp_path):
    rows = [{"id": "1", "title": "Rocky"}, {"id": "2", "title": "Rocky (1976)"}, {"id": "3", "title": "Rocky (2006)"},
            {"id": "4", "title": "rocky  (1976)"}, {"id": "5", "title": "Creed", "attributes": {"year": 2015}},
            {"id": "6", "title": "Creed (2015)"}, {"id": "7", "title": "Creed II"}]
    catalog = load_catalog(write_jsonl(tmp_path / "c.jsonl", rows))
    same = {catalog.items[p].id: sorted(catalog.items[q].id for q in qs) for p, qs in catalog.listings.items()}
    assert same == {"2": ["4"], "4": ["2"], "5": ["6"], "6": ["5"]}  # "Rocky" alone: which Rocky?
    assert load_catalog(write_jsonl(tmp_path / "d.jsonl", rows[:2])).listings == {0: (1,), 1: (0,)}


def test_namesakes_share_a_title_whatever_the_year(tmp_path):
    rows = [{"id": "a", "title": "Titanic (1997)"}, {"id": "b", "title": "Titanic (2012)"},
            {"id": "c", "title": "titanic"}, {"id": "d", "title": "Titanic II (2010)"}]
    catalog = load_catalog(write_jsonl(tmp_path / "c.jsonl", rows))
    assert catalog.namesakes == {0: (1, 2), 1: (0, 2), 2: (0, 1)}
    assert catalog.listings == {}  # two dated films: the undated one is neither


def test_rows_describing_one_thing_under_two_titles_are_listings_of_it(tmp_path):
    plot = "Ron Burgundy is San Diego's top-rated newsman in the male-dominated broadcasting of the 1970s."
    rows = [{"id": "a", "title": "Anchorman", "description": plot},
            {"id": "b", "title": "Anchorman: The Legend of Ron Burgundy (2004)", "description": plot},
            {"id": "c", "title": "Anchorman 2 (2013)", "description": "Ron Burgundy returns to take New York's first 24-hour news channel by storm."},
            {"id": "d", "title": "Red Mug", "description": "A mug.", "price": 5.0},  # short shop text: no twin
            {"id": "e", "title": "Blue Mug", "description": "A mug.", "price": 5.0},
            {"id": "f", "title": "Old Tale (1950)", "description": "A " + plot},  # the same text, but dated
            {"id": "g", "title": "Old Tale (1990)", "description": "A " + plot},  # 1950 and 1990: two things
            {"id": "h", "title": "Gold Jump Rings", "description": "Welcome to our shop, we combine postage on all orders."},
            {"id": "i", "title": "Silver Connectors", "description": "Welcome to our shop, we combine postage on all orders."}]
    catalog = load_catalog(write_jsonl(tmp_path / "c.jsonl", rows))
    same = {catalog.items[p].id: sorted(catalog.items[q].id for q in qs) for p, qs in catalog.listings.items()}
    assert same == {"a": ["b"], "b": ["a"]}


def test_one_film_listed_under_two_years_with_its_plot_and_makers_is_one_film(tmp_path):
    """ReDial lists the 2011 "Bridesmaids" a second time as "Bridesmaids (1989)", with the same plot
    and director; a remake has another plot, and two films of one plot need the same makers."""
    plot = "Competition between the maid of honor and a bridesmaid, over who is the bride's best friend."
    feig = {"director": ["Paul Feig"], "writer": ["Kristen Wiig", "Annie Mumolo"]}
    rows = [{"id": "a", "title": "Bridesmaids (2011)", "description": plot, "attributes": feig},
            {"id": "b", "title": "Bridesmaids (1989)", "description": plot, "attributes": {**feig, "star": ["X"]}},
            {"id": "c", "title": "Maids (1990)", "description": plot, "attributes": {"director": ["Someone Else"]}},
            {"id": "d", "title": "Bridesmaids (2020)", "description": "A remake with another plot entirely, set in space.",
             "attributes": feig}]
    catalog = load_catalog(write_jsonl(tmp_path / "c.jsonl", rows))
    same = {catalog.items[p].id: sorted(catalog.items[q].id for q in qs) for p, qs in catalog.listings.items()}
    assert same == {"a": ["b"], "b": ["a"]}


@pytest.mark.parametrize("text, ages", [
    ("3 years and up", (3.0, None)),
    ("36 months - 8 years", (3.0, 8.0)),
    ("4 - 10 years", (4.0, 10.0)),
    ("12 months and up", (1.0, None)),
    ("3 - 3 years", (3.0, None)),  # an empty range: only the lower bound is believable
    ("14+", (14.0, None)),
    ("adults", None),
])
def test_recommended_age_ranges(text, ages):
    assert parse_age_range(text) == ages
    assert Item("x", "Toy", attributes={"recommended_age": text}).age_range == ages


def test_a_set_number_in_brackets_is_no_release_year():
    assert Item("x", "LEGO Creator Mini Plane (5762)").year is None  # it topped every toy list as "newest"
    assert Item("y", "Jaws (1975)").year == 1975
