"""Where the ranking loses: Recall@1/10/50 of what `eval` runs, split by the kind of (turn, target) pair.

    python benchmarks/misses.py --home .chatrec [--limit N] [--out benchmarks/results/misses.json]

The fixed ``RankWeights.learned()`` with priors from the other four folds, on the cached signals of
``benchmarks/ranking.py`` (its figures match `eval` to a few pairs). Each split prints the share of
pairs in each group and the group's recall, so a weak group that is large is where to look next.
This split by the target's interactions found the film listed twice whose ratings sat on the other row
(2026-12-07, ``benchmarks/results/ranking.md``). It explains nothing by itself: read the group's pairs.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ranking import KS, SIGNALS, Cache, add_split_arguments, load_split  # noqa: E402


def splits(services, cache: Cache) -> dict[str, Callable[[int, int], str]]:
    """Split name -> function (turn, target position) -> group label."""
    catalog, collab = services.catalog, services.ranker.collab
    ids = [item.id for item in catalog]
    rated = collab.popularity > 0 if collab is not None else np.zeros(len(catalog), dtype=bool)
    folds = int(cache.folds.max()) + 1
    offered = [set().union(*(cache.targets[j] for j in np.flatnonzero(cache.folds != k))) for k in range(folds)]

    def named(i: int, p: int) -> str:
        state = cache.states[i]
        if ids[p] in state.mentioned and ids[p] not in state.asked:
            return "named by the user (filtered)"
        if ids[p] in state.asked:
            return "asked about"
        return "suggested before" if ids[p] in state.shown else "new"

    seeds = lambda i: sum(v >= 0 for v in cache.states[i].mentioned.values())  # noqa: E731
    return {
        "what the target is to the user": named,
        "films the user named so far": lambda i, p: str(min(seeds(i), 3)) + ("+" if seeds(i) >= 3 else ""),
        "user turn": lambda i, p: str(min(cache.states[i].n_turns, 5)) + ("+" if cache.states[i].n_turns >= 5 else ""),
        "target has interactions": lambda i, p: "yes" if rated[p] else "no",
        "target suggested in the training folds": lambda i, p: "yes" if p in offered[cache.folds[i]] else "no",
        "target has another listing": lambda i, p: "yes" if p in catalog.listings else "no",
    }


def main() -> int:
    from chatrec.ranker import RankWeights

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_split_arguments(p, "misses.json")
    args = p.parse_args()
    services, dialogues = load_split(args)
    cache = Cache(services, dialogues, args.folds)
    weights = {s: float(getattr(RankWeights.learned(), s)) for s in SIGNALS}
    pairs = cache.pair_ranks(weights, np.ones(len(dialogues), dtype=bool))
    report = {"n_pairs": len(pairs), "recall": {f"recall@{k}": round(np.mean([r < k for *_, r in pairs]), 4) for k in KS}}
    print(f"all {len(pairs)} pairs: " + " / ".join(f"{v:.3f}" for v in report["recall"].values()))
    for name, group_of in splits(services, cache).items():
        groups: dict[str, list[int]] = defaultdict(list)
        for i, t, r in pairs:
            groups[group_of(i, t)].append(r)
        print(f"\n| {name} | share of pairs | Recall@1 | Recall@10 | Recall@50 |\n| --- | --- | --- | --- | --- |")
        report[name] = {}
        for label, ranks in sorted(groups.items()):
            recall = [float(np.mean([r < k for r in ranks])) for k in KS]
            report[name][label] = {"pairs": len(ranks), **{f"recall@{k}": round(v, 4) for k, v in zip(KS, recall)}}
            print(f"| {label} | {len(ranks) / len(pairs):.3f} | " + " | ".join(f"{v:.3f}" for v in recall) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
