"""The product catalog: loading JSON Lines or CSV rows into typed, validated items.

Format (see ``../shared/EVAL.md``): ``id`` and ``title`` required; ``description``, ``category``,
``price`` and ``attributes`` optional. Every bad row is reported as ``file:line: reason``; loading
fails unless ``skip_bad_rows`` is set, in which case bad rows are dropped and listed in
``Catalog.warnings``. This module does not embed or index anything (see ``index.py``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

from .errors import CatalogError

AttrValue = str | int | float | list
_TRAILING_YEAR = re.compile(r"\s*\(((?:18[89]|19\d|20\d)\d)\)\s*$")  # not a set number: "LEGO Mini Plane (5762)"
_WORD = re.compile(r"\w+")
_TWIN_MIN_CHARS = 40  # shorter descriptions ("Great gift.") are shared by different products


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    description: str = ""
    category: str | None = None
    price: float | None = None
    attributes: dict[str, AttrValue] = field(default_factory=dict, hash=False, compare=False)

    @property
    def brand(self) -> str | None:
        value = self.attributes.get("brand")
        return str(value) if value not in (None, "") else None

    @property
    def rating(self) -> float | None:
        return _as_float(self.attributes.get("rating"))

    @property
    def review_count(self) -> int | None:
        value = _as_float(self.attributes.get("review_count"))
        return int(value) if value is not None and value >= 0 else None  # -1 often means "unknown"

    @property
    def year(self) -> int | None:
        """Release year from a ``year`` attribute or a trailing "(1993)" in the title."""
        value = _as_float(self.attributes.get("year"))
        if value is not None:
            return int(value)
        m = _TRAILING_YEAR.search(self.title)
        return int(m.group(1)) if m else None

    @property
    def age_range(self) -> tuple[float, float | None] | None:
        """(youngest, oldest or None) recommended age in years, from a ``recommended_age`` attribute
        ("3 years and up", "36 months - 8 years", "4 - 10 years") or numeric ``min_age`` / ``max_age``."""
        lo, hi = _as_float(self.attributes.get("min_age")), _as_float(self.attributes.get("max_age"))
        if lo is not None:
            return lo, hi
        text = self.attributes.get("recommended_age")
        return parse_age_range(text) if isinstance(text, str) else None

    def search_text(self) -> str:
        """Text that describes the item for embedding and lexical search."""
        parts = [self.title]
        if self.category:
            parts.append(self.category)
        for key, value in self.attributes.items():
            if key in {"rating", "review_count", "in_stock"}:
                continue
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"{key}: {shown}")
        if self.description:
            parts.append(self.description)
        return ". ".join(parts)


_AGE_PART = r"(\d+(?:\.\d+)?)\s*(years?|yrs?|months?)?"
_AGE_RANGE = re.compile(rf"^\s*{_AGE_PART}\s*(?:-|–|to)\s*{_AGE_PART}\s*$", re.I)
_AGE_MIN = re.compile(rf"^\s*{_AGE_PART}\s*(?:\+|and up|and over|and older|plus)\s*$", re.I)


def parse_age_range(text: str) -> tuple[float, float | None] | None:
    """"3 years and up" -> (3, None), "36 months - 8 years" -> (3, 8), "4 - 10 years" -> (4, 10)
    (a bare number takes the unit after it); None for anything else."""
    def years(value: str, unit: str | None) -> float:
        return float(value) / 12 if unit and unit.lower().startswith("month") else float(value)

    if m := _AGE_RANGE.match(text):
        lo, hi = years(m.group(1), m.group(2) or m.group(4)), years(m.group(3), m.group(4))
        return (lo, hi) if lo < hi else (lo, None)  # "4 - 3 years", "3 - 3 years": only the lower bound holds
    if m := _AGE_MIN.match(text):
        return years(m.group(1), m.group(2)), None
    return None


class Catalog:
    """An ordered, id-indexed collection of items. Positions are stable row numbers."""

    def __init__(self, items: list[Item], source: str = "<memory>", warnings: list[str] | None = None):
        self.items = items
        self.source = source
        self.warnings = warnings or []
        self.by_id = {item.id: item for item in items}
        self.position = {item.id: i for i, item in enumerate(items)}
        if len(self.by_id) != len(items):
            raise CatalogError(f"{source}: duplicate item ids")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.by_id

    def get(self, item_id: str) -> Item | None:
        return self.by_id.get(item_id)

    @cached_property
    def has_ages(self) -> bool:
        """Whether at least a fifth of the items carry a recommended age (toys do; films do not)."""
        return sum(1 for item in self.items if item.age_range is not None) * 5 >= max(len(self.items), 1)

    @property
    def categories(self) -> list[str]:
        return sorted({item.category for item in self.items if item.category})

    @cached_property
    def namesakes(self) -> dict[int, tuple[int, ...]]:
        """Position -> the other positions whose title is the same but for a trailing "(year)": the
        other listings of the thing (``listings``) and other things of that name ("Titanic (1997)",
        "Titanic (2012)", "Titanic")."""
        groups: dict[str, list[int]] = {}
        for pos, item in enumerate(self.items):
            groups.setdefault(" ".join(_TRAILING_YEAR.sub("", item.title).casefold().split()), []).append(pos)
        return {p: tuple(q for q in members if q != p) for members in groups.values() if len(members) > 1
                for p in members}

    @cached_property
    def listings(self) -> dict[int, tuple[int, ...]]:
        """Position -> the other positions that list the same thing: the same title (case, spacing
        and a trailing "(year)" aside) and the same year, or no year where the title is known in
        one year only. ReDial's catalog holds "Jurassic Park" and "Jurassic Park (1993)" (but an
        undated "Rocky" beside 1976 and 2006 ones is none of them); shops list one product twice."""
        out: dict[int, tuple[int, ...]] = {}
        for pos, others in self.namesakes.items():
            if pos > others[0]:
                continue  # each group once, from its first position
            members = (pos, *others)
            years = {p: self.items[p].year for p in members}
            dated = {y for y in years.values() if y}
            for p in members:
                same = tuple(q for q in members if q != p and (years[p] == years[q] or len(dated) == 1))
                if same:
                    out[p] = same
        for p, twins in self._twins().items():
            out[p] = tuple(sorted({*out.get(p, ()), *twins}))
        return out

    @cached_property
    def newest_year(self) -> int:
        """The newest release year, robust to a few far-future dates (the 99th percentile of the years
        given, rounded up to one of them); 0 when no item has a year. "New" and "recent" count from it."""
        years = sorted(i.year for i in self.items if i.year)
        return years[math.ceil(0.99 * (len(years) - 1))] if years else 0

    def same_thing(self, pos: int) -> tuple[int, ...]:
        """``pos`` and every other listing of the thing it lists (``listings``)."""
        return (pos, *self.listings.get(pos, ()))

    def _twins(self) -> dict[int, set[int]]:
        """Position -> the rows that describe the same thing under a longer or shorter title: the same
        long description, category and price, no two different years, and one title inside the other
        ("Anchorman" and "Anchorman: The Legend of Ron Burgundy (2004)" in ReDial's catalog). A shop's
        boilerplate description ("Welcome to our store...") on two products with unrelated titles
        makes no twins."""
        groups: dict[tuple[str, str | None, float | None], list[int]] = {}
        for pos, item in enumerate(self.items):
            text = " ".join(item.description.split())
            if len(text) >= _TWIN_MIN_CHARS:
                groups.setdefault((text, item.category, item.price), []).append(pos)
        out: dict[int, set[int]] = {}
        for members in (g for g in groups.values() if len(g) > 1):
            words = {p: f" {' '.join(_WORD.findall(_TRAILING_YEAR.sub('', self.items[p].title).casefold()))} "
                     for p in members}
            credits = {p: _credits(self.items[p]) for p in members}
            for i, p in enumerate(members):
                for q in members[i + 1:]:
                    yp, yq = self.items[p].year, self.items[q].year
                    related = (yp == yq or not yp or not yq) and (words[p] in words[q] or words[q] in words[p])
                    if related or (credits[p] and credits[p] == credits[q]):
                        out.setdefault(p, set()).add(q)
                        out.setdefault(q, set()).add(p)
        return out

    def fingerprint(self) -> str:
        """A hash of the catalog's content, for cache keys: any edit to any row changes it."""
        digest = hashlib.sha256()
        for item in self.items:
            row = [item.id, item.title, item.description, item.category, item.price, item.attributes]
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
            digest.update(b"\n")
        return digest.hexdigest()[:16]


def _credits(item: Item) -> frozenset[str]:
    """Who made the thing (director, writer), where the catalog says: with the same long description, the
    same makers mean one film even under another year ("Bridesmaids (1989)" beside "Bridesmaids (2011)")."""
    names = []
    for key in ("director", "writer"):
        value = item.attributes.get(key)
        names += [value] if isinstance(value, str) else list(value or [])
    return frozenset(str(n).casefold() for n in names)


def load_catalog(path: str | Path, *, skip_bad_rows: bool = False) -> Catalog:
    """Load a ``.jsonl``/``.json`` or ``.csv`` catalog, validating every row."""
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"catalog file {path} does not exist: pass --catalog PATH or set CHATREC_CATALOG")
    rows = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    items: list[Item] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        try:
            if isinstance(row, Exception):
                raise row
            item = parse_row(row)
            if item.id in seen:
                raise ValueError(f"duplicate id {item.id!r} (first on line {seen[item.id]})")
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
            continue
        seen[item.id] = line
        items.append(item)
    if problems and not skip_bad_rows:
        raise CatalogError(f"{path}: {len(problems)} bad row(s); fix them or pass --skip-bad-rows", problems)
    if not items:
        raise CatalogError(f"{path}: no usable items in the catalog", problems)
    return Catalog(items, source=str(path), warnings=problems)


def parse_row(row: Any) -> Item:
    """Validate one decoded row; raise ``ValueError`` naming the bad field."""
    if not isinstance(row, dict):
        raise ValueError(f"expected an object, got {type(row).__name__}")
    item_id = row.get("id")
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)
    if not isinstance(item_id, str) or not item_id.strip():
        raise ValueError("missing or empty 'id'")
    title = row.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("missing or empty 'title'")
    description = row.get("description") or ""
    if not isinstance(description, str):
        raise ValueError("'description' must be a string")
    category = row.get("category") or None
    if category is not None and not isinstance(category, str):
        raise ValueError("'category' must be a string")
    return Item(
        id=item_id.strip(),
        title=" ".join(title.split()),
        description=description.strip(),
        category=category.strip() if category else None,
        price=_parse_price(row.get("price")),
        attributes=_parse_attributes(row.get("attributes")),
    )


def _parse_price(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("'price' must be a number")
    try:
        price = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit integer
        raise ValueError(f"'price' must be a number, got {value!r:.40}") from None
    if not math.isfinite(price) or price < 0:
        raise ValueError(f"'price' must be a non-negative number, got {value!r}")
    return price


def _parse_attributes(value: Any) -> dict[str, AttrValue]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise ValueError("'attributes' must be an object of string to string/number/list")
    out: dict[str, AttrValue] = {}
    for key, val in value.items():
        if isinstance(val, bool) or not isinstance(val, (str, int, float, list)):
            raise ValueError(f"attribute {key!r} must be a string, number or list")
        if isinstance(val, list) and not all(isinstance(v, (str, int, float)) for v in val):
            raise ValueError(f"attribute {key!r} must be a list of strings or numbers")
        out[str(key)] = val
    return out


def _as_float(value: Any) -> float | None:
    try:
        number = float(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None
    # inf/nan (JSON 1e999, NaN) would break star ratings and int(review_count) at render time
    return number if number is not None and math.isfinite(number) else None


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    # Bytes, decoded line by line, so a bad byte is reported with its line like any other bad row.
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, ValueError(f"not UTF-8 text ({exc.reason} at column {exc.start + 1})")
                continue
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_no, ValueError(f"unparsable JSON ({exc.msg} at column {exc.colno})")
            except (ValueError, RecursionError) as exc:  # a 5000-digit number, nesting 100k deep
                yield line_no, ValueError(f"unparsable JSON ({str(exc)[:80]})")


def _read_csv(path: Path) -> Iterator[tuple[int, Any]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CatalogError(f"{path}:{line}: not UTF-8 text ({exc.reason}); save the file as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not reader.fieldnames or "id" not in reader.fieldnames or "title" not in reader.fieldnames:
            raise CatalogError(f"{path}:1: CSV header must name at least 'id' and 'title'")
        yield from _csv_rows(reader)
    except csv.Error as exc:  # an unclosed quote swallowing the file, a field over csv's size limit
        raise CatalogError(f"{path}:{reader.line_num + 1}: malformed CSV ({exc})") from None  # the line being read


def _csv_rows(reader: csv.DictReader) -> Iterator[tuple[int, Any]]:
    for row in reader:
        line = reader.line_num
        if None in row:
            yield line, ValueError("more fields than the header names")
            continue
        attrs = row.get("attributes")
        if attrs:
            try:
                row["attributes"] = json.loads(attrs)
            except (ValueError, RecursionError):
                yield line, ValueError("'attributes' column is not valid JSON")
                continue
        yield line, dict(row)
