"""Grounding: map every item the LM names to a catalog id, or flag it as not in the catalog.

Three kinds of mention in a reply:
1. marked spans ``[[Title]]`` (constrained decoding makes these exact candidate titles when the
   backend supports it; otherwise they are matched like any phrase);
2. catalog titles written in free text (found by ``TitleMatcher.find_in_text``);
3. item-like phrases (``**bold**``, "quoted", list-item heads) that may name an invented product;
   a bold or quoted phrase is grounded whole or flagged whole, never matched in part.
Each phrase goes exact -> normalised -> fuzzy (rapidfuzz) -> embedding similarity, each with its
own threshold (``fuzzy_min`` tuned with ``benchmarks/grounding.py --tune`` on one seed of
perturbed and invented mentions, reported on another). Only grounded mentions can become recommendations; the rest are returned as
``ungrounded`` so they are logged and flagged in the reply, never shown as items.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Sequence

from .catalog import Catalog, Item
from .constrained import span_pattern
from .index import EmbeddingIndex
from .matching import TitleMatcher, normalize

log = logging.getLogger(__name__)
_BOLD = re.compile(r"\*\*([^*\n]{3,120})\*\*")
_QUOTED = re.compile(r"[\"“]([^\"”\n]{3,120})[\"”]")
_LIST_HEAD = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+([^\n:–—]{3,120}?)\s*(?:[:–—]| - |\(|$)", re.M)


@dataclass(frozen=True)
class GroundedMention:
    text: str
    item_id: str | None
    method: str  # span | exact | normalized | fuzzy | embedding | none
    confidence: float
    start: int
    end: int
    source: str  # span | text

    @property
    def grounded(self) -> bool:
        return self.item_id is not None


@dataclass
class Grounding:
    mentions: list[GroundedMention] = field(default_factory=list)

    @property
    def grounded(self) -> list[GroundedMention]:
        return [m for m in self.mentions if m.grounded]

    @property
    def ungrounded(self) -> list[GroundedMention]:
        return [m for m in self.mentions if not m.grounded]

    def item_ids(self) -> list[str]:
        """Grounded item ids in reply order, without repeats."""
        seen: dict[str, None] = {}
        for m in sorted(self.grounded, key=lambda m: m.start):
            seen.setdefault(m.item_id, None)  # type: ignore[arg-type]
        return list(seen)


class Grounder:
    def __init__(self, catalog: Catalog, matcher: TitleMatcher, index: EmbeddingIndex | None = None,
                 markers: tuple[str, str] = ("[[", "]]"), fuzzy_min: float = 0.90, embedding_min: float = 0.90):
        self.catalog = catalog
        self.matcher = matcher
        self.index = index
        self.fuzzy_min = fuzzy_min
        # 0.90, not lower: with all-MiniLM-L6-v2 the invented "Decision Ventura The Ace" scores 0.854
        # against "Ace Ventura" (benchmarks/grounding.py --embedder, ReDial).
        self.embedding_min = embedding_min
        self.open, self.close = markers
        self._span = span_pattern(self.open, self.close)  # the reading the constraint guarantees

    def ground(self, reply: str, candidates: Sequence[Item] = ()) -> Grounding:
        mentions: list[GroundedMention] = []
        covered = [False] * len(reply)
        by_title = {c.title: c.id for c in candidates}
        for m in self._span.finditer(reply):
            phrase = m.group(1)  # unstripped first: a candidate title may itself start with a space
            item_id, method, conf = self.ground_phrase(phrase, by_title)
            mentions.append(GroundedMention(phrase.strip(), item_id, method if item_id else "none", conf,
                                            m.start(), m.end(), "span"))
            covered[m.start():m.end()] = [True] * (m.end() - m.start())
        unfinished = self._unfinished_span(reply, covered, by_title)
        if unfinished is not None:
            mentions.append(unfinished)
            covered[unfinished.start:] = [True] * (len(reply) - unfinished.start)
        # A **bold** or "quoted" phrase is written as one name: grounded whole or flagged whole, so an
        # invented "**Knew Fences Much**" is not half-matched to "Fences (2016)" (a title that holds
        # quotes, 'Rocking Horse "Champion"', still matches whole). Then list-item heads (which may be
        # whole sentences, so they come last).
        declared = [(a, b) for a, b, _ in _item_like_phrases(reply, (_BOLD, _QUOTED))]
        masked = "".join(" " if c else ch for ch, c in zip(reply, covered))
        for match in self.matcher.find_in_text(masked):
            inside = any(a <= match.start and match.end <= b and (a, b) != (match.start, match.end)
                         for a, b in declared)
            if inside or len(normalize(match.text)) < 4:
                continue
            mentions.append(GroundedMention(match.text, match.item_id, "exact", match.score,
                                            match.start, match.end, "text"))
            covered[match.start:match.end] = [True] * (match.end - match.start)
        mentions += self._phrases(reply, (_BOLD, _QUOTED, _LIST_HEAD), covered, by_title)
        mentions.sort(key=lambda m: m.start)
        for m in mentions:
            if not m.grounded:  # named by the LM, in no catalog: flagged in the reply, never recommended
                log.info("ungrounded mention %r (%s)", m.text, m.source)
        return Grounding(mentions)

    def _phrases(self, reply: str, patterns, covered: list[bool], by_title: dict[str, str]) -> list[GroundedMention]:
        """Ground every item-like phrase of ``patterns`` not yet covered (and mark it covered)."""
        out = []
        for start, end, phrase in _item_like_phrases(reply, patterns):
            if any(covered[start:end]):
                continue
            item_id, method, conf = self.ground_phrase(phrase, by_title)
            out.append(GroundedMention(phrase, item_id, method if item_id else "none", conf, start, end, "text"))
            covered[start:end] = [True] * (end - start)
        return out

    def _unfinished_span(self, reply: str, covered: list[bool], by_title: dict[str, str]) -> GroundedMention | None:
        """A span the model was cut off in (max tokens): grounded when it starts exactly one candidate
        title, which is what constrained decoding was writing; otherwise matched like any phrase."""
        start = reply.rfind(self.open)
        if start < 0 or covered[start] or self.close in reply[start:] or "\n" in reply[start:]:
            return None  # a span is cut off only at the very end, on the last line
        phrase = reply[start + len(self.open):].strip()
        if not phrase:
            return None
        owners = [item_id for title, item_id in by_title.items() if title.startswith(phrase)]
        if len(set(owners)) == 1:
            return GroundedMention(phrase, owners[0], "span", 0.9, start, len(reply), "span")
        item_id, method, conf = self.ground_phrase(phrase, by_title)
        return GroundedMention(phrase, item_id, method if item_id else "none", conf, start, len(reply), "span")

    def ground_phrase(self, phrase: str, preferred: dict[str, str] | None = None) -> tuple[str | None, str, float]:
        """(item id or None, method, confidence) for one phrase meant to name an item."""
        if preferred:
            for key in (phrase, phrase.strip()):
                if key in preferred:
                    return preferred[key], "span", 1.0
        match = self.matcher.match_phrase(phrase, min_score=self.fuzzy_min)
        if match:
            return match.item_id, match.method, match.score
        if self.index is not None and self.index.embedder is not None and len(phrase) >= 6:
            vec = self.index.encode([phrase])[0]
            top, sims = self.index.search(vec, 1)
            if len(top) and sims[0] >= self.embedding_min:
                return self.catalog.items[int(top[0])].id, "embedding", float(sims[0])
        return None, "none", 0.0


def _item_like_phrases(text: str, patterns=(_BOLD, _QUOTED, _LIST_HEAD)) -> list[tuple[int, int, str]]:
    """Spans that look like product names: bold, quoted, or heading a list item."""
    out: list[tuple[int, int, str]] = []
    for pattern in patterns:
        for m in pattern.finditer(text):
            phrase = m.group(1).strip().strip("*").strip()
            if len(phrase.split()) <= 14 and len(phrase) >= 3 and not phrase.endswith("?"):
                out.append((m.start(1), m.end(1), phrase))
    return out


def render_reply(reply: str, grounding: Grounding, markers: tuple[str, str] = ("[[", "]]")) -> str:
    """Reply text for display: grounded items in bold, ungrounded ones struck through and flagged."""
    out, last = [], 0
    for m in sorted(grounding.mentions, key=lambda m: m.start):
        start, end = m.start, m.end
        if not m.grounded and reply[start - 2:start] == "**" == reply[end:end + 2]:
            start, end = start - 2, end + 2  # a struck-through flag, not a bold one
        if start < last:
            continue
        out.append(reply[last:start])
        surface = reply[m.start:m.end]
        if m.source == "span":
            closed = surface.endswith(markers[1])
            surface = surface[len(markers[0]):len(surface) - len(markers[1]) * closed]
            surface += "" if closed or not m.grounded else "…"  # cut off mid-title
        if m.grounded:
            title = surface if m.source == "text" else surface.strip()
            out.append(f"**{title}**" if m.source == "span" else surface)
        else:
            out.append(f"~~{surface}~~ _(not in our catalog)_")
        last = end
    out.append(reply[last:])
    text = "".join(out)
    # An unfinished span (the model stopped mid-item) must not leave raw markers behind.
    return text.replace(markers[0], "").replace(markers[1], "")

