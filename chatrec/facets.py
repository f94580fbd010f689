"""Structured item facets for ranking: genres and credits (people) from the catalog's attributes.

Three signals for the ranker, each in [0, 1] per item (genre can be negative), all inactive on
catalogs without these attributes (the toy catalog has none, so its ranking does not change):

- ``wanted_genres`` / ``genre_scores``: genres the user asked for in words ("something scary" ->
  horror, "a funny one" -> comedy, "not a horror fan" -> minus horror). Only genres that exist in the
  catalog's ``genre`` attribute are recognised; recent turns weigh more, the latest wish per genre wins.
- ``seed_genre_scores``: cosine between each item's genre set and the genre profile of the items
  the user named or liked (a user naming three animated films wants animation, whatever they wrote).
- ``credit_scores``: people (director, stars, writers, ...) shared with the named or liked items,
  each person weighted by ``1 / log(1 + films they are credited on)`` so that a prolific actor counts
  less than a director with four films; this finds sequels, franchises and a director's other work.
- ``named_credit_scores``: items crediting a person the user named in words ("anything with Tom
  Hanks"; full names of two or more words only, recent turns weigh more).

Everything is one small dense or sparse matrix product per turn (microseconds to a millisecond on a
6.6k-film catalog). Measured on the ReDial valid split: see ``benchmarks/results/ranking.md``.
"""
from __future__ import annotations

import re
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np
from rapidfuzz.distance import OSA
from scipy import sparse

from .catalog import Catalog, Item
from .lexical import plain_words as _words

GENRE_KEYS = ("genre", "genres")
CREDIT_KEYS = ("director", "directors", "star", "stars", "cast", "actor", "actors", "writer", "writers",
               "creator", "creators", "author", "authors", "composer")

# Which credit keys are which role, for asks about one role's people ("that director").
ROLE_KEYS: dict[str, tuple[str, ...]] = {"director": ("director", "directors"),
                                         "star": ("star", "stars", "cast", "actor", "actors"),
                                         "writer": ("writer", "writers", "author", "authors")}
# The words of ``ROLE_ASK`` that say which role ("filmmaker": director; "been in": star).
_ROLE_WORDS = {**dict.fromkeys(("director", "filmmaker", "directed", "direct", "made", "make"), "director"),
               **dict.fromkeys(("actor", "actress", "star", "starred", "been", "played", "play", "acted", "act",
                                "appeared", "appear"), "star"),
               **dict.fromkeys(("writer", "screenwriter", "written", "write", "wrote"), "writer")}
# "what else did that director make?", "anything by the same director?", "more with that actress",
# "what else has she been in?", "films directed by him": the films of that role's people.
ROLE_ASK = re.compile(
    r"\b(?:that|the same|same|this|the|his|her|their)\s+(?P<role>director|filmmaker|actor|actress|"
    r"screenwriter|writer)s?\b(?!\s*'s\b)"
    r"|\b(?P<by>directed|written|made)\s+by\s+(?:the\s+same\b|him\b|her\b|them\b)"
    r"|\b(?:what|where)\s+else\s+(?:did|has|have)\s+(?:he|she|they)\s+(?P<verb>directed|direct|made|make|"
    r"been(?=\s+in)|starred|star|played|play|acted|act|appeared|appear|written|write|wrote)\b", re.I)

# Everyday words for genres (movie/TV vocabulary). A word only counts for a genre the catalog has.
GENRE_WORDS: dict[str, str] = {
    "horror": r"horrors?|scary|scarier|scariest|creepy|creepier|spooky|frightening|terrifying|slashers?|"
              r"haunted|zombies?|gory|gore",
    "comedy": r"comed(?:y|ies)|funny|funnier|funniest|hilarious|humou?r|humorous|comedic|rom[- ]?coms?|goofy|"
              r"silly|laughs?|feel[- ]?good|light-?hearted|upbeat",
    "action": r"action|explosions?|martial arts",
    "adventure": r"adventures?|adventurous",
    "crime": r"crime|gangsters?|heists?|mob|mafia|mobsters?",
    "romance": r"romance|romances|romantic|love stor(?:y|ies)|rom[- ]?coms?|chick flicks?",
    "thriller": r"thrillers?|suspense|suspenseful|psychological",
    "sci-fi": r"sci-?fi|science fiction|space|aliens?|futuristic|dystopian|robots?",
    "mystery": r"myster(?:y|ies)|whodunn?its?|detectives?",
    "fantasy": r"fantasy|fantasies|magic|magical|dragons?|wizards?",
    "family": r"family|kids?|children|child|kid-friendly|family-friendly|toddlers?|grandkids|grandchildren|"
              r"little ones|my (?:daughters?|sons?|nieces?|nephews?)|"
              r"(?:[1-9]|1[0-2]|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)[- ]?(?:years?|yrs?)[- ]?olds?",
    "animation": r"animated|animation|cartoons?|pixar|anime",
    "biography": r"biograph(?:y|ies|ical)|biopics?|true stor(?:y|ies)",
    "documentary": r"documentar(?:y|ies)|docs?",
    "history": r"historical|history|period pieces?",
    "musical": r"musicals?",
    "sport": r"sports?|football|baseball|basketball|boxing",
    "war": r"war|wars|military",
    "western": r"westerns?|cowboys?",
    "drama": r"dramas?|dramatic|tear-?jerkers?|sad|sadder|saddest|emotional|heart-?breaking|heart-?wrenching|"
             r"make me cry|(?:a )?good cry",
}
# Between two genre words named as alternatives: "war movies and westerns", "comedy, horror or sci-fi".
_JOINED = re.compile(r"\s*(?:movies?|films?|ones|flicks?|shows?)?\s*(?:,|/|&|\band\b|\bor\b|,\s*(?:and|or)\b)\s*"
                     r"(?:(?:also|maybe|even|some|any|good|great|a|an)\s+){0,2}", re.I)
# The words above that name what a film is about, not how it feels ("zombie movies", not "funny movies"):
# the tracker keeps them as must-haves too, so that the films about it lead the genre's popular ones.
GENRE_SUBJECTS = frozenset({"zombie", "slasher", "gangster", "heist", "mafia", "mob", "mobster", "space", "alien",
                            "robot", "dragon", "wizard", "magic", "detective", "football", "baseball", "basketball",
                            "boxing", "cowboy", "haunted"})
# Refused, these leave out what a film shows, not its genre: "scary, but no gore" is still horror
_SHOWN_NOT_GENRE = frozenset({"gore", "gory"})


def _is_subject(word: str) -> bool:
    """"zombies", "gore": what a film of a genre shows or is about, not the genre itself."""
    word = word.lower()
    return word in _SHOWN_NOT_GENRE or word.removesuffix("s") in GENRE_SUBJECTS


# Genres that name an audience rather than a taste, and the genres of the films made for it.
AUDIENCE_GENRES: dict[str, tuple[str, ...]] = {"family": ("family", "animation")}
# "not a horror fan", "nothing scary", "I don't like comedies": a negation shortly before the word.
_NEG_BEFORE = re.compile(r"(?:\b(?:no|not|without|hate|hates|don'?t|do not|doesn'?t|does not|didn'?t|did not|"
                         r"dislikes?|isn'?t|aren'?t|never|(?:everything|anything|all) but|"
                         r"nothing|avoid|except)\b[^.!?,;]{0,25}|\bnon[- ]?)$", re.I)  # "non" only before its word
# Asking for a genre rather than stating a taste: "any good documentaries?", "looking for a scary one",
# and the change asked of a film: "something like The Notebook but funnier".
_ASK_BEFORE = re.compile(r"(?:\bany(?:thing)?|\blooking for|\brecommend(?: me)?|\bsuggest(?: me)?|\bwant(?:s| to watch| to see)?|"
                         r"\bin the mood for|\bneed|\bsomething|\bsearching for|\bfind(?: me)?|\bgot any|\bknow (?:of )?any|"
                         r"\bshow me|\bgive me|\bhow about|\bwhat about)\s+(?:[\w'-]+\s+){0,3}$|"
                         r"\blike\b.{1,60}(?<!everything)(?<!anything)(?<!\ball)\s+but\s+"
                         r"(?:(?:a bit|a little|much|a lot|way|more|even)\s+)?$", re.I)
# ... or the message is little else: "a western please", "maybe a war movie", "comedies?" (not "I like comedies",
# "comedies are my favourite")
_OPENING_ASK = re.compile(r"\s*(?:(?:hi|hello|hey|ok(?:ay)?|so|well|yes|yeah|sure|maybe|perhaps|hmm+|um+)\b[\s,!.]*)*"
                          r"(?:(?:a|an|some|any|more)\s+)?(?:(?:good|great|classic|new|old|fun|recent|nice|decent|"
                          r"cool|really|very)\s+){0,2}", re.I)
_CLOSING_ASK = re.compile(r"\w*\s*(?:movies?|films?|ones?|flicks?)?(?:[\s,.!?]|please|pls|plz|maybe|perhaps|then|now|"
                          r"instead|tonight|for (?:tonight|me|us|the (?:kids|family|weekend)))*", re.I)
# "nothing too scary", "not overly silly", "not that scary": a matter of degree, neither an ask for the
# genre nor a refusal ("very funny" is an ask).
_DEGREE_BEFORE = re.compile(r"\b(?:too|overly|(?:not|nothing|isn'?t|wasn'?t) (?:that|so|very))\s+$", re.I)


class Facets:
    def __init__(self, catalog: Catalog):
        self.n_items = len(catalog)
        genres: dict[str, int] = {}
        g_rows: list[int] = []
        g_cols: list[int] = []
        people: dict[str, int] = {}
        p_rows: list[int] = []
        p_cols: list[int] = []
        p_keys: list[str] = []
        for row, item in enumerate(catalog):
            for key in GENRE_KEYS:
                for value in _values(item.attributes.get(key)):
                    g_rows.append(row)
                    g_cols.append(genres.setdefault(value.lower(), len(genres)))
            for key in CREDIT_KEYS:
                for value in _values(item.attributes.get(key)):
                    p_rows.append(row)
                    p_cols.append(people.setdefault(value.lower(), len(people)))
                    p_keys.append(key)
        self.genre_names = list(genres)
        self._person_names = list(people)
        self._person_columns = people  # name -> column
        self._names_by_first: dict[str, list[tuple[str, int]]] = {}
        for name, col in people.items():
            words = _words(name)
            if len(words) >= 2:
                self._names_by_first.setdefault(words[0], []).append((" ".join(words), col))
        self.genres = np.zeros((self.n_items, len(genres)), dtype=np.float32)
        self.genres[g_rows, g_cols] = 1.0
        norms = np.linalg.norm(self.genres, axis=1, keepdims=True)
        self._genres_unit = self.genres / np.where(norms > 0, norms, 1.0)
        self._genre_words = {g: re.compile(rf"\b(?:{GENRE_WORDS.get(g, re.escape(g))})\b", re.I)
                             for g in self.genre_names}
        credits = sparse.csr_matrix((np.ones(len(p_rows), dtype=np.float32), (p_rows, p_cols)),
                                    shape=(self.n_items, len(people)), dtype=np.float32)
        credits.data[:] = 1.0  # one person credited twice on a film (writer and director) counts once
        self.credits = credits
        films = np.asarray(credits.sum(axis=0)).ravel()
        idf = 1.0 / np.log1p(np.maximum(films, 1.0))
        self._credits_idf = credits.multiply(idf[None, :]).tocsr().astype(np.float32)
        self._surnames = _surnames(people, films, catalog)
        self._credits_csc = credits.tocsc()
        self._roles: dict[str, sparse.csr_matrix] = {}  # role -> (items, people) credited in that role
        for role, keys in ROLE_KEYS.items():
            picked = [i for i, key in enumerate(p_keys) if key in keys]
            if picked:
                m = sparse.csr_matrix((np.ones(len(picked), dtype=np.float32),
                                       ([p_rows[i] for i in picked], [p_cols[i] for i in picked])),
                                      shape=(self.n_items, len(people)), dtype=np.float32)
                m.data[:] = 1.0
                self._roles[role] = m

    @property
    def has_genres(self) -> bool:
        return bool(self.genre_names)

    @property
    def has_credits(self) -> bool:
        return self.credits.nnz > 0

    def wanted_genres(self, texts: Sequence[str], decay: float = 0.5) -> np.ndarray:
        """Per genre: +w when the user asked for it, -w when they ruled it out (w = ``decay`` ** the
        number of later turns that spoke of genres; the latest mention of a genre wins, and within one
        turn an ask wins over a refusal). ``texts``: the user's turns, oldest first."""
        wanted = np.zeros(len(self.genre_names), dtype=np.float32)
        if not self.genre_names:
            return wanted
        done: set[int] = set()
        age = 0  # how many later turns spoke of genres: "from the 80s?" after "something scary" is still horror
        for text in reversed(texts):
            spoke = False
            for g, rx in enumerate(self._genre_words.values()):
                signs = {-1.0 if _NEG_BEFORE.search(text[max(0, m.start() - 40):m.start()]) else 1.0
                         for m in rx.finditer(text) if not _DEGREE_BEFORE.search(text[max(0, m.start() - 16):m.start()])
                         and not (_is_subject(m.group()) and _NEG_BEFORE.search(text[max(0, m.start() - 40):m.start()]))}
                # (a refused subject, "no gore", "no zombies", refuses what a film shows, not its genre)
                sign = max(signs, default=0.0)  # "something scary, nothing with zombies": still horror
                spoke = spoke or bool(sign)
                if sign and g not in done:
                    wanted[g] = sign * decay ** age
                    done.add(g)
            age += spoke
        return wanted

    def of_genre_word(self, word: str) -> np.ndarray:
        """Positions of the items of the genre that ``word`` is an everyday word for ("animated",
        "cartoons": animation; "romantic": romance); empty when it names none of the catalog's genres,
        or a subject of one ("gore", "zombies": "no gore" leaves out what a film shows, not horror)."""
        if _is_subject(word.strip()):
            return np.zeros(0, dtype=np.int64)
        cols = [g for g, rx in enumerate(self._genre_words.values()) if rx.fullmatch(word.strip())]
        return np.flatnonzero(self.genres[:, cols].any(axis=1)) if cols else np.zeros(0, dtype=np.int64)

    def genre_scores(self, wanted: np.ndarray) -> np.ndarray:
        """Share of the wanted genres an item has, minus 1 for items of a ruled-out genre."""
        out = np.zeros(self.n_items, dtype=np.float32)
        pos, neg = np.clip(wanted, 0, None), np.clip(-wanted, 0, None)
        if pos.any():
            out += self.genres @ pos / pos.sum()
        if neg.any():
            out -= (self.genres @ neg > 0).astype(np.float32)
        return out

    def asked_genres(self, texts: Sequence[str], wanted: np.ndarray) -> np.ndarray:
        """The genres of ``wanted`` (``wanted_genres`` of ``texts``) that the latest turn naming them
        asks for ("any good documentaries?", "I'm looking for a horror movie", "something funny"),
        at their weight there; a taste ("I like comedies", "my wife loves romance") is not an ask."""
        asked = np.zeros_like(wanted)
        words = list(self._genre_words.values())
        for g, rx in enumerate(words):
            if wanted[g] <= 0:
                continue
            for text in reversed(texts):
                starts = [m.start() for m in rx.finditer(text)]
                if starts:
                    bare = text  # the other genres' words blanked: "a funny horror movie" is little else too
                    for other in (o for h, o in enumerate(words) if h != g and wanted[h] > 0):
                        bare = other.sub(lambda m: " " * len(m.group()), bare)
                    if any((_ASK_BEFORE.search(text[max(0, i - 40):i])
                            or (_OPENING_ASK.fullmatch(bare[:i]) and _CLOSING_ASK.fullmatch(bare[i:])))
                           and not _NEG_BEFORE.search(text[max(0, i - 40):i]) for i in starts):
                        asked[g] = wanted[g]
                    break
        return asked

    def alternative_genres(self, text: str) -> list[int]:
        """Genres ``text`` names as alternatives, joined by "and", "or" or a comma: "war movies and
        westerns", "any comedies or action films?", "horror, comedy or sci-fi" (two or more, else []).
        Genres stacked on one film are no alternatives: "a romantic comedy", "action comedies", "a
        funny horror movie", "a cartoon for a 7 year old"."""
        found = sorted((m.start(), m.end(), g) for g, rx in enumerate(self._genre_words.values())
                       for m in rx.finditer(text))
        joined: set[int] = set()
        for (_, end, g), (start, _, h) in zip(found, found[1:]):
            if g != h and _JOINED.fullmatch(text[end:start]):
                joined |= {g, h}
        return sorted(joined) if len(joined) >= 2 else []

    def asked_genre_scores(self, asked: np.ndarray, together: bool = False) -> np.ndarray:
        """Per item: the weight of the strongest asked genre (``asked_genres``) it has, else 0;
        ``together`` (genres asked of one film, "a funny horror movie"): the weighted share of them
        it has, so that horror comedies lead plain horror."""
        if not asked.any():
            return np.zeros(self.n_items, dtype=np.float32)
        if together:
            return (self.genres @ asked / (asked > 0).sum()).astype(np.float32)
        return (self.genres * asked[None, :]).max(axis=1).astype(np.float32)

    def stacked_genres(self, texts: Sequence[str]) -> bool:
        """Whether the latest of ``texts`` that speaks of genres asks for two or more of one film ("a
        funny horror movie", "any romantic comedies?"), not as alternatives ("westerns or war films")."""
        for text in reversed(texts):
            said = {g for g, rx in enumerate(self._genre_words.values()) if rx.search(text)}
            if said:
                return len(said) >= 2 and not self.alternative_genres(text)
        return False

    def audience_scores(self, wanted: np.ndarray) -> np.ndarray | None:
        """1 for each item that has none of the genres made for the audience asked for ("something
        for my kids": family or animation), scaled by how recent that wish is; None when no audience
        was asked for. A taste genre is one reason among many, but a family film is a requirement:
        Superbad is no answer to "a comedy for my daughters", however often it is suggested."""
        for audience, suited in AUDIENCE_GENRES.items():
            if audience in self.genre_names and (strength := wanted[self.genre_names.index(audience)]) > 0:
                cols = [self.genre_names.index(g) for g in suited if g in self.genre_names]
                return strength * (self.genres[:, cols].sum(axis=1) == 0).astype(np.float32)
        return None

    def seed_genre_scores(self, seeds: Sequence[int], weights: Sequence[float]) -> np.ndarray:
        """Cosine between each item's genres and the weighted genre profile of the seed items."""
        if not self.genre_names or not seeds:
            return np.zeros(self.n_items, dtype=np.float32)
        profile = np.asarray(weights, dtype=np.float32) @ self.genres[list(seeds)]
        norm = float(np.linalg.norm(profile))
        if norm == 0:
            return np.zeros(self.n_items, dtype=np.float32)
        return (self._genres_unit @ (profile / norm)).astype(np.float32)

    def credit_scores(self, seeds: Sequence[int], weights: Sequence[float]) -> np.ndarray:
        """Weighted people shared with the seed items, scaled to [0, 1]; the seeds themselves get 0."""
        out = np.zeros(self.n_items, dtype=np.float32)
        if not seeds or not self.has_credits:
            return out
        profile = sparse.csr_matrix(np.asarray(weights, dtype=np.float32)[None, :]) @ self.credits[list(seeds)]
        if profile.nnz == 0:
            return out
        out = np.asarray((self._credits_idf @ profile.T).todense()).ravel().astype(np.float32)
        out[list(seeds)] = 0.0
        top = float(out.max())
        return out / top if top > 0 else out

    def named_people(self, texts: Sequence[str], decay: float = 0.5) -> dict[int, float]:
        """Credited people whose full name appears in the user's turns (oldest first): column -> weight.
        A name after a negation ("not a fan of Will Ferrell") is no wish for their films (the
        tracker refuses it), and the latest turn that names someone decides."""
        found: dict[int, float] = {}
        refused: set[int] = set()
        if not self._names_by_first:
            return found
        for age, text in enumerate(reversed(texts)):
            words = _words(text)
            padded = " " + " ".join(words) + " "
            full: set[str] = set()  # surnames said as part of a full name: "Scott Eastwood" is not Clint
            for first in set(words):
                for name, col in self._names_by_first.get(first, ()):
                    if f" {name} " in padded:
                        full.add(name.split()[-1])
                    if col in found or col in refused or f" {name} " not in padded:
                        continue
                    self._credit_said(text, name, col, decay ** age, found, refused)
            for typed, name, col in self._misspelt(words):  # "a funny Jim Carey movie"
                if col not in found and col not in refused:
                    full.add(typed.split()[-1])
                    self._credit_said(text, typed, col, decay ** age, found, refused)
            for word in set(words) - full:  # "I like Tarantino films"
                col = self._surnames.get(word)
                if col is not None and col not in found and col not in refused:
                    self._credit_said(text, word, col, decay ** age, found, refused)
        return found

    def _misspelt(self, words: Sequence[str]) -> list[tuple[str, str, int]]:
        """(typed, name, column) for two-word names typed with one slip in a surname of 5+ letters
        ("jim carey": Jim Carrey), where the first name is right and no other name is as close."""
        out = []
        for first, second in zip(words, words[1:]):
            if len(second) < 5:
                continue
            close = [(name, col) for name, col in self._names_by_first.get(first, ())
                     if len(name.split()) == 2 and name.split()[1] != second
                     and OSA.distance(name.split()[1], second, score_cutoff=1) <= 1]
            if len(close) == 1 and f"{first} {second}" not in self._person_columns:
                out.append((f"{first} {second}", *close[0]))
        return out

    @staticmethod
    def _credit_said(text: str, name: str, col: int, weight: float, found: dict[int, float], refused: set[int]) -> None:
        at = re.search(r"\b" + r"\W+".join(map(re.escape, name.split())) + r"\b", text, re.I)
        if at and _NEG_BEFORE.search(text[max(0, at.start() - 40):at.start()]):
            refused.add(col)
        else:
            found[col] = weight

    def person_name(self, col: int) -> str:
        """A credited person's name, lower-cased ("jim carrey")."""
        return self._person_names[col]

    @cached_property
    def _name_words(self) -> frozenset[str]:
        return frozenset(w for name in self._person_names for w in _words(name))

    def names_part_of_someone(self, term: str) -> bool:
        """Whether ``term`` is part of a credited person's name but not a whole one ("christian": Christian
        Bale; "hill": Jonah Hill): looked for in the credits, it would pick their films."""
        words = _words(term)
        return bool(words) and " ".join(words) not in self._person_columns and all(w in self._name_words for w in words)

    def person_column(self, name: str) -> int | None:
        return self._person_columns.get(name)

    def role_scores(self, seeds: Sequence[int], role: str) -> np.ndarray:
        """1 for every item crediting, in ``role``, a person credited in that role on the ``seeds``
        (the director of the films named: their other films), 0.5 for the items crediting them in
        another role (films Damien Chazelle wrote but did not direct), the seeds themselves 0."""
        out = np.zeros(self.n_items, dtype=np.float32)
        m = self._roles.get(role)
        if m is None or not len(seeds):
            return out
        people = np.unique(m[list(seeds)].indices)
        if not len(people):
            return out
        in_role = np.asarray(m[:, people].sum(axis=1)).ravel() > 0
        credited = np.asarray(self.credits[:, people].sum(axis=1)).ravel() > 0
        out = np.where(in_role, 1.0, np.where(credited, 0.5, 0.0)).astype(np.float32)
        out[list(seeds)] = 0.0
        return out

    def named_credit_scores(self, named: Mapping[int, float]) -> np.ndarray:
        """Per item: the weight of the most recent person named (``named_people``) it credits, in [0, 1]."""
        out = np.zeros(self.n_items, dtype=np.float32)
        for col, weight in named.items():
            rows = self._credits_csc.indices[self._credits_csc.indptr[col]:self._credits_csc.indptr[col + 1]]
            out[rows] = np.maximum(out[rows], weight)
        return out


def asked_role(text: str) -> tuple[str, re.Match] | None:
    """The role whose people ``text`` asks for the films of ("what else did that director make?":
    director; "more with that actress": star), with the match; None when it asks for none."""
    found = None
    for m in ROLE_ASK.finditer(text):
        found = m
    if found is None:
        return None
    word = (found.group("role") or found.group("by") or found.group("verb")).lower()
    return _ROLE_WORDS[word], found


def credited(item: Item, role: str) -> list[str]:
    """The names ``item`` credits in ``role`` ("director", "star", "writer"), as the catalog spells them."""
    return [name for key in ROLE_KEYS[role] for name in _values(item.attributes.get(key))]


def _values(raw) -> list[str]:
    if isinstance(raw, str):
        return [raw] if raw.strip() else []
    if isinstance(raw, list):
        return [str(v) for v in raw if isinstance(v, (str, int)) and str(v).strip()]
    return []


_PARTICLES = {"de", "del", "della", "di", "da", "van", "von", "le", "la", "du", "mc", "mac"}


def _surnames(people: Mapping[str, int], films: np.ndarray, catalog: Catalog) -> dict[str, int]:
    """Surnames that say who is meant on their own ("Tarantino", "Spielberg"): the person credited
    on the most films (at least 5, twice as many as anyone else of that surname), when titles and
    descriptions use the word otherwise (not in that person's full name) for under a tenth as many
    items as the person has films ("Stone", "King" and "Cruise" are words of the catalog)."""
    by_surname: dict[str, list[tuple[float, int, str]]] = {}
    for name, col in people.items():
        words = _words(name)
        if len(words) >= 2 and len(words[-1]) >= 4 and words[-1].isalpha():
            by_surname.setdefault(words[-1], []).append((float(films[col]), col, " ".join(words)))
            if len(words) >= 3 and words[-2] in _PARTICLES:  # "Robert De Niro": "deniro" too
                by_surname.setdefault(words[-2] + words[-1], []).append((float(films[col]), col, " ".join(words)))
    candidates: dict[str, tuple[int, str, float]] = {}
    for surname, credited in by_surname.items():
        credited.sort(reverse=True)
        most, col, name = credited[0]
        if most >= 5 and (len(credited) == 1 or most >= 2 * credited[1][0]):
            candidates[surname] = (col, name, most)
    if not candidates:
        return {}  # a catalog without credits (toys): no need to read its texts
    uses = dict.fromkeys(candidates, 0)
    for item in catalog:
        words = _words(f"{item.title} {item.description}")
        padded = " " + " ".join(words) + " "
        for w in set(words) & uses.keys():
            if padded.count(f" {w} ") > padded.count(f" {candidates[w][1]} "):
                uses[w] += 1
    return {w: col for w, (col, _, most) in candidates.items() if uses[w] * 10 <= most}
