"""Build the shipped demo catalog (``catalog/toys.jsonl``) from the Amazon UK toys CSV.

Reads ``../shared/data/amazon-uk-toys/products.csv`` (863 products; PromptCloud "Toy Products on
Amazon", CC BY-SA 4.0) and writes one JSON Lines row per product in the catalog format of
``../shared/EVAL.md``: ``id``, ``title``, ``description``, ``category``, ``price`` and
``attributes`` (brand, rating, review_count, category_path, recommended_age, in_stock).
Standard library only. Usage::

    python scripts/build_demo_catalog.py [--src PATH] [--out PATH]
"""
from __future__ import annotations

import argparse
import csv
import html
import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SRC = REPO_ROOT.parent / "shared" / "data" / "amazon-uk-toys" / "products.csv"
DEFAULT_OUT = REPO_ROOT / "catalog" / "toys.jsonl"
MAX_DESCRIPTION = 600
CATEGORY_COLUMNS = ("category", "subcategory_1", "subcategory_2", "subcategory_3", "subcategory_4")

# Scraped page furniture around the description text: a selected-variant label ("Size Name:M",
# "Colour:Beige", ...) and a section heading at the start, a "See all" link at the end.
_DESC_HEAD = re.compile(r"^(?:(?:[\w ]{1,20}:[^:]{1,40}?\s*\|?\s*)*(?:Product|Manufacturer's) Description"
                        r"|From the Manufacturer)\s*")
_DESC_TAIL = re.compile(r"\s*See all Product Description\s*$")
_TAG = re.compile(r"<[a-zA-Z/][^>]*>")
# The age value is lower-case ("3 years and up", "36 months - 8 years"); the next field of the
# "Technical Details" block ("Item model number...", "Manufacturer reference...") starts with a
# capital letter, and blocks are separated by runs of spaces.
_AGE = re.compile(r"Manufacturer recommended age:\s*(.*?)(?=\s{2,}|\s[A-Z]|$)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def fix_text(text: str | None) -> str:
    """Unescape HTML, repair UTF-8/cp1252 mojibake, drop tags, collapse whitespace."""
    text = html.unescape(text or "")
    # UTF-8 bytes decoded as Latin-1 ("donâ\x80\x99t" -> "don’t"), then lone cp1252 bytes ("\x92").
    text = re.sub(r"[\xc2-\xf4][\x80-\xbf]{1,3}", _redecode_utf8, text)
    text = re.sub(r"[\x80-\x9f]", lambda m: m.group().encode("latin-1").decode("cp1252", "ignore"), text)
    text = _TAG.sub(" ", text)
    return " ".join(text.split())


def _redecode_utf8(match: re.Match) -> str:
    chunk = match.group()
    if not re.search(r"[\x80-\x9f]", chunk):  # e.g. "é®" is real text, not mojibake
        return chunk
    try:
        return chunk.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return chunk


def clean_description(raw: str | None) -> str:
    text = _DESC_TAIL.sub("", _DESC_HEAD.sub("", fix_text(raw)))
    if len(text) <= MAX_DESCRIPTION:
        return text
    cut = text[: MAX_DESCRIPTION - 1]  # leave room for the ellipsis
    if not text[MAX_DESCRIPTION - 1].isspace() and " " in cut:
        cut = cut[: cut.rindex(" ")]  # do not split a word
    return cut.rstrip(" ,;:-") + "…"


def parse_price(raw: str | None) -> float | None:
    """'£1,299.00' -> 1299.0; '3.42 - 15.99' -> 3.42 (lower bound); '' -> None."""
    match = _NUMBER.search((raw or "").replace(",", ""))
    return float(match.group()) if match else None


def parse_rating(raw: str | None) -> float | None:
    match = _NUMBER.search(raw or "")  # "4.4" or "4.4 out of 5 stars"
    return float(match.group()) if match else None


def parse_int(raw: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", (raw or "").replace(",", ""))
    return int(match.group(1)) if match else None


def convert(row: dict[str, str]) -> dict:
    path = list(dict.fromkeys(v for v in (fix_text(row.get(c)) for c in CATEGORY_COLUMNS) if v))
    attributes: dict = {}
    if brand := fix_text(row.get("manufacturer")):
        attributes["brand"] = brand
    if (rating := parse_rating(row.get("average_review_rating"))) is not None:
        attributes["rating"] = rating
    if (reviews := parse_int(row.get("number_of_reviews"))) is not None:
        attributes["review_count"] = reviews
    attributes["category_path"] = path
    info = (row.get("product_information") or "").replace("\xa0", " ")
    if (age := _AGE.search(info)) and age.group(1).strip():
        attributes["recommended_age"] = age.group(1).strip()
    if (stock := parse_int(row.get("number_available_in_stock"))) is not None:
        attributes["in_stock"] = stock

    item: dict = {"id": row["product_id"].strip(), "title": fix_text(row.get("product_name")),
                  "description": clean_description(row.get("product_description"))}
    category = fix_text(row.get("subcategory_1")) or fix_text(row.get("category"))
    if category:
        item["category"] = category
    if (price := parse_price(row.get("price"))) is not None:
        item["price"] = price
    item["attributes"] = attributes
    return item


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="products.csv to read")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON Lines file to write")
    args = parser.parse_args(argv)

    with args.src.open(encoding="utf-8", newline="") as handle:
        items = [convert(row) for row in csv.DictReader(handle)]
    seen: dict[str, int] = {}
    for item in items:
        base = item["id"]
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            item["id"] = f"{base}-{seen[base]}"
            print(f"warning: duplicate product_id {base!r}, renamed to {item['id']!r}", file=sys.stderr)
    assert len({item["id"] for item in items}) == len(items), "ids must be unique"
    bad = [i for i, item in enumerate(items, 1) if not item["id"] or not item["title"]]
    if bad:
        print(f"warning: CSV data rows {bad} have no id or title", file=sys.stderr)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8", newline="\n") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    count = lambda pred: sum(1 for item in items if pred(item))  # noqa: E731
    print(f"wrote {len(items)} products to {args.out}: {count(lambda i: 'price' in i)} with price, "
          f"{count(lambda i: i['description'])} with description, "
          f"{count(lambda i: 'rating' in i['attributes'])} with rating")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
