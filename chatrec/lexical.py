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
like likes liked love loved loves enjoy enjoyed good great nice cool awesome fine best better favorite
favourite fan want wanted wants need needs looking look find show tell give get got suggest suggestions
suggestion recommend recommendations recommendation recommended idea ideas option options choice choices
alternative alternatives something someone thing things stuff kind kinds sort type types one ones else
another different new similar same lot lots much many watch watched watching seen see saw heard
movie movies film films flick flicks buy bought item items product products toy toys gift gifts
""".split())


def content_words(text: str) -> list[str]:
    """The words of ``text`` that are not filler (lower-cased): empty for "any other options?"."""
    return [w for w in re.findall(r"[a-z0-9]+", text.lower().replace("'", "")) if w not in FILLER]


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
        for pos, text in enumerate(self.texts):
            for word in set(text.split()):
                postings[word].append(pos)
        self.postings = {w: np.asarray(p, dtype=np.int64) for w, p in postings.items()}
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def containing(self, term: str) -> np.ndarray:
        """Positions of texts with ``term`` as a substring, ascending."""
        return self._cached("sub", term, lambda: self._verify(self._substring_candidates(term), lambda t: term in t))

    def with_word(self, term: str) -> np.ndarray:
        """Positions of texts with ``term`` as whole word(s), ascending."""
        words = term.split()
        if not words:
            return np.zeros(0, dtype=np.int64)
        return self._cached("word", term, lambda: self._verify(self._all_words(words), lambda t: has_word(t, term)))

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
        lists = sorted((self.postings.get(w, np.zeros(0, dtype=np.int64)) for w in set(words)), key=len)
        out = lists[0]
        for other in lists[1:]:
            out = np.intersect1d(out, other, assume_unique=True)
        return out

    def _substring_candidates(self, term: str) -> np.ndarray:
        words = term.split()
        if not words:
            return np.arange(len(self.texts))
        if len(words) >= 3:
            # The inner words of a phrase found in a text are whole words of that text.
            inner = min(words[1:-1], key=lambda w: len(self.postings.get(w, ())))
            return self.postings.get(inner, np.zeros(0, dtype=np.int64))
        # An edge word may be cut ("car" in "cards"): it is inside some word of the text.
        longest = max(words, key=len)
        hits = [p for w, p in self.postings.items() if longest in w]
        return np.unique(np.concatenate(hits)) if hits else np.zeros(0, dtype=np.int64)

    def _verify(self, candidates: np.ndarray, test) -> np.ndarray:
        return np.asarray([p for p in candidates.tolist() if test(self.texts[p])], dtype=np.int64)


def has_word(text: str, term: str) -> bool:
    """Whole-word (or whole-phrase) containment on normalised text; 'lego' must not hit 'legolas'."""
    start = text.find(term)
    while start != -1:
        end = start + len(term)
        if (start == 0 or text[start - 1] == " ") and (end == len(text) or text[end] == " "):
            return True
        start = text.find(term, start + 1)
    return False
