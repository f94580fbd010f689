"""Shared resources, built once at start-up and passed to every session: catalog, indexes, LM, store.

Nothing here holds per-user data. If the language model cannot be loaded, the app still starts
in no-LM mode and ``notices`` says why, so the UI and the CLI can tell the user.
"""
from __future__ import annotations

import gc

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from .backends import LMBackend, load_backend, prepare_hub_access
from .catalog import Catalog, load_catalog
from .collab import CollaborativeModel
from .errors import ChatrecError, ConfigError, ModelLoadError
from .grounding import Grounder
from .index import Embedder, EmbeddingIndex, SentenceTransformerEmbedder, build_index
from .learned import PriorExamples, apply, load_configured
from .lexical import LexicalIndex
from .matching import TitleMatcher
from .prompts import PromptBuilder
from .ranker import Ranker, popularity_prior
from .settings import COLLAB_METHODS, LEARNED_DIR, Settings
from .store import Store
from .tracker import Tracker

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    index: EmbeddingIndex
    matcher: TitleMatcher
    tracker: Tracker
    ranker: Ranker
    grounder: Grounder
    prompts: PromptBuilder
    store: Store
    backend: LMBackend | None
    notices: list[str] = field(default_factory=list)
    priors: PriorExamples | None = None  # learned-priors examples behind ranker.target_prior
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.backend.name if self.backend is not None else "none"


def settle_heap() -> None:
    """Collect once, then exempt everything built so far from later collections (``gc.freeze``).

    A serving process keeps its start-up objects for life: catalog items, title and term indexes,
    the models' modules. Python's full collection walked all of them whenever it ran; at 100 k items
    that took ~0.6 s (measured, ``gc.callbacks``), landing inside whichever turn was running. Call it
    once, after start-up, in the process that will serve (not in libraries or tests)."""
    gc.collect()
    gc.freeze()


def build_services(settings: Settings, *, progress: Progress | None = None,
                   backend: LMBackend | None | str = "load", store: Store | None = None,
                   embedder: Embedder | None = None) -> Services:
    """Build everything from ``settings``. Inject ``backend`` (``None`` for no LM), ``store`` or
    ``embedder`` to replace the configured ones (tests, benchmarks)."""
    say = progress or (lambda msg: log.info(msg))
    timings: dict[str, float] = {}
    notices: list[str] = []
    if settings.collab not in COLLAB_METHODS:
        raise ConfigError(f"CHATREC_COLLAB={settings.collab!r}: use auto, ease or cosine")
    if backend == "load":
        prepare_hub_access(settings.model)  # before any Hugging Face import
    # First, so a database that cannot be opened fails start-up at once, not after the embeddings.
    store = store or Store(settings.db_url, privacy=settings.privacy)

    t = time.perf_counter()
    say(f"Loading catalog {settings.catalog}...")
    catalog = load_catalog(settings.catalog, skip_bad_rows=settings.skip_bad_rows)
    if catalog.warnings:
        notices.append(f"Skipped {len(catalog.warnings)} bad catalog row(s); first: {catalog.warnings[0]}")
    timings["catalog_s"] = time.perf_counter() - t

    t = time.perf_counter()
    say(f"Loading embedding model {settings.embedder}...")
    if embedder is None:
        embedder = SentenceTransformerEmbedder(settings.embedder, device="cpu" if settings.device == "cpu" else "auto",
                                               query_precision=settings.query_precision)
    index = build_index(catalog, embedder, settings.cache_dir, progress=say)
    timings["index_s"] = time.perf_counter() - t

    t = time.perf_counter()
    collab = CollaborativeModel.from_csv(settings.interactions, catalog, settings.collab) if settings.interactions else None
    if collab is not None and collab.uses_ease:
        collab.ease()  # solved once here, not on the first turn
    matcher = TitleMatcher(catalog, popularity=popularity_prior(catalog, collab))  # "Titanic": the 1997 one
    matcher.warm()  # its word indexes built here, not on the first reply (about 0.3 s on ReDial's catalog)
    ranker = Ranker(catalog, index, LexicalIndex(catalog), collab)
    prompts = PromptBuilder(catalog)
    grounder = Grounder(catalog, matcher, index, markers=prompts.constraint_markers)
    ranker.set_feedback(store.item_feedback())
    timings["ranking_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if backend == "load":
        say(f"Loading language model {settings.model}...")
        try:
            backend = load_backend(settings)
        except ModelLoadError as exc:
            notices.append(f"Running without a language model: {exc}")
            backend = None
    timings["model_s"] = time.perf_counter() - t
    if getattr(backend, "caches_prefix", False):  # state + candidates after the history: a reusable KV prefix
        prompts.context_after_history = True
    services = Services(settings, catalog, index, matcher, Tracker(catalog, matcher), ranker, grounder, prompts,
                        store, backend, notices, timings)
    t = time.perf_counter()
    apply(services, load_configured(settings.priors, catalog, LEARNED_DIR))
    if services.priors is not None:
        say(f"Learned priors: {len(services.priors)} recorded turns ({', '.join(services.priors.meta['files'])})")
    timings["priors_s"] = time.perf_counter() - t
    if settings.learn_from_logs:
        t = time.perf_counter()
        learned = learn_from_logs(services)
        timings["learn_s"] = time.perf_counter() - t
        if learned:
            say(f"Learned from {learned} liked suggestions in the log")
    return services


MIN_LIKED_SUGGESTIONS = 30  # below this, learned priors stay off: a few votes must not swing a demo


def learn_from_logs(services: Services, min_liked: int = MIN_LIKED_SUGGESTIONS) -> int:
    """The product learning from its own log: turns whose suggestions users liked become training
    dialogues for the ranker's learned priors (``collab.TargetPrior``: what was liked, after which
    items were named, for which kinds of request, alongside which items), the same priors ``eval --train-dialogues`` learns
    from recorded dialogues. Off until ``min_liked`` liked suggestions exist; read once at start-up.
    Returns the number of liked suggestions learned from (0: off). Texts stored as hashes
    (``--privacy``) cannot be learned from and are skipped."""
    from .evaluate import Dialogue, learn_from

    try:
        liked = services.store.liked_turns()
    except ChatrecError as exc:
        log.warning("learning from the log skipped: %s", exc)
        return 0
    dialogues = [Dialogue(f"{t.conversation_id}-{t.index}", t.context, t.items) for t in liked
                 if not any(text.startswith("sha256:") for _, text in t.context)]
    n = sum(len(d.targets) for d in dialogues)
    if n < min_liked:
        return 0
    learn_from(services, dialogues)
    return n
