"""One-line "why" for a recommended item, built only from the item's own data and what the user said.

No LM and no invented facts: every clause quotes a catalog field (price, brand, rating, category,
a must-have word found in the item's text) checked against the dialogue state.
"""
from __future__ import annotations

from .catalog import Item
from .facets import CREDIT_KEYS
from .matching import normalize
from .state import DialogueState


def explain(state: DialogueState, item: Item, currency: str = "£") -> str:
    prefs = state.prefs
    parts: list[str] = []
    if prefs.category and item.category == prefs.category:
        parts.append(f"in {item.category}")
    text = normalize(item.search_text())
    matched = [t for t in prefs.must_have if normalize(t) and normalize(t) in text]
    people = [_credit(item, t) for t in matched]
    if credited := [p for p in people if p]:
        parts.append("with " + ", ".join(credited))  # "with Jim Carrey", as the catalog spells the name
    if things := [t for t, p in zip(matched, people) if not p]:
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


def _credit(item: Item, term: str) -> str | None:
    """The person credited on ``item`` that the must-have ``term`` names ("jim carrey" -> "Jim Carrey")."""
    for key in CREDIT_KEYS:
        value = item.attributes.get(key)
        for name in value if isinstance(value, list) else [value]:
            if isinstance(name, str) and normalize(name) == normalize(term):
                return name
    return None
