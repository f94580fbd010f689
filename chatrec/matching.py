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
one title). Free text needs evidence that words are a name, because partial names and short titles
are often plain language ("ages 5", "harry potter", "action man", "Paul"): see ``_text_owners``.
Embedding similarity is not done here; the grounder adds it as a last resort.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from .catalog import Catalog
from .lexical import FILLER

_YEAR = re.compile(r"\s*\((?:19|20)\d\d\)\s*$")
_NON_WORD = re.compile(r"[^\w]+")
_DETAIL = re.compile(r"\s*\([^()]*\)\s*$")  # a trailing "(...)"
_DASH_DETAIL = re.compile(r"\s+-\s+[^-]*$")  # a trailing " - ..."
_ARTICLE_LAST = re.compile(r"^(.+?),\s*(the|a|an)(\s*\((?:19|20)\d\d\))?$", re.I)
_ARTICLES = ("the ", "a ", "an ")
_YEAR_AFTER = re.compile(r"\s*\(?(?:19|20)\d\d\b\)?")  # "(2009)", or "2009" with the brackets dropped
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
    """Every normalised name ``title`` is indexed under (full and partial, see ``variant_kinds``)."""
    full, partial = variant_kinds(title, brand)
    return full | partial


def variant_kinds(title: str, brand: str | None = None) -> tuple[set[str], set[str]]:
    """(full names, partial names) of a title.

    Full names are the whole title up to spelling: normalised, without a trailing year, without a
    leading article ("The Babadook (2014)" -> "babadook"). Partial names drop part of it: one side
    of a ": " or " - " ("Harry Potter - Marauder's Map" -> "harry potter") or a leading brand
    ("Smencils Graphite Pencils" -> "graphite pencils"). Partial names are often product lines or
    generic phrases, so free text needs distinctive evidence before it matches one.
    """
    base = normalize(title)
    full = {base, normalize(_YEAR.sub("", title))}
    for v in list(full):
        for article in _ARTICLES:
            if v.startswith(article) and len(v) > len(article) + 3:
                full.add(v[len(article):])
    partial: set[str] = set()
    # Partial names people use: "Star Wars" / "The Last Jedi" for "Star Wars: The Last Jedi (2017)".
    parts = re.split(r"\s*:\s+|\s+[–-]\s+", _YEAR.sub("", title))
    for part in (parts[0], parts[-1]) if len(parts) > 1 else ():
        words = normalize(part).split()
        if len(words) >= 2 and not all(w in COMMON_WORDS for w in words):
            partial.add(" ".join(words))
    if brand:
        b = normalize(brand)
        for v in full | partial:
            if b and v.startswith(b + " ") and len(v) - len(b) > 6:
                partial.add(v[len(b) + 1:])
    full.discard("")
    return full, {v for v in partial if v and v not in full}


@dataclass(frozen=True)
class Match:
    item_id: str
    score: float  # 0..1
    method: str  # exact | normalized | fuzzy | embedding
    start: int = 0  # character offsets in the searched text (find_in_text only)
    end: int = 0
    text: str = ""


class TitleMatcher:
    def __init__(self, catalog: Catalog, max_words: int = 12, popularity: Sequence[float] | None = None):
        self.catalog = catalog
        self.exact: dict[str, str] = {}
        self.variants: dict[str, list[str]] = defaultdict(list)  # every name -> items (full or partial)
        self.full: dict[str, list[str]] = defaultdict(list)  # whole-title names only
        self.compact: dict[str, list[str]] = {}  # whole-title names without spaces or "and"
        self.word_index: dict[str, set[int]] = defaultdict(set)
        self.keys: list[str] = []
        self.key_items: list[str] = []
        for item in catalog:
            self.exact.setdefault(item.title.strip().lower(), item.id)
            full, partial = variant_kinds(item.title, item.brand)
            for variant in full:
                if len(_compact(variant)) >= 8:  # "ULTRAACT Ultraman" for "ULTRA-ACT Ultraman"
                    self.compact.setdefault(_compact(variant), []).append(item.id)
                if item.id not in self.full[variant]:
                    self.full[variant].append(item.id)
            for variant in sorted(full) + sorted(partial):
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
        self._title_words: dict[str, set[int]] | None = None  # word -> title positions, built on first use
        self._counts: dict[str, int] = {}
        self._prose: dict[str, int] = {}
        self._doc_freq: Counter[str] | None = None  # word -> items whose title or description has it
        self._name_ceiling = 0.003 * len(catalog)  # a word in fewer items than this can name one
        # Several items share a name ("Titanic": 1997, 2012 and an undated listing): without a year
        # written, the most popular one is meant (``popularity`` by catalog position; else the first).
        self.popularity = popularity

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

        exact title (1.0) -> normalised whole title (0.99) -> partial name or title without its
        trailing detail, if only one item has it (0.95) -> fuzzy (rapidfuzz ratio >= ``min_score``,
        or a word prefix covering most of exactly one title). A partial name several items share
        ("Harry Potter") names a product line, not an item: None.
        """
        exact = self.exact.get(phrase.strip().lower())
        if exact:
            return Match(exact, 1.0, "exact", text=phrase)
        norm = normalize(phrase)
        front = normalize(_ARTICLE_LAST.sub(r"\2 \1\3", phrase.strip()))  # "Rock, The (1996)"
        if not norm:
            return None
        ids = self.full.get(norm) or self.full.get(front)
        if ids:
            return Match(self._closest(ids, norm), 0.99, "normalized", text=phrase)
        ids = self.variants.get(norm) or self.variants.get(front)
        if ids:
            return Match(ids[0], 0.95, "normalized", text=phrase) if len(ids) == 1 else None
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
        if self._deletes is None:  # built aside, then published: turns run in several threads
            deletes: defaultdict[str, list[str]] = defaultdict(list)
            for known in self.word_index:
                if len(known) >= 3:
                    for d in _deletions(known):
                        deletes[d].append(known)
            self._deletes = deletes
        block: set[int] = set()
        for w in words:
            near = {k for d in _deletions(w) for k in self._deletes.get(d, ())}
            for known in near:
                if fuzz.ratio(w, known) >= 75 and len(self.word_index[known]) <= 5000:
                    block.update(self.word_index[known])
        return block

    # -- free text ---------------------------------------------------------------------------
    def find_in_text(self, text: str, typed: bool = False) -> list[Match]:
        """Non-overlapping item mentions in ``text``, longest match first, in text order. ``typed``:
        a person wrote it, and people type titles bare ("I loved Titanic"), so one capitalised word
        that the catalog's text uses a few times may be a title; in generated text it is not (an
        LM's "a boy born on Mars" must not ground to "Mars (2004)")."""
        tokens = [(m.start(), m.end(), normalize(m.group())) for m in _TOKEN.finditer(text)]
        tokens = [(a, b, self._spelled(w)) for a, b, w in tokens if w]
        taken = [False] * len(tokens)
        found: list[Match] = []
        for n in range(min(self.max_words, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                if any(taken[i:i + n]):
                    continue
                phrase = " ".join(t[2] for t in tokens[i:i + n])
                ids = self._text_owners(text, tokens[i:i + n], phrase, typed)
                start, end = tokens[i][0], tokens[i + n - 1][1]
                if not ids or _inside_longer_name(text, start, end):
                    continue
                end = _extend_year(text, end)
                if text.startswith(")", end) and text.count("(", start, end) > text.count(")", start, end):
                    end += 1  # "Get Out (2017)": the year was a word of the title, its bracket closes the name
                item_id = self._pick_year(ids, text[start:end], phrase)
                found.append(Match(item_id, 1.0 if n > 1 else 0.9, "exact", start, end, text[start:end]))
                for j in range(i, i + n):
                    taken[j] = True
        return sorted(found, key=lambda m: m.start)

    def newest_of_series(self, text: str) -> list[Match]:
        """"the new star wars", "the latest mission impossible": the newest item whose title starts
        with the name, where two or more titles do (a series) and the newest is from the catalog's last
        few years, as a mention of it."""
        out: list[Match] = []
        for m in _NEWEST.finditer(text):
            toks = list(_TOKEN.finditer(text, m.start("name"), m.end("name")))
            for n in range(len(toks), 0, -1):
                phrase = " ".join(normalize(t.group()) for t in toks[:n])
                if not _distinctive(phrase.split()[0]) or phrase in FILLER:
                    continue
                if self._prose_count(phrase) > max(3, self._title_count(phrase)):
                    continue  # "the new girl", "a new comedy": plain words in this catalog
                if n < len(toks) and normalize(toks[n].group()) in ("movies", "films", "ones", "stuff"):
                    continue  # "some new scary movies": a kind of film, not "Scary Movie 5"
                series = self._series(phrase)
                if len(series) >= 2:
                    items = self.catalog.items
                    best = max(series, key=lambda p: (items[p].year or 0, -p))
                    if (items[best].year or 0) < self.catalog.newest_year - 3:
                        break  # "the new Death Wish" (2018) is not the catalog's newest, from 1994
                    out.append(Match(items[best].id, 0.9, "series", m.start(), toks[n - 1].end(),
                                     text[m.start():toks[n - 1].end()]))
                    break
        return out

    def whole_series(self, text: str) -> list[Match]:
        """"all the Godfather movies", "the Harry Potter films", "the Toy Story trilogy", "every Thomas
        set": one mention of each item of the series (titles that start with the name, two or more),
        over the name.
        Where popularity is known, namesakes nobody watched are no part of it ("Godfather (2007)")."""
        out: list[Match] = []
        for m in _WHOLE_SERIES.finditer(text):
            if m.group("kind") and not m.group("all"):
                continue  # "the Harry Potter one" is one film, "the Lego sets" a brand
            phrase = normalize(m.group("name"))
            phrase = phrase[4:] if phrase.startswith("the ") else phrase
            words = phrase.split()
            if not any(map(_distinctive, words)) or phrase in FILLER or words[0] in ("new", "newest", "latest"):
                continue  # "the Dark Knight trilogy" has a distinctive word, "the old ones" none
            if self._prose_count(phrase) > max(3, self._title_count(phrase)):
                continue  # "all the scary movies": plain words in this catalog, not "Scary Movie"
            series = self._series(phrase, dated=False)
            next_words = [self._norm_titles[p].removeprefix(" the ").split()[len(words):][:1] for p in series]
            if sum(w in (["movie"], ["film"]) for w in next_words) * 2 >= len(series):
                continue  # "the scary movies" are no "Scary Movie 2", nor "the disaster films" "Disaster Movie"
            if self.popularity is not None and any(self.popularity[p] > 0 for p in series):
                series = [p for p in series if self.popularity[p] > 0]
            series = self._sharing_people(series)
            if len(series) >= 2:
                out += [Match(self.catalog.items[p].id, 0.9, "series", m.start("name"), m.end("name"), m.group("name"))
                        for p in sorted(series)]
        return out

    def _sharing_people(self, series: list[int]) -> list[int]:
        """Of titles that start alike, those one franchise links: where the catalog credits people, the
        titles joined (through each other) by a shared director, writer or star to the first of them
        ("the Rocky movies": Stallone's, not "The Rocky Horror Picture Show"); else all."""
        from .facets import CREDIT_KEYS

        def people(p: int) -> set[str]:
            attrs = self.catalog.items[p].attributes
            return {normalize(v) for key in CREDIT_KEYS
                    for v in (attrs.get(key) if isinstance(attrs.get(key), list) else [attrs.get(key)]) if isinstance(v, str)}

        credits = {p: people(p) for p in series}
        if len(series) < 2 or sum(bool(c) for c in credits.values()) < 2:
            return series
        anchor = max(series, key=lambda p: (self.popularity[p] if self.popularity is not None else 0.0, -p))
        linked, names, grew = {anchor}, set(credits[anchor]), True
        while grew:
            grew = False
            for p in series:
                if p not in linked and credits[p] & names:
                    linked.add(p)
                    names |= credits[p]
                    grew = True
        return [p for p in series if p in linked or not credits[p]]  # a row without credits cannot be told apart

    def _series(self, phrase: str, dated: bool = True) -> list[int]:
        """Positions of the titles that start with ``phrase`` (after a leading "the"), dated ones only
        unless ``dated`` is False."""
        self._title_count(phrase)  # builds the normalised titles
        heads = (f" {phrase} ", f" the {phrase} ")
        return [p for p, title in enumerate(self._norm_titles)
                if title.startswith(heads) and (self.catalog.items[p].year or not dated)]

    def _spelled(self, word: str) -> str:
        """A long word no title contains ("babadok", "inceptoin") -> the title word one typo away
        ("babadook", "inception").

        One edit or one swap of neighbouring letters, same first letter, words of 6+ letters only:
        short words have too many neighbours ("hte" could be many things), and a wrong fix only
        matters if it then completes a whole title."""
        if len(word) < 6 or word in self.word_index or word.isdigit() or self.doc_freq(word):
            return word  # a word the catalog itself uses ("australian") is spelt as meant
        fixes = self.__dict__.setdefault("_spell_cache", {})
        if word not in fixes:
            if self._deletes is None:
                self._typo_block([word])  # builds the deletion index shared with match_phrase
            near = {k for d in _deletions(word) for k in (self._deletes or {}).get(d, ())}
            near = sorted(k for k in near if k[0] == word[0] and OSA.distance(k, word) <= 1)
            fixes[word] = near[0] if len(near) == 1 else word
        return fixes[word]

    def _text_owners(self, text: str, toks: list[tuple[int, int, str]], phrase: str, typed: bool = False) -> list[str]:
        """The items ``phrase`` names where it stands in free text, or [] when the text gives no
        evidence it is a name. A whole title must be plausible as written, and one that is also a
        common phrase of the catalog ("Card Game" inside three other titles) must be written as a
        name. A partial name ("ages 5", "harry potter", "action man") matches only if it is
        distinctive: two or more distinctive words, written as a name, and inside exactly one title."""
        # compact names drop "and" ("Rail & Road"), but an "and" before or after a name is no part of it
        glued = toks[0][2] == "and" or toks[-1][2] == "and"
        ids = self.full.get(phrase) or (None if glued else self.compact.get(_compact(phrase))) if len(toks) > 1 \
            else self.full.get(phrase)
        if ids:
            if typed and self._cued(text, toks, phrase):
                return ids
            if not self._plausible(text, toks, phrase):
                return []
            # "Paul", "the American", "war": a short title made of words the catalog's own text uses
            # all the time is plain language unless quoted, dated or title-cased word by word.
            dated = _YEAR_AFTER.match(text[toks[-1][1]:]) or (len(toks) > 1 and _YEAR.match(f"({toks[-1][2]})"))
            capitalised = _title_cased(text, toks)
            # One capitalised word is a name ("I loved Titanic") unless the catalog's own text uses it
            # so often that it is a plain word there ("Alien", "Taken", "Seven": write them dated).
            named = capitalised and (len(toks) > 1 or typed and self._one_word_name(text, toks[0], phrase))
            # Words people chat with ("Anything else?", "Awesome!": "Anything Else (2003)", "Awesome
            # (2006)") and a credited person's name ("I love Emma Stone") are a title only when
            # written as one: dated, quoted or title-cased (one word: mid-sentence or as the subject).
            chat = all(t[2] in FILLER for t in toks)
            person = len(toks) > 1 and phrase in self._people
            if (chat or len(toks) <= 3 and self._everyday(toks)) and not (dated or named or _quoted(text, toks)):
                return []
            if person and not (dated or _quoted(text, toks)):
                return []
            return ids if self._title_count(phrase) < 3 or dated or _as_name(text, toks) else []
        ids = self.variants.get(phrase)
        if not ids or len(ids) > 1 or len(toks) < 2 or self._everyday(toks):
            return []
        words = [t[2] for t in toks if _distinctive(t[2])]
        # Evidence: written as a name, or (typed lower-case: "the last jedi") a word hardly any other
        # item uses; either way two distinctive words or three words in all ("action man" has neither).
        enough = len(words) >= 2 or len(toks) >= 3
        rare = any(self.doc_freq(w) <= max(2, 0.0005 * len(self.catalog)) for w in words)
        named = _as_name(text, toks)
        return ids if enough and (named or rare) and self._title_count(phrase) == 1 else []

    def _one_word_name(self, text: str, tok: tuple[int, int, str], phrase: str) -> bool:
        """Whether one capitalised word that the catalog's text uses now and then (a title of several
        listings, "Titanic", "Frozen") is written as that title: mid-sentence, or opening one as its
        subject ("Titanic was great"); not a word capitalised for another reason: a sentence-opening
        verb ("Loved that movie", "Saw it"), a place or a date ("on Mars", "for Halloween"), or a
        person's first name or a genre of the catalog ("Did Martin co-star?", "a good Thriller")."""
        start, end, _ = tok
        if self.doc_freq(phrase) >= self._name_ceiling or phrase in self._plain_names:
            return False
        before = text[:start].rstrip()
        if _PLACE_BEFORE.search(before) or (phrase.endswith(("ed", "ing")) and _OBJECT_AFTER.match(text, end)):
            return False  # "on Mars", "... (1983) Loved that movie"
        if before and before[-1] not in ".!?:;\"“(":
            return True  # mid-sentence
        return not phrase.endswith(("ed", "ing")) and bool(_SUBJECT_AFTER.match(text, end))

    @cached_property
    def _credited(self) -> tuple[frozenset[str], dict[str, set[str]]]:
        """The catalog's genres, and the full names of its people by first name (all normalised)."""
        from .facets import CREDIT_KEYS, GENRE_KEYS
        genres: set[str] = set()
        people: defaultdict[str, set[str]] = defaultdict(set)
        for item in self.catalog:
            for key in CREDIT_KEYS + GENRE_KEYS:
                value = item.attributes.get(key)
                for v in value if isinstance(value, list) else [value] if isinstance(value, str) else []:
                    names = normalize(v).split()
                    if names and key in CREDIT_KEYS:
                        people[names[0]].add(" ".join(names))
                    elif names:
                        genres.add(" ".join(names))
        return frozenset(genres), dict(people)

    @cached_property
    def _plain_names(self) -> frozenset[str]:
        """The catalog's genres and the first names of 8+ of its people ("Paul", "Martin"; not
        "Rocky", "Thor"): capitalised, but rarely meant as a title."""
        genres, people = self._credited
        return genres | {first for first, full in people.items() if len(full) >= 8}

    @cached_property
    def _people(self) -> frozenset[str]:
        """The full names (normalised) of the people the catalog credits ("emma stone")."""
        return frozenset(name for names in self._credited[1].values() for name in names)

    def is_person(self, name: str) -> bool:
        """Whether ``name`` (normalised, two words or more) is the full name of someone the catalog credits."""
        return len(name.split()) > 1 and name in self._people

    def warm(self) -> None:
        """Build the indexes made on first use (typo neighbours, word counts), e.g. at start-up so
        the first reply does not pay for them."""
        self._typo_block(["warmup"])
        self.doc_freq("warmup")
        self._title_count("warm up")
        _ = self._people, self._descriptions

    def _everyday(self, toks: list[tuple[int, int, str]]) -> bool:
        """True if every distinctive word is plain language in this catalog: its titles and
        descriptions use it in 4+ items (one word) or in 5+ items and 0.3% of them (several)."""
        words = [t[2] for t in toks if _distinctive(t[2])]
        floor = 4 if len(words) == 1 else max(5, 0.003 * len(self.catalog))
        return bool(words) and all(self.doc_freq(w) >= floor for w in words)

    def doc_freq(self, word: str) -> int:
        """Items whose title or description contains ``word`` (normalised); counted on first use."""
        if self._doc_freq is None:  # built aside, then published (see _typo_block)
            counts: Counter[str] = Counter()
            for item in self.catalog.items:
                counts.update(set(normalize(f"{item.title} {item.description}").split()))
            self._doc_freq = counts
        return self._doc_freq[word]

    def titles_with(self, phrase: str) -> int:
        """How many catalog titles name ``phrase`` (normalised, whole words)."""
        return self._title_count(normalize(phrase))

    def items_with(self, phrase: str) -> int:
        """How many catalog items name ``phrase`` (normalised, whole words) in their title or description."""
        return self._title_count(phrase) + self._prose_count(phrase)

    def _title_count(self, phrase: str) -> int:
        """How many catalog titles contain ``phrase`` as whole words (cached): its document frequency."""
        if phrase not in self._counts:
            if self._title_words is None:  # built aside, then published (see _typo_block)
                self._norm_titles = [f" {normalize(i.title)} " for i in self.catalog.items]
                title_words: defaultdict[str, set[int]] = defaultdict(set)
                for pos, norm in enumerate(self._norm_titles):
                    for word in norm.split():
                        title_words[word].add(pos)
                self._title_words = title_words
            postings = sorted((self._title_words.get(w, set()) for w in set(phrase.split())), key=len)
            rows = set.intersection(*postings) if postings else set()
            self._counts[phrase] = sum(1 for pos in rows if f" {phrase} " in self._norm_titles[pos])
        return self._counts[phrase]

    def _cued(self, text: str, toks: list[tuple[int, int, str]], phrase: str) -> bool:
        """A whole title typed as plain words right after words that take a film, or in a list after
        them ("i liked the dark knight", "my favourite movies are the godfather, goodfellas and
        scarface"), when the catalog's prose seldom uses it: it appears in no more descriptions than
        titles ("titanic", "frozen", "the notebook"; not "music", "alien", "the family"), has a word
        beyond common ones ("i saw it", "liked the last one" name nothing) and is no person's name."""
        if not _FILM_CUE.search(text, 0, toks[0][0]):
            return False
        if all(t[2] in COMMON_WORDS or t[2] in FILLER or len(t[2]) < 3 for t in toks):
            return False
        if len(toks) > 1 and phrase in self._people:
            return False
        if (after := _NEXT_WORD.match(text, toks[-1][1])) and f"{phrase} {normalize(after.group(1))}" in self._people:
            return False  # "I like emma stone": the actress, not "Emma (1996)"
        return self._prose_count(phrase) <= max(3, self._title_count(phrase))

    def _prose_count(self, phrase: str) -> int:
        """How many items' descriptions use ``phrase`` as whole words, their own titles aside (cached;
        one set intersection over the description words' postings, not a scan of the catalog)."""
        if phrase not in self._prose:
            texts, postings = self._descriptions
            self._title_count(phrase)  # builds the normalised titles
            rows = sorted((postings.get(w, set()) for w in set(phrase.split())), key=len)
            padded = f" {phrase} "
            self._prose[phrase] = sum(1 for pos in (set.intersection(*rows) if rows else ())
                                      if padded in texts[pos] and padded not in self._norm_titles[pos])
        return self._prose[phrase]

    @cached_property
    def _descriptions(self) -> tuple[list[str], dict[str, set[int]]]:
        """Each item's normalised description (padded with spaces), and word -> positions using it."""
        texts = [f" {normalize(item.description)} " for item in self.catalog.items]
        postings: defaultdict[str, set[int]] = defaultdict(set)
        for pos, text in enumerate(texts):
            for word in set(text.split()):
                postings[word].add(pos)
        return texts, dict(postings)

    def _plausible(self, text: str, toks: list[tuple[int, int, str]], phrase: str) -> bool:
        if len(toks) > 1:
            # "Get Out", "Inside Out": all common words, so only when written as a title.
            return not all(t[2] in COMMON_WORDS for t in toks) or _title_cased(text, toks)
        # A one-word title must look like a name: not a common word, written capitalised or dated;
        # or quoted, which makes a name of any word ('"Up"', '"It"', '"Her"').
        word = text[toks[0][0]:toks[0][1]]
        dated = _YEAR_AFTER.match(text[toks[0][1]:]) is not None
        return (phrase not in COMMON_WORDS and len(phrase) >= 3 and (word[:1].isupper() or dated)
                or _quoted(text, toks))

    def _pick_year(self, ids: list[str], surface: str, phrase: str = "") -> str:
        """Several items share the name: the one with the year written after it, else among those
        whose whole title is the name, with or without a leading "the" ("Star Wars (1977)", not "Star
        Wars: The Clone Wars"), the most popular ("Avatar (2009)", not "Avatar (2004)"; "Godfather":
        "The Godfather (1972)", not "Godfather (2007)"; the bare name first among equals: "Split" is
        "Split (2017)", not "The Split (1968)"), else the first."""
        if len(ids) > 1:
            year = re.search(r"\(?((?:19|20)\d\d)\)?$", surface)
            if year:
                for item_id in ids:
                    if f"({year.group(1)})" in self.catalog.by_id[item_id].title:
                        return item_id
            names = {i: normalize(_YEAR.sub("", self.catalog.by_id[i].title)) for i in ids}
            whole = ([i for i in ids if names[i] == phrase]  # "Split (2017)" before "The Split (1968)"
                     + [i for i in ids if names[i] == "the " + phrase])
            if whole and self.popularity is not None:
                position = self.catalog.position
                return max(whole, key=lambda i: self.popularity[position[i]])  # first of equals
            if whole:
                return whole[0]
        return ids[0]


def _deletions(word: str) -> set[str]:
    """The word and every string one deletion away: two words one edit apart share one of these."""
    return {word} | {word[:i] + word[i + 1:] for i in range(len(word))}


def _compact(name: str) -> str:
    """A normalised name with spaces and "and" dropped: what is left when punctuation is deleted
    instead of spaced ("Rail & Road" -> "Rail  Road", "Multi-Colour" -> "MultiColour")."""
    return "".join(w for w in name.split() if w != "and")


_NEWEST = re.compile(r"\b(?:new|newest|latest|most recent)\s+(?P<name>[\w'’&-]+(?:\s+[\w'’&-]+){0,3})", re.I)
# A whole series named at once: "all the Godfather movies", "he's seen all the harry potter ones", "he has
# every Thomas set"; after a bare "the", films only ("the Toy Story trilogy", not "the Lego sets": a brand).
_WHOLE_SERIES = re.compile(
    r"\b(?:(?P<all>(?:all|both|each|every)(?:\s+one)?\s+(?:of\s+)?(?:the\s+|those\s+)?)|the\s+)"
    r"(?P<name>[\w'’&:.-]+(?:\s+[\w'’&:.-]+){0,4}?)\s+"
    r"(?:(?P<kind>ones?|movie|film|sets?|books?|sequels?|games?)|movies|films|series|franchise|trilogy|saga)\b", re.I)
_NEXT_WORD = re.compile(r"\s+([\w'’-]+)")
# Words that take a film (or a product) as their object, at the end of the text before a name,
# possibly with a list between: "loved X", "have you seen X", "favourite movies are X, Y and Z".
_FILM_CUE = re.compile(
    r"\b(?:liked?|loved?|enjoyed|enjoy|adored?|hated?|disliked?|seen|saw|watched|watch|re-?watch(?:ed)?|"
    r"fan of|such as|similar to|favou?rites? (?:movies? |films? )?(?:is|are|was|were|include)|"
    r"(?:movies?|films?|something|anything|ones?) like)"
    r"\s+(?:[\w'’-]+(?:\s+[\w'’-]+){0,4}\s*(?:,|\band\b|\bor\b|&)\s*){0,4}$", re.I)


def _distinctive(word: str) -> bool:
    return len(word) >= 3 and not word.isdigit() and word not in COMMON_WORDS


_PLACE_BEFORE = re.compile(r"\b(?:on|at|from|during|for|near)$", re.I)
_OBJECT_AFTER = re.compile(r"\s+(?:that|it|this|the|them|those|these|him|her|me|you)\b", re.I)
_SUBJECT_AFTER = re.compile(r"\s+(?:is|was|has|had|and|or)\b", re.I)
# A word, its inner apostrophes kept ("Schindler's"); a quote around it is no part of it ("'Up'")
_TOKEN = re.compile(r"[\w&]+(?:['’][\w&]+)*")
_NEXT_CAP = re.compile(r" ([A-Z][\w'’&]*)")
_PREV_CAP = re.compile(r"(?:^|(.)\s*)\b([A-Z][\w'’&]*) $", re.S)


def _inside_longer_name(text: str, start: int, end: int) -> bool:
    """True if a capitalised word runs on from the match ("Midway Hush", "Gotti Edge"): the title is
    part of a longer name, likely a product that is not in the catalog. A capitalised word before
    it counts only mid-sentence ("Try Babadook" is fine)."""
    nxt = _NEXT_CAP.match(text, end)
    if nxt and nxt.group(1).lower() not in COMMON_WORDS:
        return True
    prev = _PREV_CAP.search(text[max(0, start - 40):start])
    if prev is None or prev.group(2).lower() in COMMON_WORDS:
        return False
    return prev.group(1) is not None and prev.group(1) not in ".!?:;\n\"“*(-–—"


def _quoted(text: str, toks: list[tuple[int, int, str]]) -> bool:
    before, after = text[max(toks[0][0] - 1, 0):toks[0][0]], text[toks[-1][1]:toks[-1][1] + 1]
    return bool(before and after and before in "\"“'‘*" and after in "\"”'’*")


# Words a title leaves lower-case inside it ("Knight and Day", "Pirates of the Caribbean").
TITLE_MINOR = frozenset("a an and the of in on at to for or nor but with by from as vs into de la le".split())


def _title_cased(text: str, toks: list[tuple[int, int, str]]) -> bool:
    """Every word capitalised, small words after the first excepted: "Knight and Day"."""
    return text[toks[0][0]:toks[0][0] + 1].isupper() and all(
        text[a:a + 1].isupper() or norm in TITLE_MINOR for a, _, norm in toks[1:])


def _as_name(text: str, toks: list[tuple[int, int, str]]) -> bool:
    """Written as a name: quoted or bold, or every distinctive word capitalised ("Chinese Checkers")."""
    if _quoted(text, toks):
        return True
    words = [text[a:b] for a, b, norm in toks if _distinctive(norm)]
    return bool(words) and all(w[:1].isupper() for w in words)


def _extend_year(text: str, end: int) -> int:
    m = _YEAR_AFTER.match(text[end:])
    return end + m.end() if m else end
