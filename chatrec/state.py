"""Typed dialogue state: the turns so far plus what we know the user wants.

One ``DialogueState`` per conversation (one per browser session in the UI), deep-copyable so
Gradio can keep it in ``gr.State``; nothing here is shared between sessions. The state is
updated by ``tracker.py`` (from user text) and by feedback (thumbs); ``ranker.py`` reads it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Literal

from .lexical import spell_emoji

Role = Literal["user", "assistant"]


@dataclass
class Message:
    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass
class Preferences:
    """Constraints stated by the user. Prices are in the catalog's currency."""

    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    must_have: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    age: float | None = None  # age in years of whoever it is for ("my 4 year old", "for ages 3+")
    # must-haves asked for as what films are about ("zombie movies") -> the user turn that last asked;
    # unlike "with dinosaurs", they fade as later turns ask for other things ("actually, some westerns")
    topic_turns: dict[str, int] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.category or self.min_price is not None or self.max_price is not None
                    or self.must_have or self.exclude or self.age is not None)

    def age_text(self) -> str | None:
        """Whom it is for: "a 4-year-old", "an 18-month-old"."""
        if self.age is None:
            return None
        n, unit = (round(self.age * 12), "month") if self.age < 2 and self.age != 1 else (self.age, "year")
        number = f"{n:g}"
        article = "an" if number in ("11", "18") or number.startswith("8") else "a"
        return f"{article} {number}-{unit}-old"

    def budget_text(self, currency: str = "£") -> str | None:
        lo, hi = self.min_price, self.max_price
        if lo is not None and hi is not None:
            return f"{currency}{_amount(lo)}–{currency}{_amount(hi)}"
        if hi is not None:
            return f"under {currency}{_amount(hi)}"
        if lo is not None:
            return f"over {currency}{_amount(lo)}"
        return None



@dataclass
class DialogueState:
    conversation_id: str | None = None
    messages: list[Message] = field(default_factory=list)
    prefs: Preferences = field(default_factory=Preferences)
    mentioned: dict[str, int] = field(default_factory=dict)  # item id -> +1 liked, 0 neutral, -1 disliked
    shown: list[str] = field(default_factory=list)  # item ids already recommended, oldest first
    liked: list[str] = field(default_factory=list)  # item ids given thumbs-up
    rejected: list[str] = field(default_factory=list)  # item ids given thumbs-down or refused in text
    last_shown: list[str] = field(default_factory=list)  # item ids the latest assistant message suggested
    times_shown: dict[str, int] = field(default_factory=dict)  # item id -> assistant turns that suggested it
    own_picks: set[str] = field(default_factory=set)  # shown items that this recommender picked itself
    asked: list[str] = field(default_factory=list)  # items the latest user message asks about or has not seen
    unseen: dict[str, None] = field(default_factory=dict)  # items named as not seen yet or wanted ("on my list"), in order
    last_named: list[str] = field(default_factory=list)  # items the latest user message naming any named (not refused)
    wants_more: bool = False  # the latest user message asks for others than those shown ("anything else?")
    wants_pick: bool = False  # the latest user message asks which one of the suggestions to take ("which is best?")
    narrowed: bool = False  # the latest user message changed a filter: budget, age or exclusions ("under £20")
    dropped: dict[str, int] = field(default_factory=dict)  # wish unticked ("era", "genre:comedy") -> user turns then
    turn_ids: list[int | None] = field(default_factory=list)  # store id of each assistant message
    title_spans: dict[int, list[tuple[int, int, str]]] = field(default_factory=dict)  # user turn -> names in it

    @property
    def n_turns(self) -> int:
        return sum(1 for m in self.messages if m.role == "user")

    def user_texts(self) -> list[str]:
        return [m.content for m in self.messages if m.role == "user"]

    def said(self, titles: bool = True, keep: Callable[[str, str], bool] | None = None) -> list[str]:
        """The user's turns as the pipeline reads them: a pictograph that names a thing in words
        ("🦖" -> "t-rex"), as ``tracker`` reads each message. ``titles=False``: the items' names the
        tracker found blanked out, for what the user asks for in words: "I loved Scary Movie" asks
        for no horror, and "not Pulp Fiction" searches for no fiction; but those for which
        ``keep(item_id, name)`` is true."""
        texts = [spell_emoji(t) for t in self.user_texts()]
        if titles:
            return texts
        for turn, spans in self.title_spans.items():
            if turn < len(texts):
                text = texts[turn]
                for start, end, item_id in spans:
                    if keep is None or not keep(item_id, text[start:end]):
                        text = text[:start] + " " * (end - start) + text[end:]
                texts[turn] = text
        return texts

    def naming_shares(self) -> dict[str, float]:
        """Item id -> the share of one naming it got: 1/n for each of the n films one phrase named
        ("all the Harry Potter movies": 8 films, 1/8 each), the largest over the turns naming it."""
        shares: dict[str, float] = {}
        for spans in self.title_spans.values():
            by_phrase: dict[tuple[int, int], list[str]] = {}
            for start, end, item_id in spans:
                by_phrase.setdefault((start, end), []).append(item_id)
            for ids in by_phrase.values():
                for item_id in ids:
                    shares[item_id] = max(shares.get(item_id, 0.0), 1.0 / len(ids))
        return shares

    def to_messages(self) -> list[dict[str, str]]:
        return [m.to_dict() for m in self.messages]

    def suggested(self, item_ids: list[str], own: bool = False) -> None:
        """An assistant turn suggested ``item_ids``: they are the latest suggestions, and shown once more.
        ``own``: this recommender's picks, rather than a recorded assistant's (a replayed dialogue)."""
        self.last_shown = list(item_ids)
        if own:
            self.own_picks.update(item_ids)
        for item_id in dict.fromkeys(item_ids):
            if item_id not in self.shown:
                self.shown.append(item_id)
            self.times_shown[item_id] = self.times_shown.get(item_id, 0) + 1

    def like(self, item_id: str) -> None:
        if item_id in self.rejected:
            self.rejected.remove(item_id)
        if item_id not in self.liked:
            self.liked.append(item_id)

    def reject(self, item_id: str) -> None:
        if item_id in self.liked:
            self.liked.remove(item_id)
        if item_id not in self.rejected:
            self.rejected.append(item_id)

    def copy(self) -> "DialogueState":
        return copy.deepcopy(self)

    def summary(self) -> dict[str, object]:
        """What we understood, as plain data for prompts and the UI panel."""
        p = self.prefs
        return {
            "category": p.category,
            "budget": p.budget_text(),
            "age": p.age_text(),
            "must_have": list(p.must_have),
            "exclude": list(p.exclude),
            "liked": list(self.liked) + [i for i, s in self.mentioned.items() if s > 0 and i not in self.liked],
            "rejected": list(self.rejected),
        }


def _amount(value: float) -> str:
    """40 -> "40", 7.2 -> "7.20", 12.5 -> "12.50"."""
    return f"{value:g}" if value == int(value) else f"{value:.2f}"
