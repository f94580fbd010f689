"""Hybrid ranking of catalog items for the current dialogue state.

score = dense similarity of the conversation to each item
      + lexical (BM25) relevance
      + similarity to items the user mentioned or liked (content and collaborative)
      - similarity to items the user rejected
      + popularity prior + aggregated feedback prior (from the store, with a minimum count)
      + soft bonuses for the wanted category and must-have terms
then hard filters: price bounds, exclusions, rejected items, items the user named themselves.
Items already shown are demoted, not hidden, so a still-best item can come back later.
Weights live in ``RankWeights``; ``benchmarks/`` measures each signal's contribution.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np

from .catalog import Catalog, Item
from .collab import CollaborativeModel
from .index import EmbeddingIndex
from .lexical import LexicalIndex
from .matching import normalize
from .state import DialogueState


@dataclass(frozen=True)
class RankWeights:
    dense: float = 1.0
    lexical: float = 0.3
    mentioned: float = 0.5  # content similarity to liked/mentioned items
    collab: float = 0.0  # item-item CF (only with interactions)
    popularity: float = 0.05
    feedback: float = 0.3
    category: float = 0.15
    must_have: float = 0.1
    rejected_similar: float = 0.4
    shown_penalty: float = 0.25
    turn_decay: float = 0.5  # weight of older user turns in the query
    feedback_min_count: int = 3

    def without(self, *names: str) -> "RankWeights":
        return replace(self, **{n: 0.0 for n in names})


@dataclass
class Ranked:
    item: Item
    score: float
    signals: dict[str, float] = field(default_factory=dict)


class Ranker:
    def __init__(self, catalog: Catalog, index: EmbeddingIndex, lexical: LexicalIndex | None = None,
                 collab: CollaborativeModel | None = None, weights: RankWeights = RankWeights()):
        self.catalog = catalog
        self.index = index
        self.lexical = lexical
        self.collab = collab
        self.weights = weights
        self.feedback_prior = np.zeros(len(catalog), dtype=np.float32)
        self.popularity = self._popularity()
        self._search_text = [normalize(i.search_text()) for i in catalog]
        self._prices = np.array([np.nan if i.price is None else i.price for i in catalog], dtype=np.float64)

    def set_feedback(self, counts: Mapping[str, tuple[int, int]]) -> None:
        """Aggregated (ups, downs) per item from the store become a prior in [-1, 1]."""
        prior = np.zeros(len(self.catalog), dtype=np.float32)
        for item_id, (ups, downs) in counts.items():
            pos = self.catalog.position.get(item_id)
            if pos is not None and ups + downs >= self.weights.feedback_min_count:
                prior[pos] = (ups - downs) / (ups + downs + 1)
        self.feedback_prior = prior

    def rank(self, state: DialogueState, k: int = 10, weights: RankWeights | None = None) -> list[Ranked]:
        return self.top(*self.score(state, weights or self.weights), k=k)

    def top(self, scores: np.ndarray, signals: dict[str, np.ndarray], k: int) -> list[Ranked]:
        """The ``k`` best items that no hard filter removed, best first."""
        k = min(k, int(np.isfinite(scores).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Ranked(self.catalog.items[i], float(scores[i]), {n: float(v[i]) for n, v in signals.items()})
                for i in top]

    def score(self, state: DialogueState, w: RankWeights) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        n = len(self.catalog)
        signals: dict[str, np.ndarray] = {}
        texts = [_without(t, state.prefs.exclude) for t in state.user_texts()]
        texts = [t for t in texts if t.strip()]
        if texts and w.dense:
            vecs = self.index.encode(texts)
            decay = np.array([w.turn_decay ** (len(texts) - 1 - i) for i in range(len(texts))], dtype=np.float32)
            query = (decay[:, None] * vecs).sum(axis=0)
            query /= np.linalg.norm(query) + 1e-9
            signals["dense"] = w.dense * self.index.scores(query)
        if texts and w.lexical and self.lexical is not None:
            lex = self.lexical.scores(" ".join(texts[-3:]))
            signals["lexical"] = w.lexical * lex / (lex.max() + 1e-9)
        seeds = self._seeds(state)
        if seeds and w.mentioned:
            pos, wts = zip(*seeds)
            centroid = (np.array(wts, dtype=np.float32)[:, None] * self.index.vectors[list(pos)]).sum(axis=0)
            centroid /= np.linalg.norm(centroid) + 1e-9
            signals["mentioned"] = w.mentioned * self.index.scores(centroid)
        if seeds and w.collab and self.collab is not None:
            cf = self.collab.similar([p for p, _ in seeds], [x for _, x in seeds])
            signals["collab"] = w.collab * cf / (cf.max() + 1e-9) if cf.max() > 0 else cf
        rejected = [self.catalog.position[i] for i in state.rejected if i in self.catalog.position]
        if rejected and w.rejected_similar:
            sims = self.index.vectors @ self.index.vectors[rejected].T
            signals["rejected"] = -w.rejected_similar * np.clip(sims.max(axis=1), 0, None)
        if w.popularity:
            signals["popularity"] = w.popularity * self.popularity
        if w.feedback and self.feedback_prior.any():
            signals["feedback"] = w.feedback * self.feedback_prior
        signals.update(self._preference_bonuses(state, w))
        total = np.zeros(n, dtype=np.float32)
        for v in signals.values():
            total += v
        total += self._penalties(state, w)
        return total, signals

    def _seeds(self, state: DialogueState) -> list[tuple[int, float]]:
        seeds: dict[int, float] = {}
        for item_id, sentiment in state.mentioned.items():
            if sentiment >= 0 and item_id in self.catalog.position:
                seeds[self.catalog.position[item_id]] = 1.0 if sentiment > 0 else 0.7
        for item_id in state.liked:
            if item_id in self.catalog.position:
                seeds[self.catalog.position[item_id]] = 1.0
        return list(seeds.items())

    def _preference_bonuses(self, state: DialogueState, w: RankWeights) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        prefs = state.prefs
        if prefs.category and w.category:
            wanted = prefs.category
            out["category"] = w.category * np.array([i.category == wanted for i in self.catalog], dtype=np.float32)
        if prefs.must_have and w.must_have:
            terms = [normalize(t) for t in prefs.must_have]
            out["must_have"] = w.must_have * np.array(
                [sum(t in text for t in terms) / len(terms) for text in self._search_text], dtype=np.float32)
        return out

    def _penalties(self, state: DialogueState, w: RankWeights) -> np.ndarray:
        """-inf for filtered items, a demotion for items already shown."""
        pen = np.zeros(len(self.catalog), dtype=np.float32)
        prefs = state.prefs
        with np.errstate(invalid="ignore"):
            if prefs.max_price is not None:
                pen[self._prices > prefs.max_price + 1e-9] = -np.inf
            if prefs.min_price is not None:
                pen[self._prices < prefs.min_price - 1e-9] = -np.inf
        if prefs.max_price is not None or prefs.min_price is not None:
            pen[np.isnan(self._prices)] -= 0.2  # unknown price: keep, but below known matches
        for term in prefs.exclude:
            t = normalize(term)
            if t:
                hits = [i for i, text in enumerate(self._search_text) if _has_word(text, t)]
                pen[hits] = -np.inf
        for item_id in list(state.rejected) + [i for i in state.mentioned]:
            pos = self.catalog.position.get(item_id)
            if pos is not None:
                pen[pos] = -np.inf
        for item_id in set(state.shown) | set(state.liked):
            pos = self.catalog.position.get(item_id)
            if pos is not None and math.isfinite(pen[pos]):
                pen[pos] -= w.shown_penalty
        return pen

    def _popularity(self) -> np.ndarray:
        if self.collab is not None and self.collab.popularity.any():
            return self.collab.popularity_prior()
        counts = np.array([math.log1p(i.review_count or 0) for i in self.catalog], dtype=np.float32)
        return counts / counts.max() if counts.max() > 0 else counts


def _has_word(text: str, term: str) -> bool:
    """Whole-word (or whole-phrase) containment on normalised text; 'lego' must not hit 'legolas'."""
    start = text.find(term)
    while start != -1:
        end = start + len(term)
        if (start == 0 or text[start - 1] == " ") and (end == len(text) or text[end] == " "):
            return True
        start = text.find(term, start + 1)
    return False


def _without(text: str, terms: list[str]) -> str:
    """The text minus its excluded terms, so "no Lego" does not pull the query towards Lego."""
    for term in terms:
        text = re.sub(rf"\b(?:no|not|without|avoid)?\s*{re.escape(term)}\b", " ", text, flags=re.I)
    return text
