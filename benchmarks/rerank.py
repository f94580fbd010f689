"""Experiment (not the product's path): a gradient-boosted reranker over the hybrid ranker's top
candidates, cross-validated on the ReDial valid split.

    pip install lightgbm   # only this experiment needs it
    python benchmarks/rerank.py --home .chatrec [--candidates 200] [--rounds 200] [--out benchmarks/results/rerank.json]

Protocol: 5 folds by conversation (``ranking.fold_of``). The learned priors (``TargetPrior``: how
often an item was suggested, what followed the items named, what similar requests were offered) are
*nested*: a held-out fold's turns use priors from the four other folds, and a training turn of fold
j (outer fold k held out) uses priors from the three folds that are neither j nor k, so no feature
of a training row has seen the held-out fold's targets. Candidates: the top ``--candidates`` items
of ``RankWeights.learned()`` (the linear sum ``eval --train-dialogues`` runs). Features: every unit
signal, the three learned priors, the linear score and its rank, turn length and seed count. The
model: LightGBM, binary objective, 7 leaves, 200 rounds, trained on the four training folds.
Printed: pooled Recall@1/10/50 of the linear order and of the reranked order over the held-out folds
(one listing per title, shown as the listing people name, as `eval` counts),
and the share of targets among the candidates (the ceiling of any reranker).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ranking  # noqa: E402  (benchmarks/ranking.py: data paths, folds, the signal cache)
from chatrec.ranker import RankWeights  # noqa: E402  (importable once ranking.py put the repo on sys.path)

LEARNED = RankWeights.LEARNED
SIGNALS = tuple(s for s in ranking.SIGNALS if s not in LEARNED)
EXTRA = ("linear", "linear_rank", "user_turns", "seeds")


def nested_priors(services, cache, dialogues, folds: int):
    """priors[frozenset(excluded folds)] -> TargetPrior built from the other folds' dialogues."""
    from chatrec.collab import TargetPrior

    queries = {d.id: services.ranker.query_vector(st) for d, st in zip(dialogues, cache.states)}
    out = {}
    for a in range(folds):
        for b in range(a, folds):
            keep = [d for d, f in zip(dialogues, cache.folds) if f not in (a, b)]
            out[frozenset((a, b))] = TargetPrior.from_dialogues(services.catalog, services.matcher, keep,
                                                                query_of=lambda d: queries[d.id])
    return out


def turn_features(services, cache, i: int, prior, n_candidates: int):
    """(candidate positions, feature matrix, labels) of turn ``i`` with ``prior`` as learned priors."""
    ranker, w = services.ranker, RankWeights.learned()
    state = cache.states[i]
    seeds = ranker._seeds(state, w.shown_seed)
    positions, strengths = (list(x) for x in zip(*seeds)) if seeds else ([], [])
    query = ranker.query_vector(state, w)
    learned = {"target_pop": prior.popularity(),
               "cooc": prior.following(positions, strengths) if seeds else np.zeros(len(services.catalog), np.float32),
               "comention": prior.together(positions, strengths),
               "requests": prior.similar_requests(query, w.requests_k) if query is not None
               else np.zeros(len(services.catalog), np.float32),
               "request_profile": prior.request_profiles(query) if query is not None
               else np.zeros(len(services.catalog), np.float32)}
    linear = cache.base[i] - w.shown_penalty * cache.shown[i]
    for s in SIGNALS:
        linear = linear + getattr(w, s) * cache.sig[s][i].astype(np.float32)
    for s in LEARNED:
        linear = linear + getattr(w, s) * learned[s]
    c = min(n_candidates, int(np.isfinite(linear).sum()))
    cand = np.argpartition(-linear, c - 1)[:c]
    cand = cand[np.argsort(-linear[cand], kind="stable")]
    cols = [cache.sig[s][i][cand].astype(np.float32) for s in SIGNALS] + [learned[s][cand] for s in LEARNED]
    cols += [linear[cand], np.arange(c, dtype=np.float32), np.full(c, len(state.user_texts()), np.float32),
             np.full(c, len(seeds), np.float32)]
    targets = set(cache.targets[i])
    return cand, np.stack(cols, 1), np.array([p in targets for p in cand], dtype=np.float32)


def recall(cache, rows, cands, scores) -> tuple[dict[int, int], int, int]:
    """Hits per cut-off over the (turn, target) pairs of ``rows``, with one listing per title shown as
    the listing people name (as ``eval`` and ``ranking.Cache.recall``), and the pairs covered."""
    from chatrec.ranker import one_listing_each

    hits, pairs, covered = dict.fromkeys(ranking.KS, 0), 0, 0
    for i, cand, sc in zip(rows, cands, scores):
        ordered = one_listing_each(cand[np.argsort(-sc, kind="stable")].tolist(), cache.listings,
                                   prefer=cache.prefer[cache.folds[i]], scores=cache.base[i])
        rank = {p: r for r, p in enumerate(ordered)}
        for t in cache.targets[i]:
            pairs += 1
            r = rank.get(t)
            covered += t in cand
            for k in ranking.KS:
                hits[k] += r is not None and r < k
    return hits, pairs, covered


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ranking.add_split_arguments(p, "rerank.json")
    p.add_argument("--candidates", type=int, default=200)
    p.add_argument("--rounds", type=int, default=200)
    args = p.parse_args()
    import lightgbm as lgb

    started = time.time()
    services, dialogues = ranking.load_split(args)
    cache = ranking.Cache(services, dialogues, args.folds, signals=SIGNALS)  # learned signals come per fold below
    priors = nested_priors(services, cache, dialogues, args.folds)
    params = dict(objective="binary", learning_rate=0.03, num_leaves=7, min_data_in_leaf=200, lambda_l2=10.0,
                  feature_fraction=0.8, bagging_fraction=0.8, bagging_freq=1, verbose=-1, num_threads=2, seed=0)
    totals = {"linear": dict.fromkeys(ranking.KS, 0), "reranked": dict.fromkeys(ranking.KS, 0)}
    pairs = covered = 0
    for k in range(args.folds):
        train = [i for i in range(len(dialogues)) if cache.folds[i] != k]
        test = [i for i in range(len(dialogues)) if cache.folds[i] == k]
        tr = [turn_features(services, cache, i, priors[frozenset((cache.folds[i], k))], args.candidates) for i in train]
        te = [turn_features(services, cache, i, priors[frozenset((k,))], args.candidates) for i in test]
        model = lgb.train(params, lgb.Dataset(np.concatenate([x for _, x, _ in tr]), np.concatenate([y for _, _, y in tr])),
                          num_boost_round=args.rounds)
        cands = [c for c, _, _ in te]
        for name, scores in (("linear", [-np.arange(len(c), dtype=np.float32) for c in cands]),
                             ("reranked", [model.predict(x) for _, x, _ in te])):
            hits, n, cov = recall(cache, test, cands, scores)
            for cut in ranking.KS:
                totals[name][cut] += hits[cut]
        pairs, covered = pairs + n, covered + cov
        print(f"fold {k}: done ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    out = {"dialogues": args.dialogues, "n_pairs": pairs, "folds": args.folds, "candidates": args.candidates,
           "targets_among_candidates": round(covered / pairs, 4),
           **{name: {f"recall@{cut}": round(h / pairs, 4) for cut, h in hits.items()} for name, hits in totals.items()},
           "features": [*SIGNALS, *LEARNED, *EXTRA], "lightgbm": params, "rounds": args.rounds,
           "seconds": round(time.time() - started)}
    print(json.dumps(out, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
