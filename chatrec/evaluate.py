"""``python -m chatrec eval``: Recall@K of the ranking on recorded dialogues (ReDial protocol).

For every dialogue the context is replayed through the tracker into a fresh ``DialogueState``
(user turns update preferences and mentions; items the assistant named become ``shown``), the
catalog is ranked, and every (turn, target) pair counts once: a hit when the target is among the
top K. With a language model configured, the LM's grounded picks go first, then the ranker's order.

Services (catalog, embeddings, indexes, LM) are built once; with ``--home`` the catalog embeddings
are cached on disk, so later runs start in seconds. It never scores a conversation with priors
learned from it: learned priors come from ``--priors`` files (``python -m chatrec learn``; scored
conversations found in them are ranked fold by fold with priors rebuilt without their fold, see
``learned.py``) and from ``--train-dialogues`` (another split).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from . import cli
from .errors import InputError

DEFAULT_K = "1,10,50"


@dataclass
class Dialogue:
    id: str
    context: list[tuple[str, str]]  # (role, content)
    targets: list[str]


@dataclass
class Tally:
    ks: list[int]
    hits: dict[int, int] = field(default_factory=dict)
    n_turns: int = 0
    n_pairs: int = 0
    latencies: list[float] = field(default_factory=list)
    mentions: int = 0
    ungrounded: int = 0
    lm_picks: int = 0
    held_out: dict[str, int] | None = None  # learned priors rebuilt per fold (scored conversations learned from)

    def add(self, ranked_ids: list[str], targets: list[str], latency_ms: float) -> None:
        self.n_turns += 1
        self.latencies.append(latency_ms)
        rank = {item_id: r for r, item_id in enumerate(ranked_ids)}
        for target in targets:
            self.n_pairs += 1
            r = rank.get(target)
            for k in self.ks:
                self.hits[k] = self.hits.get(k, 0) + int(r is not None and r < k)

    def recall(self) -> dict[str, float]:
        return {f"recall@{k}": round(self.hits.get(k, 0) / self.n_pairs, 4) if self.n_pairs else 0.0
                for k in self.ks}


class CachedEncoder:
    """Wraps an embedder with a per-text cache: the turns of one conversation share their earlier
    messages, so replaying every turn would otherwise re-encode the same texts many times."""

    def __init__(self, embedder, max_items: int = 50_000):
        self.embedder = embedder
        self.name = embedder.name
        self.max_items = max_items
        self._cache: dict[str, object] = {}

    def encode(self, texts, progress: bool = False):
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if len(self._cache) + len(missing) > self.max_items:
                self._cache.clear()
            self._cache.update(zip(missing, self.embedder.encode(missing)))
        return np.stack([self._cache[t] for t in texts]) if texts else self.embedder.encode(texts)


def cache_query_encodings(services) -> None:
    """Make the ranker's query encoder remember texts (evaluation and benchmarks only)."""
    if services.index.embedder is not None and not isinstance(services.index.embedder, CachedEncoder):
        services.index.embedder = CachedEncoder(services.index.embedder)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli.add_common(parser)
    parser.add_argument("--dialogues", required=True, help="dialogues JSONL (id, context, targets)")
    parser.add_argument("--k", default=DEFAULT_K, help="comma-separated cut-offs, e.g. 1,10,50")
    parser.add_argument("--limit", type=int, help="only the first N dialogues")
    parser.add_argument("--train-dialogues", dest="train_dialogues",
                        help="dialogues JSONL from another split to learn target priors from")
    parser.add_argument("--out", required=True, help="where to write the JSON report")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def parse_ks(raw: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in raw.split(",") if x.strip()})
    except ValueError:
        raise InputError(f"--k {raw!r}: give comma-separated positive integers, e.g. 1,10,50") from None
    if not ks or ks[0] < 1:
        raise InputError(f"--k {raw!r}: give comma-separated positive integers, e.g. 1,10,50")
    return ks


def load_dialogues(path: str | Path, limit: int | None = None) -> list[Dialogue]:
    """Read and validate a dialogues file; errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"dialogues file {path} does not exist: check --dialogues")
    out: list[Dialogue] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if limit is not None and len(out) >= limit:
                break
            out.append(_parse_dialogue(line, f"{path}:{n}"))
    return out


def _parse_dialogue(line: str, where: str) -> Dialogue:
    try:
        row = json.loads(line)
        context = [(str(m["role"]), str(m.get("content") or "")) for m in row["context"]]
        targets = [str(t) for t in row["targets"]]
        dialogue_id = str(row.get("id", where))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{where}: not a dialogue ({type(exc).__name__}: {exc}); expected "
                         '{"id": str, "context": [{"role", "content"}], "targets": [item id]}') from None
    bad = [r for r, _ in context if r not in ("user", "assistant")]
    if bad:
        raise InputError(f"{where}: role {bad[0]!r} must be 'user' or 'assistant'")
    return Dialogue(dialogue_id, context, targets)


def replay(services, dialogue: Dialogue, upto: int | None = None):
    """A fresh state with the dialogue's context (or its first ``upto`` messages) observed."""
    from .state import DialogueState, Message

    state = DialogueState(conversation_id=f"eval-{dialogue.id}")
    for role, content in dialogue.context[:upto]:
        services.tracker.observe(state, Message(role, content))  # type: ignore[arg-type]
    return state


def rank_ids(services, dialogue: Dialogue, k: int) -> list[str]:
    """Ranker-only path (``--model none``): the top ``k`` item ids."""
    state = replay(services, dialogue)
    ranker = services.ranker
    return [r.item.id for r in ranker.rank(state, k=k)]


def rank_ids_lm(recommender, dialogue: Dialogue, k: int, tally: Tally) -> list[str]:
    """LM path: replay all but the last user message, run the real turn, LM picks first."""
    s = recommender.s
    last = max((i for i, (role, _) in enumerate(dialogue.context) if role == "user"), default=None)
    if last is None or not dialogue.context[last][1].strip():
        return rank_ids(s, dialogue, k)
    state = replay(s, dialogue, upto=last)
    result = recommender.run_turn(state, dialogue.context[last][1])
    grounding = s.grounder.ground(result.reply, [c.item for c in result.candidates])
    tally.mentions += len(grounding.mentions)
    tally.ungrounded += len(grounding.ungrounded)
    picks = [r.item.id for r in result.recommendations if r.source != "ranker"]
    tally.lm_picks += len(picks)
    state.messages.pop()  # rank the same state the LM saw, without its own reply
    ranked = [r.item.id for r in s.ranker.rank(state, k=k + len(picks))]
    seen = set(picks)
    return (picks + [i for i in ranked if i not in seen])[:k]


def learn_from(services, dialogues: list[Dialogue]) -> None:
    """Learned priors from other dialogues' targets (``TargetPrior``), added to those already
    configured (``--priors``) and switched on with the cross-validated weights of ``RankWeights.learned``."""
    from .learned import apply, examples_of

    examples = examples_of(services, dialogues)
    apply(services, examples if services.priors is None else services.priors.concat(examples))


def evaluate(services, dialogues: Iterable[Dialogue], ks: list[int], progress: bool = False) -> Tally:
    """Recall@K over ``dialogues`` with already-built services (LM path when it has a backend)."""
    dialogues = list(dialogues)
    tally = Tally(ks)
    recommender = None
    if services.backend is not None:
        from .recommender import Recommender

        recommender = Recommender(services)
    fold_priors, fold, turns = _held_out_priors(services, dialogues)
    if fold_priors:
        tally.held_out = {"folds": len(fold_priors), "training_turns_per_fold": turns}
    full = services.ranker.target_prior
    bar = _bar(len(dialogues), progress)
    try:
        for i, dialogue in enumerate(dialogues):
            if fold_priors:
                services.ranker.set_target_prior(fold_priors[fold[i]])
            known = [t for t in dialogue.targets if t in services.catalog.position]
            started = time.perf_counter()
            if recommender is None:
                ranked = rank_ids(services, dialogue, ks[-1])
            else:
                ranked = rank_ids_lm(recommender, dialogue, ks[-1], tally)
            tally.add(ranked, known, (time.perf_counter() - started) * 1000)
            bar.update(1)
    finally:
        bar.close()
        if fold_priors:
            services.ranker.set_target_prior(full)  # the services keep serving with everything learned
    return tally


def _held_out_priors(services, dialogues: list[Dialogue]):
    """Never score a conversation with priors learned from it: when the configured priors were
    learned from some of ``dialogues``: one prior per fold, each dialogue's fold, and each prior's
    number of training turns; else Nones. See ``learned.held_out``."""
    from .learned import held_out, prior_for

    if services.priors is None or (split := held_out(services.priors, dialogues)) is None:
        return None, None, None
    masks, fold = split
    priors = [prior_for(services, services.priors.subset(m)) for m in masks]
    return priors, fold, [int(m.sum()) for m in masks]


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, file=sys.stderr, desc="eval", unit="turn")


def report(services, tally: Tally, args: argparse.Namespace, skipped_targets: int) -> dict[str, object]:
    import numpy as np

    lat = np.array(tally.latencies or [0.0])
    lm = services.backend is not None
    return {
        "n_turns": tally.n_turns,
        "n_pairs": tally.n_pairs,
        **tally.recall(),
        "ungrounded_rate": round(tally.ungrounded / tally.mentions, 4) if tally.mentions else 0.0,
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 2), "p95": round(float(np.percentile(lat, 95)), 2)},
        "model": services.model_name,
        "catalog": str(services.settings.catalog),
        "n_items": len(services.catalog),
        "dialogues": str(args.dialogues),
        "interactions": str(services.settings.interactions) if services.settings.interactions else None,
        "train_dialogues": getattr(args, "train_dialogues", None),
        "ranking_path": "lm+ranker" if lm else "ranker",
        "ranking_path_note": ("the LM's grounded picks first, then the ranker's order" if lm
                              else "the hybrid ranker alone (no LM)"),
        "weights": asdict(services.ranker.weights),
        "learned_priors": _learned(services, tally),
        "embedder": services.settings.embedder,
        "skipped_targets": skipped_targets,
        "lm_mentions": tally.mentions,
        "lm_picks": tally.lm_picks,
        "build_s": {k: round(v, 2) for k, v in services.timings.items()},
    }


def _learned(services, tally: Tally) -> dict[str, object] | None:
    prior = services.ranker.target_prior
    if prior is None:
        return None
    out: dict[str, object] = {"suggestions": int(prior.counts.sum()),
                              "request_turns": 0 if prior.queries is None else int(prior.queries.shape[0])}
    if services.priors is not None:
        out["files"] = services.priors.meta.get("files", [])
        out["training_turns"] = len(services.priors)
    if tally.held_out:
        out["held_out"] = {**tally.held_out, "note": "some scored conversations were learned from: each fold "
                           "(by conversation) was ranked with priors rebuilt without it (cross-validated)"}
    return out


def run(args: argparse.Namespace) -> int:
    from .services import build_services
    from .store import Store

    ks = parse_ks(args.k)
    if args.limit is not None and args.limit < 1:
        raise InputError("--limit must be a positive number of dialogues")
    dialogues = load_dialogues(args.dialogues, args.limit)
    settings = cli.settings_from_args(args)
    say = (lambda msg: print(msg, file=sys.stderr)) if args.progress else None
    backend = None if settings.model == "none" else "load"
    # Evaluation turns are not conversations: keep them out of the product's database.
    services = build_services(settings, progress=say, backend=backend, store=Store("sqlite://"))
    cache_query_encodings(services)
    if args.train_dialogues:
        learn_from(services, load_dialogues(args.train_dialogues))
    skipped = sum(1 for d in dialogues for t in d.targets if t not in services.catalog.position)
    tally = evaluate(services, dialogues, ks, progress=args.progress)
    out = report(services, tally, args, skipped)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k.startswith("recall@") or k in ("n_turns", "n_pairs")}))
    services.store.close()
    return 0
