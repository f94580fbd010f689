"""Collaborative signals: "people who liked X also liked Y" and item popularity.

Built from an interactions CSV (``user_id,item_id,rating,timestamp``; see ``../shared/EVAL.md``)
and/or from our own logged thumbs-up (each conversation acts as one user). Item-to-item
weights come from EASE (Steck, "Embarrassingly Shallow Autoencoders", WWW 2019): one ridge
regression of every item on all others over the binarised user-item matrix, solved in closed form
once, over the items anyone interacted with. Past ``ease_max_items`` such items (the solve is
cubic) it falls back to cosine similarity computed on demand for the few seed items of a
conversation (one sparse product), so nothing quadratic is materialised.
"""
from __future__ import annotations

import csv
from functools import cached_property
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import sparse

from .catalog import Catalog
from .errors import CatalogError
from .settings import COLLAB_METHODS


class CollaborativeModel:
    def __init__(self, catalog: Catalog, pairs: Iterable[tuple[str, str, float]] = (), like_threshold: float = 3.5,
                 method: str = "auto", ease_l2: float = 1000.0, ease_max_items: int = 6000):
        """``method``: "ease", "cosine", or "auto" (EASE up to ``ease_max_items`` items with
        interactions, cosine past it). ``ease_l2``: EASE's ridge penalty; on the ReDial valid split
        (609 MovieLens users, 57k likes) 800-2000 score alike and beat cosine by 0.002-0.003 Recall@10/50."""
        if method not in COLLAB_METHODS:
            raise ValueError(f"collaborative method must be auto, ease or cosine, not {method!r}")
        self.catalog = catalog
        self.like_threshold = like_threshold
        self.method = method
        self.ease_l2 = ease_l2
        self.ease_max_items = ease_max_items
        self._users: dict[str, int] = {}
        self._rows: list[int] = []
        self._cols: list[int] = []
        self.popularity = np.zeros(len(catalog), dtype=np.float32)
        self.add(pairs)

    @classmethod
    def from_csv(cls, path: str | Path, catalog: Catalog, method: str = "auto") -> "CollaborativeModel":
        return cls(catalog, read_interactions(path), method=method)

    def add(self, pairs: Iterable[tuple[str, str, float]]) -> None:
        """Add (user, item, rating) interactions; rating NaN means an implicit positive (click, purchase)."""
        pos = self.catalog.position
        for user, item_id, rating in pairs:
            col = pos.get(item_id)
            if col is None:
                continue
            # every listing of the film: ReDial lists "Bridesmaids (2011)" twice and the ratings were
            # joined to one row only, so the row the dialogues name looked unknown to everyone
            cols = self.catalog.same_thing(col)
            self.popularity[list(cols)] += 1
            if not np.isnan(rating) and rating < self.like_threshold:
                continue
            row = self._users.setdefault(user, len(self._users))
            self._rows += [row] * len(cols)
            self._cols += cols
        self._matrix = None

    @property
    def n_interactions(self) -> int:
        return len(self._rows)

    def matrix(self) -> sparse.csc_matrix:
        if getattr(self, "_matrix", None) is None:
            data = np.ones(len(self._rows), dtype=np.float32)
            m = sparse.csc_matrix((data, (self._rows, self._cols)),
                                  shape=(max(len(self._users), 1), len(self.catalog)), dtype=np.float32)
            m.data[:] = 1.0  # duplicates summed by the constructor; binarise
            self._matrix = m
            self._norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=0)).ravel()) + 1e-6
            self._ease = None
        return self._matrix

    @property
    def uses_ease(self) -> bool:
        if self.method != "auto":
            return self.method == "ease"
        return 0 < int((self.matrix().getnnz(axis=0) > 0).sum()) <= self.ease_max_items

    def ease(self) -> tuple[np.ndarray, np.ndarray]:
        """(catalog positions with interactions, EASE weights among them): ``B[i, j]`` is how much
        liking item i predicts liking item j, the diagonal held at zero."""
        self.matrix()
        if self._ease is None:
            m = self._matrix
            active = np.flatnonzero(m.getnnz(axis=0) > 0)
            x = m[:, active]
            gram = (x.T @ x).toarray().astype(np.float32)  # well conditioned: the ridge term dominates
            gram[np.diag_indices_from(gram)] += self.ease_l2
            b = np.linalg.inv(gram)
            b /= -np.diag(b)
            b[np.diag_indices_from(b)] = 0.0
            self._ease = (active, b)
            self._ease_row = np.full(len(self.catalog), -1, dtype=np.int64)  # catalog position -> row of b
            self._ease_row[active] = np.arange(len(active))
        return self._ease

    def similar(self, seeds: Sequence[int], weights: Sequence[float] | None = None) -> np.ndarray:
        """How much every item goes with the seed items (catalog positions), weighted: EASE
        weights (negative ones dropped) or cosine similarities, as ``method`` says."""
        out = np.zeros(len(self.catalog), dtype=np.float32)
        if not seeds or not self._rows:
            return out
        weights = list(weights) if weights is not None else [1.0] * len(seeds)
        if self.uses_ease:
            active, b = self.ease()
            rows = [(r, w) for s, w in zip(seeds, weights) if (r := self._ease_row[s]) >= 0]
            if rows:
                r, w = zip(*rows)
                out[active] = np.clip(np.asarray(w, dtype=np.float32) @ b[list(r)], 0.0, None)
            out[list(seeds)] = 0.0
            return out
        m = self.matrix()
        for seed, w in zip(seeds, weights):
            column = m[:, seed]
            if column.nnz == 0:
                continue
            co = np.asarray((m.T @ column).todense()).ravel()
            out += w * co / (self._norms * self._norms[seed])
        out[list(seeds)] = 0.0
        return out

    def popularity_prior(self) -> np.ndarray:
        """log-scaled interaction counts in [0, 1]."""
        p = np.log1p(self.popularity)
        return p / p.max() if p.max() > 0 else p


def read_interactions(path: str | Path) -> list[tuple[str, str, float]]:
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"interactions file {path} does not exist: check --interactions")
    out: list[tuple[str, str, float]] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"user_id", "item_id"} <= set(reader.fieldnames):
            raise CatalogError(f"{path}:1: interactions header must be user_id,item_id,rating,timestamp")
        for row in reader:
            raw = (row.get("rating") or "").strip()
            try:
                rating = float(raw) if raw else float("nan")
            except ValueError:
                raise CatalogError(f"{path}:{reader.line_num}: rating {raw!r} is not a number") from None
            out.append((row["user_id"], row["item_id"], rating))
    return out


class TargetPrior:
    """What human recommenders suggested in *other* dialogues (a training split, the other
    cross-validation folds, or the product's own logged turns): how often each item was suggested,
    which items were suggested after which items had been named (mention -> target co-occurrence),
    and, given each training turn's query vector, what was suggested for *similar requests*
    (k nearest training turns by query cosine; "people who asked like this were offered these"),
    and which items came up *in the same conversation* (co-mention: a conversation about horror
    films names horror films, on either side; turns whose context extends another turn's context
    are one conversation, and each conversation's pairs weigh 1 / its number of items), and, given
    the genres each training turn asked for, what people asking for those genres were offered.
    Never built from the dialogues being scored; ``benchmarks/ranking.py`` shows the cross-validated effect."""

    def __init__(self, catalog: Catalog, counts: np.ndarray, cooc: sparse.csr_matrix,
                 queries: np.ndarray | None = None, query_targets: sparse.csr_matrix | None = None,
                 comention: sparse.csr_matrix | None = None, usage: np.ndarray | None = None,
                 genre_names: Sequence[str] = (), genre_targets: np.ndarray | None = None):
        self.catalog = catalog
        self.usage = usage if usage is not None else np.zeros(len(catalog), dtype=np.float32)
        self.counts = counts
        self.cooc = cooc
        self.queries = queries  # (turns, dim) unit vectors, or None
        self.query_targets = query_targets  # (turns, items) 1 where the turn's target was the item
        self.comention = comention  # (items, items) log1p of size-weighted co-mentions, zero diagonal
        self.genre_names = list(genre_names)
        self.genre_targets = genre_targets  # (genres, items) log1p of suggestions, each turn's genres summing to 1

    @classmethod
    def from_dialogues(cls, catalog: Catalog, matcher, dialogues, query_of=None, genres_of=None,
                       genre_names: Sequence[str] = ()) -> "TargetPrior":
        """``dialogues``: objects with ``.id``, ``.context`` [(role, text)] and ``.targets`` [item id];
        ``query_of(dialogue)`` -> unit query vector or None enables ``similar_requests``;
        ``genres_of(dialogue)`` -> weights of the ``genre_names`` it asked for enables ``asked_for``."""
        from .learned import PriorExamples, build_prior

        return build_prior(catalog, PriorExamples.from_dialogues(catalog, matcher, dialogues, query_of,
                                                                 genres_of=genres_of, genre_names=genre_names))

    @classmethod
    def from_examples(cls, catalog: Catalog, named: Sequence[Sequence[str]], targets: Sequence[Sequence[str]],
                      groups: Sequence[int], queries: np.ndarray | None = None, genre_names: Sequence[str] = (),
                      genres: np.ndarray | None = None) -> "TargetPrior":
        """Per training turn: the item ids named in its context, the ids suggested, its conversation
        number, and (optionally) its query vector (a zero row: none) and the weights of the genres it
        asked for (columns named by ``genre_names``; a zero row: none); see ``learned.PriorExamples``."""
        pos = catalog.position
        every = lambda ids: {q for i in ids if i in pos for q in catalog.same_thing(pos[i])}  # noqa: E731
        counts = np.zeros(len(catalog), dtype=np.float32)
        usage = np.zeros(len(catalog), dtype=np.float32)  # this very row named or suggested: which listing people use
        rows: list[int] = []
        cols: list[int] = []
        q_rows: list[int] = []
        q_cols: list[int] = []
        kept: list[int] = []
        talked_of: dict[int, set[int]] = {}  # conversation -> every item named in it or suggested
        by_genre = np.zeros((len(genre_names), len(catalog)), dtype=np.float32) if genres is not None else None
        for turn, (names, suggested, conv) in enumerate(zip(named, targets, groups)):
            wanted = sorted(every(suggested))  # a film listed twice is one film (``Catalog.listings``)
            if by_genre is not None and wanted and (asked := genres[turn]).sum() > 0:
                by_genre[:, wanted] += (asked / asked.sum())[:, None]
            seen = every(names)
            talked_of.setdefault(conv, set()).update(seen, wanted)
            np.add.at(usage, [pos[i] for i in (*suggested, *names) if i in pos], 1.0)
            for t in wanted:
                counts[t] += 1
                for n in seen - {t}:
                    rows.append(n)
                    cols.append(t)
            if queries is not None and wanted and queries[turn].any():
                q_rows += [len(kept)] * len(wanted)
                q_cols += wanted
                kept.append(turn)
        cooc = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                                 shape=(len(catalog), len(catalog)), dtype=np.float32)
        comention = _comention(talked_of.values(), len(catalog))
        by_genre = dict(genre_names=genre_names, genre_targets=np.log1p(by_genre)) if by_genre is not None else {}
        if not kept:
            return cls(catalog, counts, cooc, comention=comention, usage=usage, **by_genre)
        qt = sparse.csr_matrix((np.ones(len(q_rows), dtype=np.float32), (q_rows, q_cols)),
                               shape=(len(kept), len(catalog)), dtype=np.float32)
        return cls(catalog, counts, cooc, np.asarray(queries[kept], dtype=np.float32), qt, comention, usage,
                   **by_genre)

    def preferred_listings(self) -> dict[int, int]:
        """Position -> the listing of that film the dialogues use most, where another listing is
        used more than it (ReDial names "Bridesmaids (2011)" by one of its two rows far more often)."""
        out: dict[int, int] = {}
        for p, others in self.catalog.listings.items():
            best = max((p, *others), key=lambda q: (self.usage[q], -q))
            if self.usage[best] > self.usage[p]:
                out[p] = best
        return out

    def popularity(self) -> np.ndarray:
        """log-scaled suggestion counts in [0, 1]."""
        p = np.log1p(self.counts)
        return p / p.max() if p.max() > 0 else p

    def following(self, seeds: Sequence[int], weights: Sequence[float] | None = None) -> np.ndarray:
        """How often each item was suggested after the seed items were named, in [0, 1]."""
        out = np.zeros(len(self.catalog), dtype=np.float32)
        weights = list(weights) if weights is not None else [1.0] * len(seeds)
        for seed, w in zip(seeds, weights):
            row = self.cooc.getrow(seed)
            if row.nnz:
                out[row.indices] += w * np.log1p(row.data)
        return out / out.max() if out.max() > 0 else out

    def together(self, seeds: Sequence[int], weights: Sequence[float] | None = None, steps: int = 1) -> np.ndarray:
        """How strongly each item was talked of in the same conversations as the seed items, in [0, 1].
        ``steps=2``: in the same conversations as those items (the seeds themselves excluded), which
        reaches films no conversation named beside the seeds but many named beside their companions."""
        out = np.zeros(len(self.catalog), dtype=np.float32)
        if self.comention is None or not len(seeds):
            return out
        w = np.asarray(list(weights) if weights is not None else [1.0] * len(seeds), dtype=np.float32)
        out = np.asarray(self.comention[list(seeds)].T @ w).ravel().astype(np.float32)
        for _ in range(steps - 1):
            out = np.asarray(self._comention_t @ out).ravel().astype(np.float32)
            out[list(seeds)] = 0.0
        return out / out.max() if out.max() > 0 else out

    @cached_property
    def _comention_t(self) -> sparse.csr_matrix:
        return self.comention.T.tocsr()

    def asked_for(self, wanted: Mapping[str, float]) -> np.ndarray:
        """What people who asked for these genres (name -> weight, positive) were offered, in [0, 1]:
        "a horror film" -> what horror requests got, weighted by how often. Zero without genres learned."""
        out = np.zeros(len(self.catalog), dtype=np.float32)
        if self.genre_targets is None:
            return out
        weights = np.array([max(wanted.get(g, 0.0), 0.0) for g in self.genre_names], dtype=np.float32)
        if weights.sum() <= 0:
            return out
        out = weights @ self.genre_targets
        return out / out.max() if out.max() > 0 else out

    def request_profiles(self, query: np.ndarray) -> np.ndarray:
        """Cosine of the query to the mean query of the training turns each item was offered at
        (0 for items never offered): a smooth counterpart of ``similar_requests`` that also hears
        items offered for requests outside the ``k`` nearest. One (items x dim) product."""
        out = np.zeros(len(self.catalog), dtype=np.float32)
        if self.queries is None or self.query_targets is None:
            return out
        offered, profiles = self._profiles
        out[offered] = np.clip(profiles @ query.astype(np.float32), 0, None)
        return out

    @cached_property
    def _profiles(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the items ever offered, their unit mean query): rows for offered items only."""
        offered = np.unique(self.query_targets.indices)
        profiles = np.asarray((self.query_targets[:, offered].T @ self.queries), dtype=np.float32)
        return offered, profiles / (np.linalg.norm(profiles, axis=1, keepdims=True) + 1e-9)

    def similar_requests(self, query: np.ndarray, k: int = 100) -> np.ndarray:
        """How many of the ``k`` training turns whose queries are most similar were offered each item,
        each turn counted by its cosine similarity over the mean similarity (so 0..k). A count, not a
        share of the best item: an item offered to 5 of 100 similar requests outweighs the best of a
        scattered vote (cross-validated on ReDial: +0.002 Recall@10, +0.006 Recall@50 over scaling to
        [0, 1] per query). One matrix-vector product over the stored turns."""
        out = np.zeros(len(self.catalog), dtype=np.float32)
        if self.queries is None or self.query_targets is None:
            return out
        sims = self.queries @ query.astype(np.float32)
        k = min(k, len(sims))
        near = np.argpartition(-sims, k - 1)[:k]
        weights = np.clip(sims[near], 0, None)
        if weights.sum() <= 0:
            return out
        return (np.asarray(self.query_targets[near].T @ weights).ravel() / weights.mean()).astype(np.float32)


def conversations(dialogues: Sequence) -> list[int]:
    """A conversation number per dialogue turn: a turn whose context extends another turn's whole
    context (the same messages, then more) continues that turn's conversation. Recorded splits
    hold one row per turn with the full context so far, and so does the product's log. Only a
    context with text from both sides can be continued: a lone "hi" opens many conversations."""
    order = sorted(range(len(dialogues)), key=lambda i: len(dialogues[i].context))
    of_context: dict[tuple, int] = {}
    out = [0] * len(dialogues)
    started = 0
    for i in order:
        context = tuple((str(role), str(text)) for role, text in dialogues[i].context)
        conv = next((of_context[context[:j]] for j in range(len(context), 0, -1) if context[:j] in of_context), None)
        if conv is None:
            conv, started = started, started + 1
        out[i] = conv
        if {role for role, text in context if text.strip()} >= {"user", "assistant"}:
            of_context.setdefault(context, conv)
    return out


def _comention(item_sets: Iterable[set[int]], n_items: int) -> sparse.csr_matrix:
    """Item x item: sum over conversations naming both of 1 / the conversation's item count, log1p."""
    rows: list[int] = []
    cols: list[int] = []
    for c, items in enumerate(s for s in item_sets if len(s) > 1):
        rows += [c] * len(items)
        cols += sorted(items)
    n_conv = (rows[-1] + 1) if rows else 0
    x = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_conv, n_items))
    size = np.asarray(x.sum(axis=1)).ravel()
    c = (x.T @ sparse.diags(1.0 / np.maximum(size, 1)).astype(np.float32) @ x).tocsr()
    c.setdiag(0)
    c.eliminate_zeros()
    c.data = np.log1p(c.data)
    return c.astype(np.float32)
