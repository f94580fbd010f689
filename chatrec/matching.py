"""Finding catalog titles in text: exact, normalised and fuzzy (rapidfuzz) title matching.

Two questions, one index:
- ``find_in_text``: which catalog items does this free text name? (the user's "I loved The
  Babadook", or an LM reply that names items without markers)
- ``match_phrase``: which item is this one phrase? (a span the LM marked as an item)

Titles are indexed under several *variants* (normalised full title, without a trailing year,
without a leading article, without a leading brand) so "the babadook", "Babadook (2014)" and
"babadook" all hit. Fuzzy matching only looks at items sharing a rare word with the phrase
or a close spelling of a word that is in no title (blocking; typos are found through an index of
one-deletion neighbours, built on first use), which keeps it fast on large catalogs. ``match_phrase``
also knows names people drop details from ("Pen (Multi-Colour)" -> "pen", "X - Deluxe" -> "x"),
MovieLens-style trailing articles ("Rock, The (1996)") and partial titles (the first words of exactly
one title). Embedding similarity is not done here; the grounder adds it as a last resort.
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
_DETAIL = re.compile(r"\s*\([^()]*\)\s*$")  # a trailing "(...)"
_DASH_DETAIL = re.compile(r"\s+-\s+[^-]*$")  # a trailing " - ..."
_ARTICLE_LAST = re.compile(r"^(.+?),\s*(the|a|an)(\s*\((?:19|20)\d\d\))?$", re.I)
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
    # Partial names people use: "Star Wars" / "The Last Jedi" for "Star Wars: The Last Jedi (2017)".
    parts = re.split(r"\s*:\s+|\s+[–-]\s+", _YEAR.sub("", title))
    for part in (parts[0], parts[-1]) if len(parts) > 1 else ():
        words = normalize(part).split()
        if len(words) >= 2 and not all(w in COMMON_WORDS for w in words):
            variants.add(" ".join(words))
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
        self.aliases = self._aliases(catalog)
        self._deletes: dict[str, list[str]] | None = None  # typo index, built on first use

    def _aliases(self, catalog: Catalog) -> dict[str, list[str]]:
        """Extra names for phrase matching only (``find_in_text`` does not use them): the title
        without a trailing "(...)" / " - ..." detail ("Avengers Pen (Multi-Colour)" -> "avengers pen")
        and with a trailing article moved to the front ("Rock, The (1996)" -> "the rock 1996")."""
        aliases: dict[str, list[str]] = defaultdict(list)
        for item in catalog:
            names = {normalize(_DETAIL.sub("", item.title)), normalize(_DASH_DETAIL.sub("", item.title))}
            front = _ARTICLE_LAST.sub(r"\2 \1\3", item.title)
            if front != item.title:
                names |= title_variants(front, item.brand)
            for name in names:
                if len(name.split()) >= 2 and name not in self.variants and item.id not in aliases[name]:
                    aliases[name].append(item.id)
                    self._add_key(name, item.id)
        return aliases

    def _add_key(self, key: str, item_id: str) -> None:
        for word in set(key.split()):
            self.word_index[word].add(len(self.keys))
        self.keys.append(key)
        self.key_items.append(item_id)

    # -- one phrase ---------------------------------------------------------------------------
    def match_phrase(self, phrase: str, min_score: float = 0.88) -> Match | None:
        """The best catalog item for a phrase meant to name one item, or None.

        exact title (1.0) -> normalised variant (0.99) -> title without its trailing detail, if
        only one item has it (0.95) -> fuzzy (rapidfuzz ratio >= ``min_score``, or a word prefix
        covering most of exactly one title).
        """
        exact = self.exact.get(phrase.strip().lower())
        if exact:
            return Match(exact, 1.0, "exact", text=phrase)
        norm = normalize(phrase)
        front = normalize(_ARTICLE_LAST.sub(r"\2 \1\3", phrase.strip()))  # "Rock, The (1996)"
        if not norm:
            return None
        ids = self.variants.get(norm) or self.variants.get(front)
        if ids:
            return Match(self._closest(ids, norm), 0.99, "normalized", text=phrase)
        ids = self.aliases.get(norm) or self.aliases.get(front)
        if ids and len(ids) == 1:
            return Match(ids[0], 0.95, "normalized", text=phrase)
        return self._fuzzy(front, min_score, phrase)

    def _fuzzy(self, norm: str, min_score: float, phrase: str) -> Match | None:
        words = [w for w in set(norm.split()) if w not in COMMON_WORDS] or norm.split()
        known = sorted((w for w in words if w in self.word_index), key=lambda w: len(self.word_index[w]))
        # Blocking: candidate titles share one of the phrase's two rarest known words, or a close
        # spelling of a word that is in no title (a typo).
        block: set[int] = set()
        for w in known[:2]:
            if len(self.word_index[w]) <= 5000:
                block.update(self.word_index[w])
        block |= self._typo_block([w for w in words if w not in self.word_index])
        if not block:
            return None
        cand = list(block)
        choices = [self.keys[k] for k in cand]
        hits = process.extract(norm, choices, scorer=fuzz.ratio, score_cutoff=min_score * 100, limit=8)
        # A phrase that is the beginning of exactly one title beats a near-miss spelling of another.
        prefix = self._prefix(norm, cand, phrase) if not hits or hits[0][1] < 97 else None
        if prefix is not None or not hits:
            return prefix
        top = [self.key_items[cand[pos]] for _, score, pos in hits if score == hits[0][1]]
        return Match(self._closest(top, norm), hits[0][1] / 100.0, "fuzzy", text=phrase)

    def _closest(self, ids: list[str], norm: str) -> str:
        """Among items tied on a shared name ("Frozen", "Frozen (2010)"), the one whose full title is closest."""
        if len(ids) == 1:
            return ids[0]
        return max(ids, key=lambda i: fuzz.ratio(norm, normalize(self.catalog.by_id[i].title)))

    def _prefix(self, norm: str, cand: list[int], phrase: str) -> Match | None:
        """A partial title: the first words of exactly one title, covering most of it."""
        if len(norm.split()) < 3:
            return None
        hits = {self.key_items[k] for k in cand
                if self.keys[k].startswith(norm + " ") and len(norm) >= 0.6 * len(self.keys[k])}
        return Match(hits.pop(), 0.9, "fuzzy", text=phrase) if len(hits) == 1 else None

    def _typo_block(self, words: list[str]) -> set[int]:
        """Titles containing an indexed word one edit away from a misspelt word (a deletion index)."""
        words = [w for w in words if len(w) >= 4 and not w.isdigit()][:3]
        if not words:
            return set()
        if self._deletes is None:
            self._deletes = defaultdict(list)
            for known in self.word_index:
                if len(known) >= 3:
                    for d in _deletions(known):
                        self._deletes[d].append(known)
        block: set[int] = set()
        for w in words:
            near = {k for d in _deletions(w) for k in self._deletes.get(d, ())}
            for known in near:
                if fuzz.ratio(w, known) >= 75 and len(self.word_index[known]) <= 5000:
                    block.update(self.word_index[known])
        return block

    # -- free text ---------------------------------------------------------------------------
    def find_in_text(self, text: str) -> list[Match]:
        """Non-overlapping item mentions in ``text``, longest match first, in text order."""
        tokens = [(m.start(), m.end(), normalize(m.group())) for m in re.finditer(r"[\w'’&]+", text)]
        tokens = [(a, b, self._spelled(w)) for a, b, w in tokens if w]
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
                item_id = self._pick_year(ids, text[start:end], phrase)
                found.append(Match(item_id, 1.0 if n > 1 else 0.9, "exact", start, end, text[start:end]))
                for j in range(i, i + n):
                    taken[j] = True
        return sorted(found, key=lambda m: m.start)

    def _spelled(self, word: str) -> str:
        """A long word no title contains ("babadok") -> the title word one typo away ("babadook").

        One edit, same first letter, words of 6+ letters only: short words have too many
        neighbours ("hte" could be many things), and a wrong fix only matters if it then
        completes a whole title."""
        if len(word) < 6 or word in self.word_index or word.isdigit():
            return word
        fixes = self.__dict__.setdefault("_spell_cache", {})
        if word not in fixes:
            if self._deletes is None:
                self._typo_block([word])  # builds the deletion index shared with match_phrase
            near = {k for d in _deletions(word) for k in (self._deletes or {}).get(d, ())}
            near = sorted(k for k in near if k[0] == word[0] and abs(len(k) - len(word)) <= 1)
            fixes[word] = near[0] if len(near) == 1 else word
        return fixes[word]

    def _plausible(self, text: str, toks: list[tuple[int, int, str]], phrase: str) -> bool:
        if len(toks) > 1:
            # "Get Out", "Inside Out": all common words, so only when written as a title.
            return (not all(t[2] in COMMON_WORDS for t in toks)
                    or all(text[a:a + 1].isupper() for a, _, _ in toks))
        # A one-word title must look like a name: not a common word, written capitalised.
        word = text[toks[0][0]:toks[0][1]]
        return phrase not in COMMON_WORDS and len(phrase) >= 3 and word[:1].isupper()

    def _pick_year(self, ids: list[str], surface: str, phrase: str = "") -> str:
        """Several items share the name: the one with the year written after it, else the one whose
        whole title is the name ("Star Wars (1977)", not "Star Wars: The Clone Wars"), else the first."""
        if len(ids) > 1:
            year = re.search(r"\((\d{4})\)", surface)
            if year:
                for item_id in ids:
                    if f"({year.group(1)})" in self.catalog.by_id[item_id].title:
                        return item_id
            for item_id in ids:
                if normalize(_YEAR.sub("", self.catalog.by_id[item_id].title)) in (phrase, "the " + phrase):
                    return item_id
        return ids[0]


def _deletions(word: str) -> set[str]:
    """The word and every string one deletion away: two words one edit apart share one of these."""
    return {word} | {word[:i] + word[i + 1:] for i in range(len(word))}


def _extend_year(text: str, end: int) -> int:
    m = re.match(r"\s*\((?:19|20)\d\d\)", text[end:])
    return end + m.end() if m else end
