"""Finding catalog titles in text: exact, normalised and fuzzy (rapidfuzz) title matching.

Two questions, one index:
- ``find_in_text``: which catalog items does this free text name? (the user's "I loved The
  Babadook", or an LM reply that names items without markers)
- ``match_phrase``: which item is this one phrase? (a span the LM marked as an item)

Titles are indexed under several *variants* (normalised full title, without a trailing year,
without a leading article, without a leading brand) so "the babadook", "Babadook (2014)" and
"babadook" all hit. Fuzzy matching only looks at items sharing a rare word with the phrase
(blocking), which keeps it fast on large catalogs. Embedding similarity is not done here; the
grounder adds it as a last resort.
"""
from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from .catalog import Catalog

_YEAR = re.compile(r"\s*\((?:19|20)\d\d\)\s*$")
_NON_WORD = re.compile(r"[^\w]+")
_ARTICLES = ("the ", "a ", "an ")
# Words too common to name an item on their own ("It", "Up", "Her" are real movie titles).
COMMON_WORDS = frozenset("""
a about after again all also always am an and any are as at away back bad be because been before
being best better big both but by can come could day did do does done down each even ever every
family few find first for from fun get give go going good great had has have he her here him his
home how i if in into is it its just keep kind know last life like little look love made make man
many may me more most much must my need never new next nice night no not now of off old on one only
or other our out over people play please really right said same say see seen set she should show so
some something still such sure take than that the their them then there these they thing think this
those time to too two up us very want was watch way we well were what when where which while who
why will with without would yes yet you your yours movie movies film films toy toys game games gift
""".split())


def normalize(text: str) -> str:
    """Lower-case, strip accents and punctuation, collapse spaces: 'Pokémon: The Movie!' -> 'pokemon the movie'."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.lower().replace("&", " and ").replace("'", "").replace("’", "")
    return " ".join(_NON_WORD.sub(" ", text).split())


def title_variants(title: str, brand: str | None = None) -> set[str]:
    base = normalize(title)
    variants = {base}
    no_year = normalize(_YEAR.sub("", title))
    variants.add(no_year)
    for v in list(variants):
        for article in _ARTICLES:
            if v.startswith(article) and len(v) > len(article) + 3:
                variants.add(v[len(article):])
    if brand:
        b = normalize(brand)
        for v in list(variants):
            if b and v.startswith(b + " ") and len(v) - len(b) > 6:
                variants.add(v[len(b) + 1:])
    return {v for v in variants if v}


@dataclass(frozen=True)
class Match:
    item_id: str
    score: float  # 0..1
    method: str  # exact | normalized | fuzzy | embedding
    start: int = 0  # character offsets in the searched text (find_in_text only)
    end: int = 0
    text: str = ""


class TitleMatcher:
    def __init__(self, catalog: Catalog, max_words: int = 12):
        self.catalog = catalog
        self.exact: dict[str, str] = {}
        self.variants: dict[str, list[str]] = defaultdict(list)
        self.word_index: dict[str, set[int]] = defaultdict(set)
        self.keys: list[str] = []
        self.key_items: list[str] = []
        for item in catalog:
            self.exact.setdefault(item.title.strip().lower(), item.id)
            for variant in title_variants(item.title, item.brand):
                if item.id not in self.variants[variant]:
                    self.variants[variant].append(item.id)
                    k = len(self.keys)
                    self.keys.append(variant)
                    self.key_items.append(item.id)
                    for word in set(variant.split()):
                        self.word_index[word].add(k)
        self.max_words = max(max_words, max((len(k.split()) for k in self.keys), default=1))
        self.max_words = min(self.max_words, 24)

    # -- one phrase ---------------------------------------------------------------------------
    def match_phrase(self, phrase: str, min_score: float = 0.88) -> Match | None:
        """The best catalog item for a phrase meant to name one item, or None."""
        exact = self.exact.get(phrase.strip().lower())
        if exact:
            return Match(exact, 1.0, "exact", text=phrase)
        norm = normalize(phrase)
        if not norm:
            return None
        ids = self.variants.get(norm)
        if ids:
            return Match(ids[0], 0.99, "normalized", text=phrase)
        return self._fuzzy(norm, min_score, phrase)

    def _fuzzy(self, norm: str, min_score: float, phrase: str) -> Match | None:
        words = [w for w in set(norm.split()) if w not in COMMON_WORDS] or norm.split()
        # Blocking: candidate titles share at least one of the phrase's two rarest words.
        words.sort(key=lambda w: len(self.word_index.get(w, ())))
        block: set[int] = set()
        for w in words[:2]:
            postings = self.word_index.get(w, ())
            if len(postings) <= 5000:
                block.update(postings)
        if not block:
            block = self._typo_block(words)
        if not block:
            return None
        cand = list(block)
        choices = [self.keys[k] for k in cand]
        best = process.extractOne(norm, choices, scorer=fuzz.ratio, score_cutoff=min_score * 100)
        if best is None:
            return None
        _, score, pos = best
        return Match(self.key_items[cand[pos]], score / 100.0, "fuzzy", text=phrase)

    def _typo_block(self, words: list[str]) -> set[int]:
        """Words with a typo are in no posting list: look up their closest indexed spellings."""
        vocab = list(self.word_index)
        block: set[int] = set()
        for w in words[:2]:
            if len(w) < 4:
                continue
            for near, _, _ in process.extract(w, vocab, scorer=fuzz.ratio, score_cutoff=80, limit=3):
                postings = self.word_index[near]
                if len(postings) <= 5000:
                    block.update(postings)
        return block

    # -- free text ---------------------------------------------------------------------------
    def find_in_text(self, text: str) -> list[Match]:
        """Non-overlapping item mentions in ``text``, longest match first, in text order."""
        tokens = [(m.start(), m.end(), normalize(m.group())) for m in re.finditer(r"[\w'’&]+", text)]
        tokens = [t for t in tokens if t[2]]
        taken = [False] * len(tokens)
        found: list[Match] = []
        for n in range(min(self.max_words, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                if any(taken[i:i + n]):
                    continue
                phrase = " ".join(t[2] for t in tokens[i:i + n])
                ids = self.variants.get(phrase)
                if not ids or not self._plausible(text, tokens[i:i + n], phrase):
                    continue
                start, end = tokens[i][0], tokens[i + n - 1][1]
                end = _extend_year(text, end)
                item_id = self._pick_year(ids, text[start:end])
                found.append(Match(item_id, 1.0 if n > 1 else 0.9, "exact", start, end, text[start:end]))
                for j in range(i, i + n):
                    taken[j] = True
        return sorted(found, key=lambda m: m.start)

    def _plausible(self, text: str, toks: list[tuple[int, int, str]], phrase: str) -> bool:
        if len(toks) > 1:
            return not all(t[2] in COMMON_WORDS for t in toks)
        # A one-word title must look like a name: not a common word, written capitalised.
        word = text[toks[0][0]:toks[0][1]]
        return phrase not in COMMON_WORDS and len(phrase) >= 3 and word[:1].isupper()

    def _pick_year(self, ids: list[str], surface: str) -> str:
        if len(ids) > 1:
            year = re.search(r"\((\d{4})\)", surface)
            if year:
                for item_id in ids:
                    if f"({year.group(1)})" in self.catalog.by_id[item_id].title:
                        return item_id
        return ids[0]


def _extend_year(text: str, end: int) -> int:
    m = re.match(r"\s*\((?:19|20)\d\d\)", text[end:])
    return end + m.end() if m else end
