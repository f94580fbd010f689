"""Lexical relevance: BM25 (the ``bm25s`` library) over each item's title, category, attributes and description.

Complements dense retrieval on exact words (brands, "Lego", "Hornby", actor names) that sentence
embeddings blur. Scores are returned for every item so the ranker can mix them with others.
"""
from __future__ import annotations

import logging

import numpy as np

from .catalog import Catalog


class LexicalIndex:
    def __init__(self, catalog: Catalog):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self._bm25s = bm25s
        corpus = [item.search_text() for item in catalog]
        tokens = bm25s.tokenize(corpus, stopwords="en", show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(tokens, show_progress=False)
        self.vocab = tokens.vocab
        self.n_items = len(catalog)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of ``query`` against every item, in catalog order (zeros when no word is known)."""
        words = [w for w in self._bm25s.tokenize(query, stopwords="en", return_ids=False,
                                                 show_progress=False)[0] if w in self.vocab]
        if not words:
            return np.zeros(self.n_items, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(words), dtype=np.float32)
