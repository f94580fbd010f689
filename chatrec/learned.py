"""Learned priors as a file: what human recommenders suggested in recorded dialogues, kept per turn.

``python -m chatrec learn --dialogues D.jsonl --out P.npz`` replays each training turn once and
keeps, per turn, the items named in its context, the items suggested (its targets), its query
vector and which conversation it belongs to. ``TargetPrior`` (``collab.py``) is built from these
examples at start-up, so a file learned from one split serves every later session and every
``eval`` run (``--priors``, ``CHATREC_PRIORS``; ``auto`` loads the files in ``catalog/learned/``
that cover the loaded catalog).

Never scored on what it learned: when ``eval`` scores conversations that a priors file was learned
from, those conversations are split into 5 folds (by conversation) and each fold is ranked with
priors rebuilt from the examples of the *other* folds (plus every example of conversations not
being scored). Scores on the training split are then cross-validated, and scores on new
dialogues use everything learned.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .catalog import Catalog
from .errors import ConfigError

FORMAT = "chatrec-priors/1"
FOLDS = 5
MIN_COVERAGE = 0.5  # ``auto`` uses a file when at least this share of its items is in the catalog


def conversation_of(dialogue_id: str) -> str:
    """``"16162-4"`` -> ``"16162"``: recorded splits number a conversation's turns after a dash."""
    return dialogue_id.rsplit("-", 1)[0] if "-" in dialogue_id else dialogue_id


def context_hash(context: Sequence[tuple[str, str]]) -> str:
    return hashlib.sha1(json.dumps([list(m) for m in context], ensure_ascii=False).encode()).hexdigest()[:16]


def fold_of(conversation: str, folds: int) -> int:
    return int(hashlib.md5(conversation.encode()).hexdigest(), 16) % folds


@dataclass
class PriorExamples:
    """One row per training turn. ``group``: conversation number for co-mention (turns whose context
    extends another's are one conversation, ``collab.conversations``); ``conversation``: the id it
    was recorded under, with ``context`` (a hash of the turn's context) to recognise it later."""
    conversation: list[str]
    group: list[int]
    context: list[str]
    named: list[list[str]]  # item ids named in the turn's context
    targets: list[list[str]]  # item ids suggested at the turn
    queries: np.ndarray | None  # (turns, dim) float32 unit vectors; a zero row: no query
    meta: dict = field(default_factory=dict)  # "genre_names": the columns of ``genres``
    genres: np.ndarray | None = None  # (turns, genres) float32: the genres each turn asked for; a zero row: none

    def __len__(self) -> int:
        return len(self.conversation)

    @classmethod
    def from_dialogues(cls, catalog: Catalog, matcher, dialogues, query_of: Callable | None = None,
                       meta: dict | None = None, genres_of: Callable | None = None,
                       genre_names: Sequence[str] = ()) -> "PriorExamples":
        """``dialogues``: objects with ``.id``, ``.context`` [(role, text)] and ``.targets`` [item id];
        ``query_of(d)``: its unit query vector or None; ``genres_of(d)``: the weights of the genres it
        asked for, one per ``genre_names``."""
        from .collab import conversations

        dialogues = list(dialogues)
        known = catalog.position
        named = [list(dict.fromkeys(m.item_id for role, text in d.context  # as the tracker reads each role
                                    for m in matcher.find_in_text(text, typed=role == "user")))
                 for d in dialogues]
        vectors = [query_of(d) if query_of is not None and any(t in known for t in d.targets) else None
                   for d in dialogues]
        dim = next((len(v) for v in vectors if v is not None), 0)
        queries = None
        if dim:
            queries = np.stack([np.zeros(dim, np.float32) if v is None else np.asarray(v, np.float32)
                                for v in vectors])
        meta = dict(meta or {})
        genres = None
        if genres_of is not None and genre_names:
            genres = np.zeros((len(dialogues), len(genre_names)), dtype=np.float32)
            for i, d in enumerate(dialogues):
                genres[i] = np.clip(np.asarray(genres_of(d), dtype=np.float32), 0, None)
            meta["genre_names"] = list(genre_names)
        return cls([conversation_of(str(d.id)) for d in dialogues], conversations(dialogues),
                   [context_hash(d.context) for d in dialogues], named,
                   [[str(t) for t in d.targets] for d in dialogues], queries, meta, genres)

    def subset(self, keep: np.ndarray) -> "PriorExamples":
        idx = np.flatnonzero(keep)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return PriorExamples(pick(self.conversation), pick(self.group), pick(self.context), pick(self.named),
                             pick(self.targets), None if self.queries is None else self.queries[idx], dict(self.meta),
                             None if self.genres is None else self.genres[idx])

    def concat(self, other: "PriorExamples") -> "PriorExamples":
        offset = max(self.group, default=-1) + 1
        if self.queries is None or other.queries is None or self.queries.shape[1] != other.queries.shape[1]:
            queries = None
        else:
            queries = np.concatenate([self.queries, other.queries])
        return PriorExamples(self.conversation + other.conversation, self.group + [g + offset for g in other.group],
                             self.context + other.context, self.named + other.named, self.targets + other.targets,
                             queries, dict(self.meta), self._genres_with(other))

    def _genres_with(self, other: "PriorExamples") -> np.ndarray | None:
        """Both files' genre rows over this file's genre names (a genre the other lacks: 0); None
        when this file has none."""
        names = self.meta.get("genre_names") or []
        if self.genres is None:
            return None
        theirs = other.meta.get("genre_names") or []
        rows = np.zeros((len(other), len(names)), dtype=np.float32)
        if other.genres is not None:
            for j, name in enumerate(names):
                if name in theirs:
                    rows[:, j] = other.genres[:, theirs.index(name)]
        return np.concatenate([self.genres, rows])

    def coverage(self, catalog: Catalog) -> float:
        """Share of the suggested items that exist in ``catalog``."""
        ids = {t for ts in self.targets for t in ts}
        return sum(t in catalog.position for t in ids) / len(ids) if ids else 0.0

    # -- files --------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        flat = lambda rows: (np.array([x for r in rows for x in r], dtype=str),  # noqa: E731
                             np.cumsum([0] + [len(r) for r in rows]).astype(np.int64))
        named, named_off = flat(self.named)
        targets, targets_off = flat(self.targets)
        arrays = {"conversation": np.array(self.conversation, dtype=str), "group": np.array(self.group, np.int64),
                  "context": np.array(self.context, dtype=str), "named": named, "named_off": named_off,
                  "targets": targets, "targets_off": targets_off,
                  "meta": np.array(json.dumps({"format": FORMAT, **self.meta}))}
        if self.queries is not None:
            arrays["queries"] = self.queries.astype(np.float16)
        if self.genres is not None:
            arrays["genres"] = self.genres.astype(np.float16)
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PriorExamples":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"priors file {path} does not exist: check --priors / CHATREC_PRIORS")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != FORMAT:
                    raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
                unflat = lambda a, off: [a[off[i]:off[i + 1]].tolist() for i in range(len(off) - 1)]  # noqa: E731
                return cls(z["conversation"].tolist(), z["group"].tolist(), z["context"].tolist(),
                           unflat(z["named"], z["named_off"]), unflat(z["targets"], z["targets_off"]),
                           z["queries"].astype(np.float32) if "queries" in z else None, meta,
                           z["genres"].astype(np.float32) if "genres" in z else None)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"priors file {path} cannot be read ({exc}); rebuild it with "
                              "`python -m chatrec learn`") from None


def build_prior(catalog: Catalog, examples: PriorExamples, embedder: str | None = None, dim: int | None = None):
    """A ``TargetPrior`` from ``examples``. Query vectors are only comparable within one embedder:
    with another ``embedder`` than the file's (or vectors of another size than ``dim``), the
    similar-requests prior is left out and the others stay."""
    from .collab import TargetPrior

    queries = examples.queries
    if embedder is not None and examples.meta.get("embedder") not in (None, embedder):
        queries = None
    if queries is not None and dim is not None and queries.shape[1] != dim:
        queries = None
    return TargetPrior.from_examples(catalog, examples.named, examples.targets, examples.group, queries,
                                     examples.meta.get("genre_names") or (), examples.genres)


def find_priors(setting: str, catalog: Catalog, folder: Path) -> list[Path]:
    """The files a ``priors`` setting names: ``none``; a path; ``auto`` (every ``*.npz`` in
    ``folder`` that covers the catalog: at least half of its suggested items exist in it; only the
    suggested ids are read to decide, so a start-up with another catalog does not unpack the file)."""
    if setting in ("", "none", "off"):
        return []
    if setting != "auto":
        return [Path(p).expanduser() for p in setting.split(",") if p.strip()]
    out = []
    for path in sorted(folder.glob("*.npz")):
        try:
            with np.load(path, allow_pickle=False) as z:
                ids = set(z["targets"].tolist())
        except (OSError, ValueError, KeyError):
            continue  # auto-discovery skips what it cannot read; a named file fails loudly
        if ids and sum(t in catalog.position for t in ids) / len(ids) >= MIN_COVERAGE:
            out.append(path)
    return out


def held_out(examples: PriorExamples, dialogues) -> tuple[list[np.ndarray], np.ndarray] | None:
    """When ``dialogues`` (being scored) share conversations with ``examples``: per fold, the mask of
    examples a prior for that fold may use, and each dialogue's fold. None when nothing is shared.

    An example belongs to a scored conversation when its conversation id is that conversation's, or
    when its exact context is a scored turn's (the same data under other ids): then every example of
    its conversation (``group``: turns whose contexts extend each other) is held out of that fold."""
    ids = [conversation_of(str(d.id)) for d in dialogues]
    fold = np.array([fold_of(c, FOLDS) for c in ids])
    fold_of_conv = dict(zip(ids, fold.tolist()))
    fold_of_context = {context_hash(d.context): int(f) for d, f in zip(dialogues, fold)}
    excluded = np.zeros((len(examples), FOLDS), dtype=bool)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(examples.group):
        members.setdefault(g, []).append(i)
    for i, (conv, ctx, g) in enumerate(zip(examples.conversation, examples.context, examples.group)):
        if conv in fold_of_conv:
            excluded[i, fold_of_conv[conv]] = True
        if ctx in fold_of_context:
            excluded[members[g], fold_of_context[ctx]] = True
    if not excluded.any():
        return None
    return [~excluded[:, k] for k in range(FOLDS)], fold


def load_configured(setting: str, catalog: Catalog, folder: Path) -> PriorExamples | None:
    """Every file the setting names (see ``find_priors``), merged; None when there is none."""
    merged, files = None, []
    for path in find_priors(setting, catalog, folder):
        examples = PriorExamples.load(path)
        merged = examples if merged is None else merged.concat(examples)
        files.append(str(path))
    if merged is not None:
        merged.meta["files"] = files
    return merged


def apply(services, examples: PriorExamples | None) -> None:
    """Make ``examples`` the ranker's learned priors, at the cross-validated weights of
    ``RankWeights.learned`` (None switches them off)."""
    from dataclasses import replace

    from .ranker import RankWeights

    services.priors = examples
    ranker = services.ranker
    if examples is None or not len(examples):
        ranker.set_target_prior(None)
        return
    ranker.set_target_prior(prior_for(services, examples))
    learned = RankWeights.learned()
    ranker.weights = replace(ranker.weights, **{n: getattr(learned, n) for n in RankWeights.LEARNED})


def prior_for(services, examples: PriorExamples):
    """``build_prior`` for the services' catalog and embedder."""
    return build_prior(services.catalog, examples, services.settings.embedder, services.index.vectors.shape[1])


def examples_of(services, dialogues, meta: dict | None = None) -> PriorExamples:
    """Training examples from recorded dialogues, replayed through the product's own tracker."""
    from .evaluate import replay

    ranker = services.ranker
    states: dict[int, object] = {}

    def state(d):  # one replay per turn for its query and its genres
        if id(d) not in states:
            states[id(d)] = replay(services, d)
        return states[id(d)]

    return PriorExamples.from_dialogues(services.catalog, services.matcher, dialogues,
                                        query_of=lambda d: ranker.query_vector(state(d)),
                                        meta={"embedder": services.settings.embedder, **(meta or {})},
                                        genres_of=lambda d: ranker.wanted_genres(state(d)),
                                        genre_names=ranker.facets.genre_names)


# -- python -m chatrec learn ------------------------------------------------------------------------
def add_arguments(parser) -> None:
    from . import cli

    cli.add_common(parser)
    parser.add_argument("--dialogues", required=True, help="dialogues JSONL (id, context, targets) to learn from")
    parser.add_argument("--out", required=True, help="where to write the priors file (.npz)")


def run(args) -> int:
    import sys

    from . import cli
    from .evaluate import cache_query_encodings, load_dialogues
    from .services import build_services
    from .store import Store

    settings = cli.settings_from_args(args).replace(model="none", priors="none", learn_from_logs=False)
    services = build_services(settings, backend=None, store=Store("sqlite://"),
                              progress=lambda msg: print(msg, file=sys.stderr))
    cache_query_encodings(services)
    dialogues = load_dialogues(args.dialogues)
    examples = examples_of(services, dialogues, meta={"source": str(args.dialogues),
                                                      "catalog": str(settings.catalog)})
    path = examples.save(args.out)
    n_targets = sum(len(t) for t in examples.targets)
    print(json.dumps({"out": str(path), "turns": len(examples), "suggestions": n_targets,
                      "conversations": len(set(examples.conversation)),
                      "coverage_of_catalog": round(examples.coverage(services.catalog), 4)}))
    services.store.close()
    return 0
