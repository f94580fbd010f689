"""Lexical relevance: BM25 (the ``bm25s`` library) over each item's title, category, attributes and description.

Complements dense retrieval on exact words (brands, "Lego", "Hornby", actor names) that sentence
embeddings blur. Scores are returned for every item so the ranker can mix them with others.
Queries are chat messages, not search boxes: besides English stop words, conversational filler
("hi", "show me", "something", "good", "movie", "anything else?") is dropped before scoring, and
``content_words`` tells the ranker whether a turn said anything it can search for.
``TermIndex`` answers "which items mention this term" for the ranker's must-have and exclusion
filters without scanning every item's text.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections import OrderedDict, defaultdict
from typing import Sequence

import numpy as np

from .catalog import Catalog

# Words a shopper uses to talk, not to describe what they want. Kept generic (no genres, no product
# types): a word here is invisible to BM25 and does not make a turn "informative".
FILLER = frozenset("""
a about above after again against all also am an and any anybody anyone anything are aren as at be
because been before being below between both but by can cannot could did didn do does doesn doing don
down during each else few for from further had hadn has hasn have haven having he her here hers herself
him himself his how i if in into is isn it its itself just me more most my myself no nor not now of off
on once only or other others our ours ourselves out over own same shan she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was
wasn we were weren what when where which while who whom why will with won would wouldn you your yours
yourself yourselves ll ve re im id ive youre thats whats dont cant wont isnt u ur ya yeah yep yes nope ok
okay oh hi hello hey thanks thank thx please pls plz lol haha hmm um well sure maybe really quite just
like likes liked love loved loves enjoy enjoyed good great nice cool awesome fine best better favorite perfect
favourite fan want wanted wants need needs looking look find show tell give get got suggest suggestions
suggestion recommend recommendations recommendation recommended idea ideas option options choice choices
alternative alternatives something someone thing things stuff kind kinds sort type types one ones else
another different new similar same lot lots much many watch watched watching seen see saw heard
hate hated hates dislike disliked dislikes first second third fourth fifth last
recent recently newer newest latest older oldest released
movie movies film films flick flicks buy bought item items product products toy toys gift gifts
present presents birthday mood tonight
""".split())


# Pictographs that name a thing ("🦖" T-REX, "🧩" JIGSAW PUZZLE PIECE, "🐱" CAT FACE), not a feeling or a
# gesture (smileys, hearts, hands, stars, fire): those say nothing to search for.
_PICTOGRAPH = re.compile(r"[\u2600-\u27bf\u2b00-\u2bff\U0001F300-\U0001FAFF]")
_NOT_A_THING = re.compile(r"HEART|HAND|FINGER|THUMBS|SIGN|MARK|FIRE|STAR|SPARKLE|MODIFIER|CLAPPING|FLEXED|"
                          r"HUNDRED|COLLISION|SMIL|GRIN|TEAR|KISS|WINK|POUTING|CRYING|LAUGHING|PARTY POPPER")


def spell_emoji(text: str) -> str:
    """``text`` with each pictograph that names a thing replaced by its name in words ("🦖🦕 for my
    son" -> "t-rex sauropod for my son"), so that it can be searched and understood; others are left."""
    if not _PICTOGRAPH.search(text):
        return text

    def name(m: re.Match) -> str:
        ch = m.group()
        if 0x1F600 <= ord(ch) <= 0x1F64F:  # the emoticons block: faces
            return ch
        spelled = unicodedata.name(ch, "")
        if not spelled or _NOT_A_THING.search(spelled):
            return ch
        return f" {spelled.removesuffix(' FACE').lower()} "

    return _PICTOGRAPH.sub(name, text)


def plain_words(text: str) -> list[str]:
    """The lower-cased alphanumeric words of ``text`` (apostrophes dropped: "don't" -> "dont")."""
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", ""))


def content_words(text: str) -> list[str]:
    """The words of ``text`` that are not filler (lower-cased): empty for "any other options?"."""
    return [w for w in plain_words(text) if w not in FILLER]


class LexicalIndex:
    def __init__(self, catalog: Catalog):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self._bm25s = bm25s
        corpus = [item.search_text() for item in catalog]
        tokens = bm25s.tokenize(corpus, stopwords="en", show_progress=False)
        self.vocab = tokens.vocab
        self.n_items = len(catalog)
        self.retriever = None
        if self.vocab:  # bm25s cannot index an empty vocabulary (titles like "0" or "A" only)
            self.retriever = bm25s.BM25()
            self.retriever.index(tokens, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of ``query`` against every item, in catalog order (zeros when no word is known).

        Filler words are dropped first: "show me something good" must not score items for "show"."""
        words = [w for w in self._bm25s.tokenize(query, stopwords=list(FILLER), return_ids=False,
                                                 show_progress=False)[0] if w in self.vocab]
        if not words or self.retriever is None:
            return np.zeros(self.n_items, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(words), dtype=np.float32)


class TermIndex:
    """Which items' (normalised) texts contain a term: an inverted index instead of a scan.

    ``containing(term)`` keeps plain substring semantics (``term in text``) and ``with_word(term)``
    whole-word/phrase semantics; both look only at the texts the word postings allow and then check
    those exactly, so the answer is the scan's answer. Results are cached per term because a
    conversation's must-have and exclusion terms repeat every turn.
    """

    def __init__(self, texts: Sequence[str], cache_size: int = 1024):
        self.texts = list(texts)
        postings: dict[str, list[int]] = defaultdict(list)
        # Texts whose whitespace is not single spaces ("a\tb", "a  b"): a one-word posting is a
        # whole-word hit only where the words are separated by single spaces, so only these are checked.
        irregular: list[int] = []
        for pos, text in enumerate(self.texts):
            words = text.split()
            if " ".join(words) != text:
                irregular.append(pos)
            for word in set(words):
                postings[word].append(pos)
        self.postings = {w: np.asarray(p, dtype=np.int64) for w, p in postings.items()}
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        # Every distinct word once, "\n"-delimited: substring lookups search this, not every text.
        self._words = list(self.postings)
        self._blob = "\n" + "\n".join(self._words) + "\n"
        self._starts = np.cumsum([0] + [len(w) + 1 for w in self._words[:-1]], dtype=np.int64)
        self._irregular = np.asarray(irregular, dtype=np.int64)

    def containing(self, term: str) -> np.ndarray:
        """Positions of texts with ``term`` as a substring, ascending."""
        return self._cached("sub", term, lambda: self._substring(term))

    def with_word(self, term: str) -> np.ndarray:
        """Positions of texts with ``term`` as whole word(s), ascending."""
        words = term.split()
        if not words:
            return np.zeros(0, dtype=np.int64)
        if words == [term]:  # one word: its posting list is the answer, except on irregular texts
            return self._cached("word", term, lambda: self._one_word(term))
        return self._cached("word", term, lambda: self._verify(self._all_words(words), term, whole_word=True))

    def _one_word(self, term: str) -> np.ndarray:
        found = self.postings.get(term, np.zeros(0, dtype=np.int64))
        odd = self._intersect([found, self._irregular]) if len(self._irregular) else self._irregular
        misses = [p for p in odd.tolist() if not has_word(self.texts[p], term)]
        if not misses:
            return found
        keep = np.ones(len(self.texts), dtype=bool)
        keep[misses] = False
        return found[keep[found]]

    def _cached(self, kind: str, term: str, compute) -> np.ndarray:
        key = (kind, term)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = compute()
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return hit

    def _all_words(self, words: list[str]) -> np.ndarray:
        return self._intersect([self.postings.get(w, np.zeros(0, dtype=np.int64)) for w in set(words)])

    def _intersect(self, lists: list[np.ndarray]) -> np.ndarray:
        """Positions in every one of these ascending lists (a mask per list: no sorting)."""
        lists = sorted(lists, key=len)
        out = lists[0]
        for other in lists[1:]:
            if len(out) == 0:
                break
            mask = np.zeros(len(self.texts), dtype=bool)
            mask[other] = True
            out = out[mask[out]]
        return out

    def _substring(self, term: str) -> np.ndarray:
        words = term.split()
        if words == [term]:
            # No whitespace in the term: it occurs in a text exactly when it occurs inside one of the
            # text's words, so the union of those words' postings is the answer, with nothing to check.
            return self._vocab_postings(term)
        return self._verify(self._substring_candidates(term), term)

    def _substring_candidates(self, term: str) -> np.ndarray:
        words = term.split()
        if not words:
            return np.arange(len(self.texts))
        if " ".join(words) != term:  # odd spacing: only the longest word is sure to be inside a text word
            return self._vocab_postings(max(words, key=len))
        # A phrase found in a text: its inner words are whole words of the text, the first word ends
        # one ("car" in "scar") and the last word starts one ("car" in "cards").
        lists = [self._vocab_postings(words[0] + "\n"), self._vocab_postings("\n" + words[-1])]
        return self._intersect(lists + [self.postings.get(w, np.zeros(0, dtype=np.int64)) for w in set(words[1:-1])])

    def _vocab_postings(self, part: str) -> np.ndarray:
        """Positions of texts with a word containing ``part`` (a word ending with ``x`` for "x\n",
        starting with ``x`` for "\nx"): a search of the word list, not of every text."""
        blob, at, i = self._blob, [], self._blob.find(part)
        while i != -1:
            at.append(i)
            i = blob.find(part, i + 1)
        # A hit starts inside the word whose "\n" precedes it (or at that "\n", for "\nx").
        found = dict.fromkeys((np.searchsorted(self._starts, at, side="right") - 1).tolist())
        hits = [self.postings[self._words[i]] for i in found]
        if len(hits) <= 1:
            return hits[0] if hits else np.zeros(0, dtype=np.int64)
        union = np.zeros(len(self.texts), dtype=bool)
        for h in hits:
            union[h] = True
        return np.flatnonzero(union)

    def _verify(self, candidates: np.ndarray, term: str, whole_word: bool = False) -> np.ndarray:
        texts = self.texts
        if whole_word:
            return np.asarray([p for p in candidates.tolist() if has_word(texts[p], term)], dtype=np.int64)
        return np.asarray([p for p in candidates.tolist() if term in texts[p]], dtype=np.int64)


def has_word(text: str, term: str) -> bool:
    """Whole-word (or whole-phrase) containment on normalised text; 'lego' must not hit 'legolas':
    the term between spaces or the text's ends."""
    return f" {term} " in f" {text} "
