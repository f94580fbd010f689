"""Ranking ablation on recorded dialogues (default: the ReDial valid split), with cross-validation.

    python benchmarks/ranking.py --home .chatrec [--limit N] [--folds 5] [--out benchmarks/results/ranking.json]

Each dialogue's context is replayed once and every signal of the ``Ranker`` is computed once at
unit weight; the table's rows then re-weight those cached signals (the sum is exactly what
``Ranker.score`` computes). Rows add one signal at a time: dense only, + lexical, + mentioned-item
signal (content neighbours of named items, with named items filtered out unless the user asks about them), + collaborative
(MovieLens item-item), + popularity/recency priors, + catalog facets (genres and eras asked for in words,
genre profile of the named items, people shared with them, people named in words), + learned priors
from other dialogues' targets.

Protocol for everything learned from the split (weights, target priors): 5 folds by conversation
(turns of one conversation never straddle folds); weights are chosen by coordinate search (one pass from the defaults) on four
folds and scored on the fifth; the learned ``TargetPrior`` is built from the four training folds
only. Reported figures are pooled over the held-out folds. ms/turn is the time of one real
``Ranker.score`` + ``top`` call with that row's weights (tracking excluded), median over turns.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "redial-valid"
KS = (1, 10, 50)
FACETS = ("genre", "genre_asked", "audience", "seed_genre", "credits", "named_credits", "era")
SIGNALS = ("dense", "lexical", "mentioned", "asked", "collab", "popularity", "recency", *FACETS, "target_pop", "cooc", "requests", "comention", "request_profile",
           "genre_requests", "comention_far", "comention_top")
# (row name, signals switched on, weights searched by CV)
ROWS = [
    ("dense only", ("dense",), ()),
    ("+ lexical (BM25)", ("dense", "lexical"), ("lexical",)),
    ("+ mentioned items (filter, asked-about items, content neighbours)", ("dense", "lexical", "mentioned", "asked"),
     ("lexical", "mentioned")),
    ("+ collaborative (MovieLens item-item)", ("dense", "lexical", "mentioned", "asked", "collab"),
     ("lexical", "mentioned", "collab")),
    ("+ popularity and recency priors", ("dense", "lexical", "mentioned", "asked", "collab", "popularity", "recency"),
     ("lexical", "mentioned", "collab", "popularity", "recency")),
    ("+ genres and credits (catalog facets)", ("dense", "lexical", "mentioned", "asked", "collab", "popularity", "recency",
                                               *FACETS),
     ("lexical", "mentioned", "collab", "popularity", "recency", *FACETS)),
    ("+ learned priors from other dialogues (CV)", SIGNALS,
     ("lexical", "mentioned", "collab", "popularity", "target_pop", "cooc", "requests", "comention", "request_profile",
      "genre_requests", "comention_far", "comention_top")),
]
# Fixed weights, no search: what the shipped commands run (the learned priors still come from the
# other folds). (row name, RankWeights factory name)
FIXED = [("defaults, no learning (what `eval --priors none` runs)", "RankWeights"),
         ("defaults + learned priors (what `eval` runs with the shipped priors file, held out by fold)",
          "RankWeights.learned")]
GRID = (0.0, 0.2, 0.4, 0.7, 1.0, 1.5, 2.5)


def fold_of(dialogue_id: str, folds: int) -> int:
    """The fold of a turn's conversation: the same folds ``eval`` holds out for a priors file."""
    from chatrec.learned import conversation_of, fold_of as conversation_fold

    return conversation_fold(conversation_of(dialogue_id), folds)


class Cache:
    """Unit-weight signals and penalties for every dialogue (float16 to keep 2.7k x 6.6k x 8 small)."""

    def __init__(self, services, dialogues, folds: int, signals: tuple[str, ...] = SIGNALS):
        from chatrec.collab import TargetPrior
        from chatrec.evaluate import replay
        from chatrec.ranker import RankWeights

        ranker = services.ranker
        default = RankWeights()
        self.unit = RankWeights(**{f.name: (1.0 if f.name in signals else getattr(default, f.name))
                                   for f in fields(RankWeights)}).without("feedback", "shown_penalty")
        # a decade named or new films asked for go into the "era" signal at their weight relative to a hint
        if "era" in signals:
            self.unit = replace(self.unit, era_asked=default.era_asked / default.era)
        n, m = len(dialogues), len(services.catalog)
        self.sig = {s: np.zeros((n, m), dtype=np.float16) for s in signals}
        self.base = np.zeros((n, m), dtype=np.float32)  # penalties without the shown demotion
        self.shown = np.zeros((n, m), dtype=bool)
        self.folds = np.array([fold_of(d.id, folds) for d in dialogues])
        pos = services.catalog.position
        self.listings = services.catalog.listings  # one listing per title in a ranking, as Ranker.top
        self.has_listings = np.zeros(m, dtype=bool)
        self.has_listings[list(self.listings)] = True
        self.targets = [[pos[t] for t in d.targets if t in pos] for d in dialogues]
        from tqdm import tqdm

        self.states = [replay(services, d) for d in tqdm(dialogues, file=sys.stderr, desc="replay")]
        queries = {d.id: ranker.query_vector(st) for d, st in zip(dialogues, self.states)}
        genres = {d.id: ranker.wanted_genres(st) for d, st in zip(dialogues, self.states)}
        self.priors = [TargetPrior.from_dialogues(services.catalog, services.matcher,
                                                  [d for d, f in zip(dialogues, self.folds) if f != k],
                                                  query_of=lambda d: queries[d.id], genres_of=lambda d: genres[d.id],
                                                  genre_names=ranker.facets.genre_names)
                       for k in range(folds)]
        self.prefer = [prior.preferred_listings() for prior in self.priors]  # which listing of a film people name
        # "comention_top" follows the best-scored items of a list, so it depends on the other weights:
        # cached as the shipped learned weights' list makes it (unit weights would follow another list)
        top_weights = replace(RankWeights.learned(), comention_top=1.0)
        for i, state in enumerate(tqdm(self.states, file=sys.stderr, desc="signals")):
            ranker.set_target_prior(self.priors[self.folds[i]])
            _, signals_of_turn = ranker.score(state, replace(self.unit, comention_top=0.0))
            if "comention_top" in self.sig:
                signals_of_turn["comention_top"] = ranker.score(state, top_weights)[1].get("comention_top", 0.0)
            for s, values in signals_of_turn.items():
                if s in self.sig:
                    self.sig[s][i] = values
            self.base[i] = ranker._penalties(state, self.unit)
            self.shown[i, [pos[x] for x in set(state.shown) | set(state.liked) if x in pos]] = True
        ranker.set_target_prior(None)

    def recall(self, weights: dict[str, float], rows: np.ndarray, shown_penalty: float | None = None) -> dict[int, float]:
        ranks = [r for _, _, r in self.pair_ranks(weights, rows, shown_penalty)]
        return {k: sum(r < k for r in ranks) / len(ranks) if ranks else 0.0 for k in KS}

    def pair_ranks(self, weights: dict[str, float], rows: np.ndarray,
                   shown_penalty: float | None = None) -> list[tuple[int, int, int]]:
        """(turn, target position, rank) for every (turn, target) pair of ``rows``; rank ``KS[-1]``
        when the target is not among the first ``KS[-1]`` (one listing per title, as ``Ranker.top``)."""
        from chatrec.ranker import RankWeights, one_listing_each, preferred_view

        shown_penalty = RankWeights().shown_penalty if shown_penalty is None else shown_penalty
        learned = any(weights.get(s) for s in RankWeights.LEARNED)  # the priors also say which listing people name
        out = []
        idx = np.flatnonzero(rows)
        for chunk in np.array_split(idx, max(1, len(idx) // 256)):
            total = self.base[chunk] - shown_penalty * self.shown[chunk]
            for s, w in weights.items():
                if w:
                    total += w * self.sig[s][chunk].astype(np.float32)
            prefers = [None] * len(chunk)
            if learned:  # a film shows as the listing people name, ranked by that listing's score (Ranker.top)
                for row, i in enumerate(chunk):
                    total[row], prefers[row] = preferred_view(total[row], self.prefer[self.folds[i]])
            width = KS[-1] + min(len(self.listings), total.shape[1] - KS[-1] - 1)
            top = np.argpartition(-total, width, axis=1)[:, :width]
            order = np.argsort(-np.take_along_axis(total, top, 1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, 1)
            for row, i in enumerate(chunk):
                ranked = top[row]
                if self.has_listings[ranked[:KS[-1]]].any():
                    ranked = one_listing_each(ranked.tolist(), self.listings, prefer=prefers[row], scores=total[row])
                rank = {p: r for r, p in enumerate(ranked[:KS[-1]])}
                out += [(i, t, rank.get(t, KS[-1])) for t in self.targets[i]]
        return out


def search(cache: Cache, rows: np.ndarray, on: tuple[str, ...], tuned: tuple[str, ...]) -> dict[str, float]:
    """Coordinate ascent (one pass) on the training rows, from the default weights (0.5 for a
    signal whose default is off); objective Recall@10 + Recall@50."""
    from chatrec.ranker import RankWeights

    default = RankWeights()
    weights = {s: (getattr(default, s) or 0.5) if s in on else 0.0 for s in SIGNALS}
    score = lambda w: sum(cache.recall(w, rows)[k] for k in (10, 50))  # noqa: E731
    best = score(weights)
    for s in tuned:
        for value in GRID:
            trial = {**weights, s: value}
            v = score(trial)
            if v > best + 1e-9:
                best, weights = v, trial
    return weights


def cross_validate(cache: Cache, on, tuned, folds: int,
                   fixed: dict[str, float] | None = None) -> tuple[dict[int, float], list[dict[str, float]]]:
    pooled = dict.fromkeys(KS, 0.0)
    chosen = []
    total_pairs = sum(len(t) for t in cache.targets)
    for k in range(folds):
        train, test = cache.folds != k, cache.folds == k
        if fixed is not None:
            weights = fixed
        else:
            weights = search(cache, train, on, tuned) if tuned else {s: float(s in on) for s in SIGNALS}
        chosen.append(weights)
        pairs = sum(len(t) for t, f in zip(cache.targets, test) if f)
        for cut, value in cache.recall(weights, test).items():
            pooled[cut] += value * pairs / total_pairs
    return pooled, chosen


def ms_per_turn(services, cache: Cache, weights: dict[str, float], n: int = 60) -> float:
    from chatrec.ranker import RankWeights

    w = replace(RankWeights(), **{s: weights.get(s, 0.0) for s in SIGNALS})
    ranker = services.ranker
    learned = any(weights.get(s) for s in RankWeights.LEARNED)
    ranker.set_target_prior(cache.priors[0] if learned else None)
    cached = ranker.index.embedder
    ranker.index.embedder = getattr(cached, "embedder", cached)  # time real query encoding, not the cache
    times = []
    for state in cache.states[:n]:
        t = time.perf_counter()
        ranker.top(*ranker.score(state, w), k=KS[-1])
        times.append((time.perf_counter() - t) * 1000)
    ranker.index.embedder = cached
    ranker.set_target_prior(None)
    return float(np.median(times))


def add_split_arguments(p: argparse.ArgumentParser, out_name: str) -> None:
    """The data, cache and fold flags every ranking benchmark takes."""
    p.add_argument("--catalog", default=str(DATA / "catalog.jsonl"))
    p.add_argument("--dialogues", default=str(DATA / "dialogues.jsonl"))
    p.add_argument("--interactions", default=str(DATA / "interactions.csv"))
    p.add_argument("--home", default=str(ROOT / ".chatrec"), help="embedding cache folder (reused between runs)")
    p.add_argument("--limit", type=int)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / out_name))


def load_split(args: argparse.Namespace):
    """(services without an LM, dialogues) for the flags of ``add_split_arguments``."""
    from chatrec.evaluate import cache_query_encodings, load_dialogues
    from chatrec.services import build_services
    from chatrec.settings import Settings
    from chatrec.store import Store

    # no shipped priors file (catalog/learned/): every learned prior here comes from the training folds
    settings = Settings.load({"catalog": args.catalog, "interactions": args.interactions, "home": args.home,
                              "model": "none", "priors": "none"})
    services = build_services(settings, backend=None, store=Store("sqlite://"))
    cache_query_encodings(services)
    return services, load_dialogues(args.dialogues, args.limit)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_split_arguments(p, "ranking.json")
    args = p.parse_args()
    services, dialogues = load_split(args)
    cache = Cache(services, dialogues, args.folds)
    results = []
    print("| ranking | Recall@1 | Recall@10 | Recall@50 | ms/turn |\n| --- | --- | --- | --- | --- |")
    for name, on, tuned in ROWS:
        recall, chosen = cross_validate(cache, on, tuned, args.folds)
        ms = ms_per_turn(services, cache, chosen[0])
        print(f"| {name} | {recall[1]:.3f} | {recall[10]:.3f} | {recall[50]:.3f} | {ms:.1f} |", flush=True)
        results.append({"row": name, **{f"recall@{k}": round(v, 4) for k, v in recall.items()},
                        "ms_per_turn": round(ms, 2), "weights_per_fold": chosen})
    from chatrec.ranker import RankWeights

    for name, factory in FIXED:
        w = RankWeights.learned() if factory.endswith("learned") else RankWeights()
        fixed = {s: float(getattr(w, s)) for s in SIGNALS}
        recall, _ = cross_validate(cache, SIGNALS, (), args.folds, fixed=fixed)
        ms = ms_per_turn(services, cache, fixed)
        print(f"| {name} | {recall[1]:.3f} | {recall[10]:.3f} | {recall[50]:.3f} | {ms:.1f} |", flush=True)
        results.append({"row": name, **{f"recall@{k}": round(v, 4) for k, v in recall.items()},
                        "ms_per_turn": round(ms, 2), "weights": fixed})
    all_rows = np.ones(len(dialogues), dtype=bool)
    full = search(cache, all_rows, ROWS[5][1], ROWS[5][2])
    out = {"dialogues": args.dialogues, "n_turns": len(dialogues), "n_pairs": sum(len(t) for t in cache.targets),
           "folds": args.folds, "protocol": "5-fold CV by conversation; weights and target priors learned on 4 folds",
           "rows": results, "weights_fit_on_all_turns_no_learned_priors": full,
           "default_weights": asdict(services.ranker.weights)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"\nweights fit on all turns (no learned priors): {full}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
