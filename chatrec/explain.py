"""One-line "why" for a recommended item, built only from the item's own data and what the user said.

No LM and no invented facts: every clause quotes a catalog field (price, brand, rating, category,
a must-have word found in the item's text) checked against the dialogue state.
"""
from __future__ import annotations

from typing import Callable, Sequence

from .catalog import Item
from .facets import CREDIT_KEYS
from .matching import normalize
from .state import DialogueState


def explain(state: DialogueState, item: Item, currency: str = "£", wishes: Sequence[str] = (),
            era: tuple[int, int] | None = None, lookup: Callable[[str], Item | None] | None = None) -> str:
    """``wishes``: the ranker's understood labels ("Genre: comedy", "With: Jim Carrey",
    ``Ranker.understood``); ``era``: the years asked for (``Ranker.era_span``); ``lookup``: item id ->
    item, to name a liked film that shares a person with this one ("with Will Ferrell, as in Elf (2003)")."""
    prefs = state.prefs
    parts: list[str] = []
    if prefs.category and item.category == prefs.category:
        parts.append(f"in {item.category}")
    asked = {w.lower() for w in wishes}
    genres = [g for g in _values(item, "genre") if f"genre: {g}".lower() in asked]
    if genres:
        parts.append(", ".join(genres))  # "comedy, romance": the genres asked for that it has
    if item.year and era is not None and era[0] <= item.year <= era[1]:
        parts.append(f"from {item.year}")
    text = normalize(item.search_text())
    named = [w[6:] for w in wishes if w.startswith("With: ")]
    matched = [t for t in dict.fromkeys([*named, *prefs.must_have]) if normalize(t) and normalize(t) in text]
    people = [_credit(item, t) for t in matched]
    credited = list(dict.fromkeys(p for p in people if p))
    if credited:
        parts.append("with " + ", ".join(credited))  # "with Jim Carrey", as the catalog spells the name
    elif lookup is not None and (shared := _shared_with_liked(state, item, lookup)):
        parts.append(shared)
    if things := [t for t, p in zip(matched, people) if not p and t in prefs.must_have]:
        parts.append("has " + ", ".join(things))
    if item.price is not None and prefs.max_price is not None and item.price <= prefs.max_price:
        parts.append(f"{currency}{item.price:.2f} fits your budget ({prefs.budget_text(currency)})")
    elif item.price is not None and prefs.min_price is not None and item.price >= prefs.min_price:
        parts.append(f"{currency}{item.price:.2f}, within your range")
    if prefs.age is not None and (ages := item.age_range) is not None:  # older-only items are filtered already
        parts.append(f"for ages {ages[0]:g}+" if ages[1] is None else f"for ages {ages[0]:g}–{ages[1]:g}")
    if prefs.exclude:
        parts.append("no " + ", ".join(prefs.exclude))
    if item.rating is not None and item.rating >= 4.0:
        reviews = (f" from {item.review_count:,} review{'s' if item.review_count != 1 else ''}"
                   if item.review_count else "")
        parts.append(f"rated {item.rating:g}/5{reviews}")
    if not parts:
        if item.brand:
            parts.append(f"by {item.brand}")
        if item.category:
            parts.append(f"a {item.category} pick close to what you described")
    return "; ".join(parts)[:1].upper() + "; ".join(parts)[1:] if parts else "Close to what you described"


def reasons(state: DialogueState, items: Sequence[Item], ranker, catalog) -> list[str]:
    """``explain`` for each of ``items`` with what ``ranker`` follows now (its understood wishes and era)."""
    wishes, era = [label for label, _ in ranker.understood(state)], ranker.era_span(state)
    return [explain(state, item, wishes=wishes, era=era, lookup=catalog.get) for item in items]


def _values(item: Item, key: str) -> list[str]:
    value = item.attributes.get(key)
    return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]


def _shared_with_liked(state: DialogueState, item: Item, lookup: Callable[[str], Item | None]) -> str | None:
    """"with Will Ferrell, as in Elf (2003)": the first person credited on ``item`` and on a film the
    user named as liked or gave a thumbs-up."""
    liked = [*state.liked, *(i for i, s in state.mentioned.items() if s > 0 and i not in state.liked)]
    mine = {normalize(n): n for key in CREDIT_KEYS for n in _values(item, key)}
    for item_id in liked:
        other = lookup(item_id)
        if other is None or other.id == item.id:
            continue
        for key in CREDIT_KEYS:
            for name in _values(other, key):
                if normalize(name) in mine:
                    return f"with {mine[normalize(name)]}, as in {other.title}"
    return None


def _credit(item: Item, term: str) -> str | None:
    """The person credited on ``item`` that the must-have ``term`` names ("jim carrey" -> "Jim Carrey")."""
    for key in CREDIT_KEYS:
        value = item.attributes.get(key)
        for name in value if isinstance(value, list) else [value]:
            if isinstance(name, str) and normalize(name) == normalize(term):
                return name
    return None
