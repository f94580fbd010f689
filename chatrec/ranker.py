"""Hybrid ranking of catalog items for the current dialogue state.

score = dense similarity of the conversation to each item (informative user turns only, recent
        ones weigh more: "any other options?" leaves the query as it was)
      + lexical (BM25) relevance, filler words dropped
      + similarity to items the user mentioned or liked (content), and item-item collaborative
        similarity to them (and, more weakly, to items a recorded recommender suggested and the user did not reject;
        our own picks count only once the user takes them up)
      + catalog facets (``facets.py``, only for catalogs with genre / director / star... attributes):
        genres asked for in words ("something scary"), the genre profile of the named or liked items,
        people shared with them (sequels, a director's other films), people named in words
      - a fixed demotion for near-duplicates of items the user rejected (similarity >= threshold)
      + popularity and recency priors + aggregated feedback prior (from the store, with a minimum count)
      + learned priors from other dialogues when a ``TargetPrior`` is set (off by default): how often
        items were suggested, after which items, for which requests (the nearest ones, and the mean
        request of each item), and in which conversations
      + soft bonuses for the wanted category and must-have terms
then hard filters: price bounds, the recommended age (where the catalog gives one), exclusions, rejected items, items the user named themselves.
Items already shown are demoted, not hidden, so a still-best item can come back later.
Weights live in ``RankWeights``; ``benchmarks/ranking.py`` measures each signal's contribution
and chose the defaults. Reranking by an LM is not done here (see ``recommender.py``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import ClassVar, Iterable, Mapping, Sequence

import numpy as np

from .catalog import Catalog, Item
from .collab import CollaborativeModel, TargetPrior
from .facets import ROLE_ASK, Facets, asked_role, credited
from .index import EmbeddingIndex
from .lexical import LexicalIndex, TermIndex, content_words
from .matching import normalize
from .state import DialogueState
from .tracker import _category_words, category_family, singular, without_age, without_budget

# A film shows as the listing people name more unless another listing scores this much more
# (about a genre's weight; an era asked for is worth 4): see ``preferred_view``.
PREFER_MARGIN = 1.0


@dataclass(frozen=True)
class RankWeights:
    # Defaults: chosen by cross-validated coordinate search on the ReDial valid split without learned
    # priors (benchmarks/ranking.py, benchmarks/results/ranking.md), rounded.
    dense: float = 1.0
    lexical: float = 0.7  # BM25 on the informative turns, scaled to [0, 1] per query
    mentioned: float = 2.5  # content similarity to items the user named or liked
    collab: float = 0.7  # item-item CF (only with interactions)
    genre: float = 0.4  # genres the user asked for in words (catalogs with a genre attribute)
    genre_asked: float = 0.6  # and more for a genre asked for ("any good documentaries?"), not a taste ("I like comedies")
    audience: float = 1.0  # asked for something for kids / the family: items of no family genre demoted
    seed_genre: float = 0.7  # genre profile of the named/liked items (catalogs with a genre attribute)
    credits: float = 1.5  # people shared with the named/liked items (catalogs with director/star/... attributes)
    named_credits: float = 1.5  # items crediting a person the user named ("something with Tom Hanks")
    role_credits: float = 3.0  # items by that role's people on the films just named ("what else did that director make?")
    popularity: float = 0.7
    feedback: float = 0.3
    category: float = 0.3
    must_have: float = 1.0  # share of the must-haves ("anything with dinosaurs?") an item's text has
    rejected_similar: float = 0.4  # demotion of near-duplicates of thumbs-down items
    rejected_threshold: float = 0.8  # cosine similarity from which an item counts as a near-duplicate
    liked_similar: float = 0.2  # thumbs-up items pull their neighbours up
    shown_penalty: float = 0.25
    shown_more: float = 10.0  # and below any unseen match when the user asks for others ("anything else?")
    shown_again: float = 3.0  # and this much more for each time it was suggested again without being asked for
    age_outgrown: float = 0.5  # demotion of items recommended only for children younger than the one asked for
    age_little_ones: float = 1.0  # for a child under 3, items whose text says they are for babies or toddlers
    age_unknown_toddler: float = 2.0  # and the items of no stated age that do not say so sink
    asked: float = 2.0  # items the latest message asks about / has not seen, or follows up on ("what is it about?")
    shown_seed: float = 0.5  # items another recommender suggested (not rejected) are weak seeds for "collab"/"cooc"/"comention"
    recency: float = 0.5  # prior for recent items (catalogs with a year; 0 for every item without one)
    era: float = 0.5  # items from the era the user hinted at ("an old classic")
    era_asked: float = 4.0  # items from the decade named or the new ones asked for ("80s horror", "anything newer?")
    target_pop: float = 0.0  # learned: how often human recommenders suggested the item (TargetPrior)
    cooc: float = 0.0  # learned: suggested after the items named here (TargetPrior)
    requests: float = 0.0  # learned: how many similar requests in other dialogues were offered the item (TargetPrior)
    comention: float = 0.0  # learned: talked of in the same conversations as the items named here (TargetPrior)
    request_profile: float = 0.0  # learned: closeness of the request to the mean request each item was offered for
    genre_requests: float = 0.0  # learned: offered to people who asked for the genres asked for here (TargetPrior)
    comention_far: float = 0.0  # learned: talked of in the same conversations as the items "comention" lifts
    comention_top: float = 0.0  # learned: talked of in the same conversations as the best-scored items
    top_companions: int = 30  # how many of the best-scored items "comention_top" follows
    requests_k: int = 100  # how many similar training turns vote
    turn_decay: float = 0.5  # weight of older user turns in the query
    feedback_min_count: int = 3

    LEARNED: ClassVar[tuple[str, ...]] = ("target_pop", "cooc", "requests", "comention", "request_profile",
                                          "genre_requests", "comention_far", "comention_top")

    @classmethod
    def learned(cls) -> "RankWeights":
        """The defaults plus the learned priors at their cross-validated weights (with training dialogues)."""
        return cls(target_pop=0.25, cooc=0.2, requests=0.1, comention=1.0, request_profile=0.25, genre_requests=1.0,
                   comention_far=0.5, comention_top=0.5)

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
        self._feedback_counts: dict[str, tuple[int, int]] = {}
        self.popularity = popularity_prior(catalog, collab)
        self.recency = recency_prior(catalog)
        self.target_prior: TargetPrior | None = None
        self._preferred: dict[int, int] = {}  # listing -> the listing of the same film people use more
        self._target_pop = np.zeros(len(catalog), dtype=np.float32)
        self.facets = Facets(catalog)  # genres and credits; inactive when the catalog has neither
        self._search_text = [normalize(i.search_text()) for i in catalog]
        self._terms = TermIndex(self._search_text)  # must-have / exclusion lookups without a full scan
        self._prices = np.array([np.nan if i.price is None else i.price for i in catalog], dtype=np.float64)

    def set_feedback(self, counts: Mapping[str, tuple[int, int]]) -> None:
        """Aggregated (ups, downs) per item from the store become a prior in [-1, 1]."""
        self._feedback_counts = {k: (int(u), int(d)) for k, (u, d) in counts.items()}
        self.feedback_prior = np.zeros(len(self.catalog), dtype=np.float32)
        for item_id in self._feedback_counts:
            self._update_prior(item_id)

    def add_feedback(self, item_ids: Iterable[str], value: int) -> None:
        """One new thumbs (+1/-1) on these items, from any conversation: O(items), no store query."""
        counts = self._feedback_counts
        for item_id in item_ids:
            ups, downs = counts.get(item_id, (0, 0))
            counts[item_id] = (ups + 1, downs) if value > 0 else (ups, downs + 1)
            self._update_prior(item_id)

    def _update_prior(self, item_id: str) -> None:
        pos = self.catalog.position.get(item_id)
        ups, downs = self._feedback_counts[item_id]
        if pos is not None:  # below the minimum count one user's opinion must not move everyone's ranking
            enough = ups + downs >= self.weights.feedback_min_count
            self.feedback_prior[pos] = (ups - downs) / (ups + downs + 1) if enough else 0.0

    def set_target_prior(self, prior: TargetPrior | None) -> None:
        """Priors learned from other dialogues' targets (see ``TargetPrior``); None removes them."""
        self.target_prior = prior
        self._preferred = prior.preferred_listings() if prior is not None else {}
        self.__dict__.pop("_preferred_rows", None)
        self._target_pop = prior.popularity() if prior is not None else np.zeros(len(self.catalog), np.float32)

    def rank(self, state: DialogueState, k: int = 10, weights: RankWeights | None = None) -> list[Ranked]:
        return self.top(*self.score(state, weights or self.weights), k=k, cover=self.genre_groups(state))

    def top(self, scores: np.ndarray, signals: dict[str, np.ndarray], k: int,
            cover: Sequence[np.ndarray] = ()) -> list[Ranked]:
        """The ``k`` best items that no hard filter removed, best first, one listing per title.
        ``cover``: item masks of groups the list takes in turn (``genre_groups``, ``covering``)."""
        n_finite = int(np.isfinite(scores).sum())
        if k <= 0 or n_finite == 0:
            return []
        want = min(n_finite, 2 * k + 16)  # room for the other listings dropped below; more if needed
        if cover:  # and for the groups to take turns: a genre asked for may start far down
            want = min(n_finite, max(want, 10 * k))
        while True:
            chosen = self._one_listing_each(scores, want, want if cover else k)
            if len(chosen) >= k or want == n_finite:
                break
            want = min(n_finite, 4 * want)
        chosen = covering(chosen, cover, k) if cover else chosen
        return [Ranked(self.catalog.items[i], float(scores[i]), {n: float(v[i]) for n, v in signals.items()})
                for i in chosen]

    def genre_groups(self, state: DialogueState) -> list[np.ndarray]:
        """The items of each genre, when the latest turn that spoke of genres asked for two or more as
        alternatives ("any good westerns or war films?", "I'm looking for an action or comedy movie",
        ``Facets.alternative_genres``): a list shows them in turn, not only the one the other signals
        favour. Not for genres stacked on one film ("a romantic comedy"), nor for a taste ("I like
        war movies and westerns": the recorded recommenders of ReDial then suggest the genre the
        other signals favour, 6 of 7 changed pairs in the top 10). Else none."""
        if not self.facets.has_genres or not self.weights.genre:
            return []
        wishes = self._wishes(state)
        asked = self.facets.asked_genres(wishes, self._genres(state, self.weights.turn_decay))
        for text in reversed(wishes):  # the latest turn that spoke of genres
            if (self.facets.wanted_genres([text]) != 0).any():
                groups = [self.facets.genres[:, g] > 0 for g in self.facets.alternative_genres(text) if asked[g] > 0]
                return groups if len(groups) >= 2 else []
        return []

    def _one_listing_each(self, scores: np.ndarray, n: int, k: int) -> list[int]:
        """Positions of the ``k`` best of the ``n`` best items, one listing per title: fewer when the ``n``
        run out. A film shows as the listing people use more, ranked by that listing's score
        (``preferred_view``)."""
        prefer = self._preferred
        if prefer:
            scores, prefer = preferred_view(scores, prefer, self._preferred_rows)
        top = np.argpartition(-scores, n - 1)[:n]
        return one_listing_each(top[np.argsort(-scores[top], kind="stable")].tolist(), self.catalog.listings, k,
                                prefer, scores)

    @cached_property
    def _preferred_rows(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.fromiter(self._preferred.keys(), dtype=np.int64, count=len(self._preferred))
        return rows, np.fromiter(self._preferred.values(), dtype=np.int64, count=len(self._preferred))

    def score(self, state: DialogueState, w: RankWeights) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Total score per item (-inf where a hard filter removes it) and each weighted signal."""
        signals = self._query_signals(state, w)
        signals.update(self._seed_signals(state, w))
        signals.update(self._prior_signals(w))
        signals.update(self._preference_bonuses(state, w))
        total = np.zeros(len(self.catalog), dtype=np.float32)
        for v in signals.values():
            total += v
        total += self._penalties(state, w)
        if w.comention_top and self.target_prior is not None:
            signals["comention_top"] = w.comention_top * self._companions(total, w.top_companions)
            total += signals["comention_top"]
        return total, signals

    def _companions(self, total: np.ndarray, n: int) -> np.ndarray:
        """Items talked of in the same training conversations as the ``n`` best-scored ones, each of
        those weighted by exp(its score - the best score): what a list like this one came up with.
        It reaches films that no named item led to but that conversations about such films named."""
        finite = np.flatnonzero(np.isfinite(total))
        if not len(finite):
            return np.zeros_like(total)
        best = finite[np.argpartition(-total[finite], min(n, len(finite)) - 1)[:n]]
        return self.target_prior.together(best, np.exp(total[best] - total[best].max()))

    def query_vector(self, state: DialogueState, w: RankWeights | None = None) -> np.ndarray | None:
        """Unit embedding of what the user asked for: informative turns, recent ones weigh more.

        Only turns with content words count: "show me other options" must not push the earlier
        "a wooden train under £20" aside (nor shift the decay), so the query keeps its weight."""
        texts = informative_texts(state)
        if not texts:
            return None
        decay_rate = (w or self.weights).turn_decay
        vecs = self.index.encode(texts)
        decay = np.array([decay_rate ** (len(texts) - 1 - i) for i in range(len(texts))], dtype=np.float32)
        query = (decay[:, None] * vecs).sum(axis=0)
        return query / (np.linalg.norm(query) + 1e-9)

    def _query_signals(self, state: DialogueState, w: RankWeights) -> dict[str, np.ndarray]:
        """What the user wrote: dense similarity, BM25, and what similar requests were offered (learned)."""
        out: dict[str, np.ndarray] = {}
        prior = self.target_prior
        learned = prior is not None and (w.requests or w.request_profile)
        query = self.query_vector(state, w) if (w.dense or learned) else None
        if query is not None and w.dense:
            out["dense"] = w.dense * self.index.scores(query)
        if query is not None and learned and w.requests:
            out["requests"] = w.requests * prior.similar_requests(query, w.requests_k)
        if query is not None and learned and w.request_profile:
            out["request_profile"] = w.request_profile * prior.request_profiles(query)
        if w.era and self._years.any():
            era = self._era(state, w.turn_decay)
            if era is not None:
                (lo, hi), strength, kind = era
                weight = w.era if kind == "old" else w.era_asked  # "old" is a hint: "my old favourite"
                out["era"] = weight * strength * ((self._years >= lo) & (self._years <= hi)).astype(np.float32)
        learned = prior is not None and w.genre_requests and prior.genre_targets is not None
        wanted = self._genres(state, w.turn_decay) if self.facets.has_genres and (w.genre or learned) else None
        if learned and wanted is not None and (wanted > 0).any():
            out["genre_requests"] = w.genre_requests * prior.asked_for(dict(zip(self.facets.genre_names, wanted)))
        if w.genre and wanted is not None and wanted.any():
            out["genre"] = w.genre * self.facets.genre_scores(wanted)
            unsuited = self.facets.audience_scores(wanted)
            if w.audience and unsuited is not None:
                out["audience"] = -w.audience * unsuited
            wishes = self._wishes(state)
            asked = self.facets.asked_genres(wishes, wanted)
            if w.genre_asked and asked.any():  # "a comedy for my daughters": only comedies made for them
                suited = 1.0 if unsuited is None else (unsuited == 0).astype(np.float32)
                together = self.facets.stacked_genres(wishes)  # "a funny horror movie": horror comedies
                out["genre_asked"] = w.genre_asked * self.facets.asked_genre_scores(asked, together) * suited
        if w.named_credits and self.facets.has_credits:
            named = self.facets.named_credit_scores(self._people(state, w.turn_decay))
            if named.any():
                out["named_credits"] = w.named_credits * named
        if w.role_credits and self.facets.has_credits and (said := state.said()):
            if (role := asked_role(said[-1])) is not None and (refs := self._role_references(state)):
                out["role_credits"] = w.role_credits * self.facets.role_scores(refs, role[0])
        texts = informative_texts(state)
        if texts and w.lexical and self.lexical is not None:
            lex = self.lexical.scores(" ".join(texts[-3:]))
            if lex.max() > 0:
                out["lexical"] = w.lexical * lex / lex.max()
        return out

    def role_without_others(self, state: DialogueState) -> list[str]:
        """The people the latest message asks for more of ("what else did that director make?") when
        the catalog has nothing else of theirs (Jordan Peele after Get Out), as the catalog spells
        them: the reply owns up rather than pass other films off as theirs. Empty otherwise."""
        said = state.said()
        if not (said and self.facets.has_credits and (role := asked_role(said[-1])) is not None
                and (refs := self._role_references(state))):
            return []
        if self.facets.role_scores(refs, role[0]).any():
            return []
        return list(dict.fromkeys(name for p in refs for name in credited(self.catalog.items[p], role[0])))

    def _role_references(self, state: DialogueState) -> list[int]:
        """The films "that director" means: those the user named last, else the one they asked about or
        liked last, else the one suggestion just shown."""
        ids = (state.last_named or state.asked[-1:] or state.liked[-1:]
               or (state.last_shown if len(state.last_shown) == 1 else []))
        return [self.catalog.position[i] for i in ids if i in self.catalog.position]

    # -- wishes in words: an era, genres, people. Each can be unticked in the UI ("What I understood"):
    # ``state.dropped[key]`` is the number of user turns then, and only later turns can bring it back.
    def _wishes(self, state: DialogueState, key: str = "") -> list[str]:
        """The user's turns since ``key`` was dropped that say something (turns that only react, "I
        hated the first one", "anything else?", do not age the wishes before them), oldest first."""
        said = state.said(titles=False, keep=self._title_says_true)
        texts = said[state.dropped.get(key, 0):] if key else said
        return [t for t in texts if content_words(t) or wanted_era([t], self._newest_year)]

    def _title_says_true(self, item_id: str, title: str) -> bool:
        """Whether a title the user typed may stand in their wishes: the genre words in it are the
        film's genres ("The Amityville Horror"), unlike "Scary Movie" (a comedy) or "The Family Man"."""
        pos = self.catalog.position.get(item_id)
        said = np.flatnonzero(self.facets.wanted_genres([title]) > 0) if self.facets.has_genres else ()
        return pos is not None and all(self.facets.genres[pos, g] for g in said)

    def _era(self, state: DialogueState, decay: float) -> tuple[tuple[int, int], float, str] | None:
        return wanted_era(self._wishes(state, "era"), self._newest_year, decay)

    def wanted_genres(self, state: DialogueState, w: RankWeights | None = None) -> np.ndarray:
        """How much the user asked for each genre of ``facets.genre_names`` (refused ones: 0)."""
        return np.clip(self._genres(state, (w or self.weights).turn_decay), 0, None)

    def _genres(self, state: DialogueState, decay: float) -> np.ndarray:
        wanted = self.facets.wanted_genres(self._wishes(state), decay)
        for key in state.dropped:
            if key.startswith("genre:") and (name := key[6:]) in self.facets.genre_names:
                g = self.facets.genre_names.index(name)
                wanted[g] = self.facets.wanted_genres(self._wishes(state, key), decay)[g]
        return wanted

    def _people(self, state: DialogueState, decay: float) -> dict[int, float]:
        named = self.facets.named_people(self._wishes(state), decay)
        for key in state.dropped:
            if key.startswith("person:") and (col := self.facets.person_column(key[7:])) is not None:
                again = self.facets.named_people(self._wishes(state, key), decay)
                named.pop(col, None)
                if col in again:
                    named[col] = again[col]
        return named

    def era_span(self, state: DialogueState) -> tuple[int, int] | None:
        """The release years the ranking follows now ("the 1990s": (1990, 1999)), or None."""
        era = self._era(state, self.weights.turn_decay) if self._years.any() else None
        return era[0] if era is not None else None

    def understood(self, state: DialogueState) -> list[tuple[str, str]]:
        """(label, key) of the wishes in words the ranking follows now: an era ("Era: the 1990s"),
        genres asked for ("Genre: comedy") and people named ("With: Jim Carrey")."""
        out: list[tuple[str, str]] = []
        if self._years.any() and (era := self._era(state, self.weights.turn_decay)) is not None:
            (lo, hi), _, kind = era
            label = {"decade": f"the {lo}s", "new": "new releases", "not old": f"{lo} or later",
                     "since": f"{lo} or later"}.get(kind, f"before {hi + 1}")  # old, older, until
            out.append((f"Era: {label}", "era"))
        if self.facets.has_genres:
            wanted = self._genres(state, self.weights.turn_decay)
            out += [(f"Genre: {self.facets.genre_names[g]}", f"genre:{self.facets.genre_names[g]}")
                    for g in np.flatnonzero(wanted > 0)]
        if self.facets.has_credits:
            for col in self._people(state, self.weights.turn_decay):
                name = self.facets.person_name(col)
                out.append((f"With: {name.title()}", f"person:{name}"))
        return out

    def _seed_signals(self, state: DialogueState, w: RankWeights) -> dict[str, np.ndarray]:
        """Items named or liked (content and collaborative neighbours); items the assistant already
        suggested count as weaker seeds for the collaborative signals (``shown_seed``)."""
        out: dict[str, np.ndarray] = {}
        named = self._seeds(state)
        if named and w.mentioned:
            pos, wts = zip(*named)
            centroid = (np.array(wts, dtype=np.float32)[:, None] * self.index.vectors[list(pos)]).sum(axis=0)
            centroid /= np.linalg.norm(centroid) + 1e-9
            out["mentioned"] = w.mentioned * self.index.scores(centroid)
        seeds = self._seeds(state, w.shown_seed)
        positions, strengths = (list(x) for x in zip(*seeds)) if seeds else ([], [])
        if seeds and w.collab and self.collab is not None:
            cf = self.collab.similar(positions, strengths)
            out["collab"] = w.collab * cf / cf.max() if cf.max() > 0 else cf
        if seeds and w.seed_genre and self.facets.has_genres:
            out["seed_genre"] = w.seed_genre * self.facets.seed_genre_scores(positions, strengths)
        if seeds and w.credits and self.facets.has_credits:
            out["credits"] = w.credits * self.facets.credit_scores(positions, strengths)
        if seeds and w.cooc and self.target_prior is not None:
            out["cooc"] = w.cooc * self.target_prior.following(positions, strengths)
        if seeds and w.comention and self.target_prior is not None:
            out["comention"] = w.comention * self.target_prior.together(positions, strengths)
        if seeds and w.comention_far and self.target_prior is not None:
            out["comention_far"] = w.comention_far * self.target_prior.together(positions, strengths, steps=2)
        # A seed is no neighbour of itself under another listing: the other row of a film just shown
        # ("Wonder Woman (2009)", a second row of the 2017 film) shares its credits and co-ratings,
        # and brought the film straight back to the top of the next list. Every listing of a seed
        # scores what the seed scores (its neighbours' pull without its own).
        twins = [(p, q) for p in {p for p, _ in named} | set(positions) for q in self.catalog.listings.get(p, ())]
        if twins:
            seed, twin = (list(x) for x in zip(*twins))
            for values in out.values():
                values[twin] = values[seed]
        out.update(self._feedback_neighbours(state, w))
        return out

    def _feedback_neighbours(self, state: DialogueState, w: RankWeights) -> dict[str, np.ndarray]:
        """Thumbs in this conversation: neighbours of liked items up, near-duplicates of rejected items down.

        A thumbs-down says "not this one", not "nothing like it": only items at least
        ``rejected_threshold`` similar to a rejected item (other editions, the same product in another
        colour) lose ``rejected_similar``; everything else keeps its score."""
        out: dict[str, np.ndarray] = {}
        for name, ids in (("liked", state.liked), ("rejected", state.rejected)):
            weight = w.liked_similar if name == "liked" else w.rejected_similar
            rows = [self.catalog.position[i] for i in ids if i in self.catalog.position]
            if not rows or not weight:
                continue
            sims = (self.index.vectors @ self.index.vectors[rows].T).max(axis=1)
            if name == "liked":
                out[name] = weight * np.clip(sims, 0, None)
            else:
                out[name] = -weight * (sims >= w.rejected_threshold).astype(np.float32)
        return out

    def _prior_signals(self, w: RankWeights) -> dict[str, np.ndarray]:
        """Query-independent priors: popularity, recency, learned target frequency, stored feedback."""
        out: dict[str, np.ndarray] = {}
        for name, weight, values in (("popularity", w.popularity, self.popularity), ("recency", w.recency, self.recency),
                                     ("target_pop", w.target_pop, self._target_pop),
                                     ("feedback", w.feedback, self.feedback_prior)):
            if weight and values.any():
                out[name] = weight * values
        return out

    def _seeds(self, state: DialogueState, shown_weight: float = 0.0) -> list[tuple[int, float]]:
        """(position, weight) of items the user named without disliking or liked, and (at
        ``shown_weight``) items another recommender suggested that the user did not reject.

        Our own picks are no seeds until the user takes them up (names, likes or rates them): they
        are what this ranking already thought, not news of the user's taste, and seeding with them
        let a first list made on little ("something to watch tonight": Star Wars, Jumanji) pull the
        next one off the wish that followed ("we like romantic comedies": The Empire Strikes Back).
        A recorded human recommender's suggestions (replayed ReDial dialogues) do carry news. The
        films of a series named at once share one film's weight (``DialogueState.naming_shares``)."""
        seeds: dict[int, float] = {}
        pos = self.catalog.position
        if shown_weight:
            for item_id in state.shown:
                if item_id in pos and item_id not in state.rejected and item_id not in state.own_picks:
                    seeds[pos[item_id]] = shown_weight
        shares = state.naming_shares()  # a series named at once weighs as one film: "all the Harry Potter movies"
        for item_id, sentiment in state.mentioned.items():
            if sentiment >= 0 and item_id in pos:
                seeds[pos[item_id]] = (1.0 if sentiment > 0 else 0.7) * shares.get(item_id, 1.0)
        for item_id in state.liked:
            if item_id in pos:
                seeds[pos[item_id]] = 1.0
        return list(seeds.items())

    def _preference_bonuses(self, state: DialogueState, w: RankWeights) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        prefs = state.prefs
        if prefs.category and w.category:
            codes, code_of = self._category_codes
            family = category_family(self._category_words, prefs.category, state.said())
            # a 👍 on an item of another category widens the wish: "a puzzle" read as 3-D Puzzles, then a
            # jigsaw liked: jigsaws are what they meant too
            family |= {item.category for i in state.liked if (item := self.catalog.get(i)) and item.category}
            out["category"] = w.category * np.isin(codes, [code_of[c] for c in family if c in code_of]).astype(np.float32)
        asked = [self.catalog.position[i] for i in state.asked if i in self.catalog.position and i not in state.rejected]
        if asked and w.asked:
            out["asked"] = np.zeros(len(self.catalog), dtype=np.float32)
            out["asked"][asked] = w.asked
        if prefs.must_have and w.must_have:
            asking = [bool(content_words(text)) for text in state.said()]  # turns that ask for something
            share = np.zeros(len(self.catalog), dtype=np.float32)
            total = 0.0
            for raw in prefs.must_have:  # inverted index, not a scan of every item's text (100k items: ms, not s)
                t = normalize(raw)
                turn = prefs.topic_turns.get(raw)  # "zombie movies" fades as later turns ask for other things
                weight = 1.0 if turn is None else w.turn_decay ** sum(asking[turn + 1:])
                index = self._prose_terms if self.facets.names_part_of_someone(t) else self._terms  # "christian movies"
                share[np.union1d(index.containing(t), index.containing(singular(t)))] += weight  # "dinosaur"
                total += weight
            out["must_have"] = w.must_have * share / max(1.0, total)
        return out

    @cached_property
    def _prose_terms(self) -> TermIndex:
        """Titles and descriptions only, for a must-have that is part of someone's name: "christian movies"
        are not Christian Bale's."""
        return TermIndex([normalize(f"{i.title} {i.description}") for i in self.catalog])

    @cached_property
    def _category_words(self) -> dict[str, set[str]]:
        return _category_words(self.catalog)

    @cached_property
    def _ages(self) -> tuple[np.ndarray, np.ndarray]:
        """Youngest and oldest recommended age per item in years (NaN: not given; inf: no upper bound)."""
        ranges = [i.age_range for i in self.catalog]
        youngest = np.array([r[0] if r else np.nan for r in ranges], dtype=np.float64)
        oldest = np.array([(r[1] if r[1] is not None else np.inf) if r else np.nan for r in ranges], dtype=np.float64)
        return youngest, oldest

    @cached_property
    def _for_little_ones(self) -> np.ndarray:
        """Items whose title says they are for babies or toddlers (not the description: shops' text
        says "not suitable for children under 36 months" and lists "Baby Toy" among its categories)."""
        return np.array([bool(_LITTLE_ONES.search(i.title)) for i in self.catalog], dtype=bool)

    @cached_property
    def _years(self) -> np.ndarray:
        """Release year per item (0 = unknown), relative eras resolved against the catalog's newest year."""
        return np.array([i.year or 0 for i in self.catalog], dtype=np.float32)

    @property
    def _newest_year(self) -> int:
        return self.catalog.newest_year

    @cached_property
    def _category_codes(self) -> tuple[np.ndarray, dict[str | None, int]]:
        code_of: dict[str | None, int] = {}
        codes = np.array([code_of.setdefault(i.category, len(code_of)) for i in self.catalog], dtype=np.int32)
        return codes, code_of

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
        if prefs.age is not None and self.catalog.has_ages:
            youngest, oldest = self._ages
            with np.errstate(invalid="ignore"):
                too_young = youngest > prefs.age + 1e-9  # "12 years and up" is no toy for a 4 year old
                if prefs.age < 3:  # but a rattle labelled "3 years and up" (shops' default label) is for a baby
                    too_young &= ~((youngest <= 3) & self._for_little_ones)
                pen[too_young] = -np.inf
                pen[oldest < prefs.age - 1e-9] -= w.age_outgrown  # "36 months - 3 years" for a 6 year old
            pen[np.isnan(youngest)] -= 0.2  # no recommended age: keep, but below known matches
            if prefs.age < 3:  # for a baby or toddler: items that say they are for one lead; of the
                pen[self._for_little_ones] += w.age_little_ones  # others, those of no stated age sink
                pen[np.isnan(youngest) & ~self._for_little_ones] -= w.age_unknown_toddler
        for term in prefs.exclude:
            t = normalize(term)
            for form in {t, singular(t)} if t else ():  # "no musicals": the genre is "musical"
                pen[self._terms.with_word(form)] = -np.inf
            if t:  # "not animated please": nor films of the genre "animation"
                pen[self.facets.of_genre_word(t)] = -np.inf
        asked = set(state.asked) - set(state.rejected)
        position, listings, namesakes = self.catalog.position, self.catalog.listings, self.catalog.namesakes
        keep = {position[i] for i in asked if i in position}
        had = [i for i in state.mentioned if i not in asked and i not in state.unseen]  # "I haven't seen X": no
        for item_id in list(state.rejected) + had:
            pos = position.get(item_id)
            if pos is not None:  # and whatever has its name: naming "Jurassic Park" names "Jurassic Park
                pen[pos] = -np.inf  # (1993)", and "Titanic (2012)" is no suggestion for "I loved Titanic"
                pen[[p for p in (*namesakes.get(pos, ()), *listings.get(pos, ())) if p not in keep]] = -np.inf
        repeats: dict[int, int] = {}  # position -> suggestions of it before the latest one
        # "over £30 is too much": the best items that fit, shown ones included
        for item_id in (set(state.shown) | set(state.liked)) - asked if not narrowing(state) else ():
            pos = position.get(item_id)
            if pos is not None:
                for p in self.catalog.same_thing(pos):
                    repeats[p] = max(repeats.get(p, 0), state.times_shown.get(item_id, 1) - 1)
        demotion = w.shown_penalty + (w.shown_more if state.wants_more else 0.0)
        for pos, times in repeats.items():
            if pos not in keep and math.isfinite(pen[pos]):
                pen[pos] -= demotion + w.shown_again * times
        return pen


def popularity_prior(catalog: Catalog, collab: CollaborativeModel | None = None) -> np.ndarray:
    """Per item in [0, 1]: log interaction counts where there are interactions, else log review counts."""
    if collab is not None and collab.popularity.any():
        return collab.popularity_prior()
    counts = np.array([math.log1p(i.review_count or 0) for i in catalog], dtype=np.float32)
    return counts / counts.max() if counts.max() > 0 else counts


def preferred_view(scores: np.ndarray, prefer: Mapping[int, int],
                   rows: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, dict[int, int]]:
    """(scores, prefer) for ranking one listing per film: a film shows as the listing people use more
    (``prefer``: listing -> that listing) and then ranks by that listing's score, unless the other
    listing scores ``PREFER_MARGIN`` more: "The Bourne Identity (1988)" (a TV film that ReDial's
    catalog gives the 2002 film's plot) leads a list for "before 1995" as itself, not as the 2002
    film. ``rows``: ``prefer`` as two arrays, when the caller keeps them."""
    listing, shown = rows if rows is not None else (np.fromiter(prefer.keys(), dtype=np.int64, count=len(prefer)),
                                                     np.fromiter(prefer.values(), dtype=np.int64, count=len(prefer)))
    keep = np.isfinite(scores[shown]) & (scores[shown] >= scores[listing] - PREFER_MARGIN)
    scores = scores.copy()
    scores[listing[keep]] = scores[shown[keep]]
    return scores, dict(zip(listing[keep].tolist(), shown[keep].tolist()))


def covering(order: Sequence[int], groups: Sequence[np.ndarray], k: int) -> list[int]:
    """The first ``k`` of ``order`` (positions, best first), reordered so that each group (a mask
    over positions) takes its turn: after ``s`` places every group with items left holds at least
    ceil(s / groups) of them, its best next, else the best of all goes next. An item in several
    groups counts for each: a list that already mixes them stays as it was."""
    out: list[int] = []
    counts = [0] * len(groups)
    rest = list(order)
    while rest and len(out) < k:
        need = -(-len(out) // len(groups))
        lagging = [g for g in range(len(groups)) if counts[g] < need]
        pick = next((i for i in rest if any(groups[g][i] for g in lagging)), rest[0]) if lagging else rest[0]
        rest.remove(pick)
        out.append(pick)
        for g, mask in enumerate(groups):
            counts[g] += bool(mask[pick])
    return out


def one_listing_each(ordered: Iterable[int], listings: Mapping[int, Sequence[int]], k: int | None = None,
                     prefer: Mapping[int, int] | None = None, scores: np.ndarray | None = None) -> list[int]:
    """``ordered`` positions, best first, without the later listings of a title already kept
    ("Jurassic Park" and "Jurassic Park (1993)" are one film; ``Catalog.listings``), at most ``k``;
    a kept title is shown as the listing ``prefer`` names for it, if any and not filtered out
    (a finite score in ``scores``, when given)."""
    chosen: list[int] = []
    taken: set[int] = set()
    for i in ordered:
        if i in taken:
            continue
        shown = prefer.get(i, i) if prefer else i
        # listings need not be transitive: "A"~"A (1990)"~"A: The Film" does not make one group
        if shown in taken or (scores is not None and not np.isfinite(scores[shown])):
            shown = i
        chosen.append(shown)
        taken.update((i, shown, *listings.get(i, ()), *listings.get(shown, ())))
        if len(chosen) == k:
            break
    return chosen


def informative_texts(state: DialogueState) -> list[str]:
    """The user's turns that say something searchable (the items they name, excluded terms, budgets,
    ages, durations, refused eras and spans of years removed: "nothing too old" must not search for
    "old", "from the last 10 years" for "years", nor "under an hour" for "hour"), oldest first."""
    texts = [_searchable(t, state.prefs.exclude) for t in state.said(titles=False)]
    return [t for t in texts if content_words(t)]


def _searchable(text: str, exclude: list[str]) -> str:
    text = " ".join(s for s in _SENTENCE.split(text) if not ROLE_ASK.search(s))  # "what else did that director make?"
    text = _without(without_age(without_budget(_DURATION.sub(" ", text))), exclude)
    return _NEGATED_WORD.sub(" ", _SPAN.sub(" ", _ERA_REFUSED.sub(" ", text)))


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def narrowing(state: DialogueState) -> bool:
    """The latest user message only tightens or loosens a filter ("over £30 is too much", "she's 6",
    "no Lego"): it names nothing, asks for nothing new and has nothing to search for. The list is then
    the best items that fit, those already shown among them: they were not refused, only filtered."""
    texts = state.said()
    return (state.narrowed and bool(texts) and not state.wants_more and not state.asked
            and not content_words(_searchable(texts[-1], state.prefs.exclude)))


def _without(text: str, terms: list[str]) -> str:
    """The text minus its excluded terms, so "no Lego" does not pull the query towards Lego."""
    for term in terms:
        text = re.sub(rf"\b(?:no|not|without|avoid)?\s*{re.escape(term)}\b", " ", text, flags=re.I)
    return text


def recency_prior(catalog: Catalog) -> np.ndarray:
    """1 for items from the catalog's newest years, decaying by half every ``2`` years; 0 without a year.

    Conversations are about what is current: in ReDial, films from the last two years before the
    dialogues were collected are suggested 3-5 times more often than older ones."""
    years = np.array([i.year or 0 for i in catalog], dtype=np.float32)
    known = years[years > 0]
    if len(known) == 0:
        return np.zeros(len(catalog), dtype=np.float32)
    newest = float(np.percentile(known, 99))  # robust to a few far-future release dates
    prior = np.where(years > 0, 0.5 ** (np.clip(newest - years, 0, None) / 2.0), 0.0)
    return prior.astype(np.float32)


# An item for babies and toddlers says so in its title: "baby", "toddler", "18 months", "rattle", "stacker".
_LITTLE_ONES = re.compile(r"\b(?:bab(?:y|ies)|toddlers?|infants?|newborns?|\d+\s*(?:-\s*\d+\s*)?months?\+?|"
                          r"rattles?|teeth(?:er|ers|ing)|stacking (?:rings|cups)|stackers?|shape sort(?:er|ing)|pram|cot|crib|"
                          r"push[- ]along|pull[- ]along|first (?:words|steps))\b", re.I)
_DECADE = re.compile(r"\b(?:(?:19)?(?P<short>[2-9])0'?s|'(?P<short2>[2-9])0s|(?P<word>twenties|thirties|forties|"
                     r"fifties|sixties|seventies|eighties|nineties)|20(?P<y2k>[0-2])0'?s|(?P<nought>noughties))\b", re.I)
_DECADE_WORDS = {w: d for d, w in enumerate("twenties thirties forties fifties sixties seventies eighties nineties"
                                            .split(), start=2)}
_OLD = re.compile(r"\b(?:old(?:er)?|classics?|oldies?|vintage|golden age)\b(?![- ]school)", re.I)
# Older films asked for, not a taste or a hint ("I like older movies", "an old classic").
_OLDER_ASKED = re.compile(r"\b(?:something|anything|any|one|a bit|a little|bit|maybe|more|even|some)\s+(?:older|earlier)$",
                          re.I)
# "Older" of the audience, not of the film: "something a bit older for the 10 year old", "for older kids".
_OLDER_AUDIENCE = re.compile(
    r"\bolder\b(?=\s+(?:kids?|child(?:ren)?|audiences?|ones|teens?|teenagers?|boys?|girls?|viewers?)\b|"
    r"\s+for\s+(?:the|my|a|an|our|his|her|their)\s+(?:[\w]+[\s-]+){0,3}?(?:kids?|child(?:ren)?|sons?|daughters?|boys?|"
    r"girls?|teens?|teenagers?|tweens?|nephews?|nieces?|grand\w+|olds?)\b)", re.I)
_AGE = re.compile(r"\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)[- ]?"
                  r"(?:(?:years?|yrs?|months?)[- ]?)?old\b", re.I)
# Asks for something new; not "I recently saw X" or "I watched it in theaters".
_NEW = re.compile(r"\b(?:recent(?!ly)|latest|newer|brand new|new releases?|just released|this year'?s|last year'?s|"
                  r"(?:from|of|made) (?:this|last|the (?:last|past)) year\b|"
                  r"(?:came|come|coming) out (?:recently|lately|this year)|released (?:recently|lately|this year)|"
                  r"(?:now|currently|still) (?:playing )?in theat(?:er|re)s)\b", re.I)
_NUMBERS = {w: n for n, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
                                        "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty".split())}
# Years as a span: "from the last 10 years", "the past decade", "in the last few years", "since
# 2010", "2010 or later", "after 2010", "before 2000", "pre-2000". Not "last year" (when they watched).
_YEAR_NUMBER = r"(?:19|20)\d\d"
_SPAN = re.compile(
    rf"\b(?:last|past)\s+(?:(?P<n>\d{{1,2}}|{'|'.join(_NUMBERS)}|few|couple(?:\s+of)?)\s+)?(?P<unit>years|decades?)\b"
    rf"|\bsince\s+(?P<since>{_YEAR_NUMBER})\b"
    rf"|\b(?P<or_later>{_YEAR_NUMBER})\s+(?:or|and)\s+(?:later|newer|after|up|onwards?)\b"
    rf"|\b(?:after|post-?|newer than|later than)\s*(?P<after>{_YEAR_NUMBER})\b"
    rf"|\b(?:before|pre-?|older than|earlier than)\s*(?P<before>{_YEAR_NUMBER})\b", re.I)
# How long it lasts, which the catalog's words cannot check: "under an hour", "play in 20 minutes", "2 hours long"
_DURATION = re.compile(r"\b(?:(?:under|less than|within|at most|no more than|about|around|over|more than|in|for|"
                       r"takes?|lasts?|play(?:ed|s)? in)\s+)?(?:an?|one|two|three|half an?|a couple of|\d+(?:\.\d+)?)"
                       r"[\s-]*(?:hours?|hrs?|minutes?|mins?)\b(?:\s+(?:long|max|or (?:less|so)|to play|tops))?", re.I)
# A word refused is no search word: "nothing too scary please" must not search for "scary" (nor find
# the requests of people who wanted something scary).
_NEGATED_WORD = re.compile(r"\b(?:no|not|nothing|none|without|never|avoid|non)[\s-]+(?:(?:too|that|so|very|really|overly|"
                           r"particularly|any|anything|something|a bit|a|an|the)\s+){0,2}[\w'-]+", re.I)
# "not from the 80s", "maybe not any films from the 80's", "too old"; not "nothing too violent from the 80s"
_ERA_NEGATED = re.compile(r"(?:\b(?:no|not|nothing|don'?t|isn'?t)\b(?![^.!?,;]*\btoo\b)[^.!?,;]{0,24}|\btoo\s+)$", re.I)
# Old films refused ("nothing too old", "not really into old movies", "it was too old for me"); not
# "No Country for Old Men", nor "not a classic" (a film described, not an era refused).
_ERA_REFUSED = re.compile(r"(?:\b(?:no|not|nothing|none|don'?t want anything)\s+(?:(?:really|too|that|so|very|into|a fan of|"
                          r"big on|an?|any|many|much)\s+){0,3}|\btoo\s+)old(?:er)?\b(?:\s+(?:movies?|films?|ones?|stuff))?",
                          re.I)


def wanted_era(texts: Sequence[str], newest: int, decay: float = 0.5) -> tuple[tuple[int, int], float, str] | None:
    """The release years the user asked for in words, from their latest turn that says so, how
    recent that turn is (``decay`` ** turns ago) and which kind of ask it was: ``"decade"`` ("80s
    movies", "the nineties", "the 2000s"), ``"old"`` ("an old classic": 20+ years before ``newest``),
    ``"older"`` ("something a bit older?": the same years, asked for), ``"new"`` ("something that came
    out recently": the last 2 years), ``"not old"`` ("nothing too
    old": the last 20 years), ``"since"`` ("from the last 10 years", "after 2010") or ``"until"``
    ("before 2000"). Ages ("my 6 year old") do not count, nor other negated words ("not from the 80s")."""
    for age, text in enumerate(reversed(texts)):
        clean = _AGE.sub(" ", _OLDER_AUDIENCE.sub(" ", text))
        for rx, kind in ((_SPAN, "span"), (_DECADE, "decade"), (_OLD, "old"), (_NEW, "new")):
            for m in rx.finditer(clean):
                if _ERA_NEGATED.search(clean[max(0, m.start() - 32):m.start()]):
                    if kind == "old" and any(r.start() <= m.start() < r.end() for r in _ERA_REFUSED.finditer(clean)):
                        return (newest - 20, 9999), decay ** age, "not old"
                    continue
                if kind == "span":
                    span = _span(m, newest)
                    kind = "since" if span[1] == 9999 else "until"
                elif kind == "decade":
                    start = _decade_start(m)
                    span = (start, start + 9)
                else:
                    span = (0, newest - 20) if kind == "old" else (newest - 2, 9999)
                    if kind == "old" and _OLDER_ASKED.search(clean, 0, m.end()):
                        kind = "older"  # "something a bit older?": an ask, as "anything newer?" is
                return span, decay ** age, kind
    return None


def _decade_start(m: re.Match) -> int:
    """"80s", "'80s", "eighties" -> 1980; "2000s", "noughties" -> 2000; "2010s" -> 2010."""
    if m.group("short") or m.group("short2"):
        return 1900 + 10 * int(m.group("short") or m.group("short2"))
    if m.group("word"):
        return 1900 + 10 * _DECADE_WORDS[m.group("word").lower()]
    return 2000 + 10 * int(m.group("y2k") or 0)


def _span(m: re.Match, newest: int) -> tuple[int, int]:
    """The years of a ``_SPAN`` match: "the last 10 years" (counted back from ``newest``), "since
    2010" / "2010 or later" (from 2010), "after 2010" (from 2011), "before 2000" (to 1999)."""
    if m.group("unit"):
        n, unit = (m.group("n") or "").lower(), m.group("unit").lower()
        # "the last few years", "the last years": 3; "the past decade": 1
        count = int(n) if n.isdigit() else 2 if n.startswith("couple") else _NUMBERS.get(n, 1 if unit == "decade" else 3)
        return newest - count * (10 if unit.startswith("decade") else 1), 9999
    if m.group("since") or m.group("or_later"):
        return int(m.group("since") or m.group("or_later")), 9999
    if m.group("after"):
        return int(m.group("after")) + 1, 9999
    return 0, int(m.group("before")) - 1

