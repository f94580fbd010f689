"""The non-LM parts of ``python -m chatrec bench``: turn overhead, item search, app start-up.

Synthetic catalogs stand in for large real ones: item text is drawn from a fixed word list and item
vectors from a clustered distribution on the unit sphere (like sentence embeddings, unlike uniform
noise, on which no ANN index works). Queries go through the real sentence-transformers embedder.
Left out: the LM (a scripted backend names candidate titles instantly), network and UI time.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ("train set wooden railway engine track lego city police station farm doll house rag puzzle jigsaw "
         "remote control racing car drone kite robot dinosaur science kit magnetic tiles marble run plush "
         "teddy bear unicorn pirate ship castle knight garden swing slide scooter bike helmet paint craft "
         "beads slime clay musical piano drum guitar xylophone board game card chess blocks stacking cups "
         "bath boat water gun football rugby tennis bubble machine torch tent binoculars microscope").split()
CATEGORIES = ["Trains", "Construction", "Dolls", "Puzzles", "Remote Control", "Arts & Crafts", "Games",
              "Outdoor", "Music", "Science", "Plush", "Baby & Toddler"]
USER_TURNS = ["I need a present for a 6 year old who loves trains", "something under £40 please",
              "no lego, he has loads", "must have remote control", "I liked the first one, anything similar?",
              "what about a science kit instead?", "cheaper than £20", "not the drone, something for outdoors"]
# Each conversation names its own child, so every user message is new text (a real user's always is):
# the query-embedding cache then only saves re-encoding the earlier turns, as in the app.
CHILDREN = ["Sam", "Alex", "Jo", "Kim", "Max", "Ava", "Leo", "Mia", "Noah", "Zoe", "Ben", "Eve"]


def synthetic_catalog(n: int, seed: int = 0):
    from .catalog import Catalog, Item

    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    picks = rng.integers(0, len(words), size=(n, 18))
    items = []
    for i in range(n):
        w = words[picks[i]]
        title = f"{' '.join(w[:4]).title()} {i}"  # the number keeps titles distinct, as real ones are
        items.append(Item(f"s{i}", title, " ".join(w[4:]), CATEGORIES[i % len(CATEGORIES)],
                          float(np.round(rng.uniform(3, 150), 2)),
                          {"brand": f"Brand{i % 997}", "rating": 4.0, "review_count": int(rng.integers(0, 500))}))
    return Catalog(items, source=f"<synthetic {n}>")


def clustered_vectors(n: int, dim: int = 384, *, latent: int = 32, clusters: int = 1000, seed: int = 0,
                      space_seed: int = 0) -> np.ndarray:
    """Unit vectors shaped like sentence embeddings: clusters in a low-dimensional latent space
    (real embeddings have an intrinsic dimension of a few dozen) projected to ``dim`` plus a little
    noise. ``space_seed`` fixes the space (items and queries share it), ``seed`` the sample."""
    space = np.random.default_rng(space_seed)
    proj = space.standard_normal((latent, dim), dtype=np.float32) / np.sqrt(latent)
    centers = space.standard_normal((clusters, latent), dtype=np.float32)
    rng = np.random.default_rng(seed + 1000)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = centers[rng.integers(0, clusters, m)] + 0.5 * rng.standard_normal((m, latent), dtype=np.float32)
        block = z @ proj + 0.1 * rng.standard_normal((m, dim), dtype=np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


class CandidateEchoBackend:
    """A scripted LM that recommends the first two candidates it was offered and invents a third."""

    name = "scripted"
    supports_constraints = False
    context_window = 32768

    def count_tokens(self, messages) -> int:
        return sum(len(m["content"]) // 4 + 4 for m in messages)

    def stream(self, messages, options):
        titles = re.findall(r"\[\[(.+?)\]\]", messages[-1]["content"])[:2]
        yield "You could try " + " or ".join(f"[[{t}]]" for t in titles)
        yield ", or the **Imaginary Hover Board 3000**. Which sounds better?"


def cpu_ticks() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat's first line), None where there are none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        return [int(x) for x in fields[1:9]] if fields and fields[0] == "cpu" else None
    except (OSError, ValueError):
        return None


def steal_share(before: list[int] | None, after: list[int] | None) -> float | None:
    """Share of the machine's CPU time stolen by the hypervisor between two ``cpu_ticks``."""
    if not before or not after or len(before) < 8 or len(after) < 8:
        return None
    delta = [b - a for a, b in zip(before, after)]
    total = sum(delta)
    return delta[7] / total if total > 0 else None


def bench_overhead(args, sizes) -> dict[str, object]:
    """p50/p95 of a turn's latency with an instant LM, over scripted multi-turn conversations."""
    from .grounding import Grounder
    from .index import SentenceTransformerEmbedder, index_with_ann
    from .lexical import LexicalIndex
    from .matching import TitleMatcher
    from .prompts import PromptBuilder
    from .ranker import Ranker
    from .recommender import Recommender
    from .services import Services, settle_heap
    from .settings import Settings
    from .store import Store
    from .tracker import Tracker

    n = sizes["items"]
    t = time.perf_counter()
    catalog = synthetic_catalog(n)
    embedder = SentenceTransformerEmbedder()
    # Above index.ANN_THRESHOLD the grounder's phrase search uses the hnsw graph, cached as the app caches it.
    index = index_with_ann(clustered_vectors(n, embedder.dim), embedder, Path(args.cache_dir) / f"overhead-{n}.hnsw")
    matcher = TitleMatcher(catalog)
    prompts = PromptBuilder(catalog)
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as home:
        settings = Settings.load({"home": home, "model": "none", "temperature": 0.0}, env={})
        store = Store(settings.db_url)
        services = Services(settings, catalog, index, matcher, Tracker(catalog, matcher),
                            Ranker(catalog, index, LexicalIndex(catalog)),
                            Grounder(catalog, matcher, index, markers=prompts.constraint_markers), prompts, store,
                            CandidateEchoBackend())
        rec = Recommender(services)
        settle_heap()  # as app.py does once start-up is over
        latencies, cpu = [], []
        ticks = cpu_ticks()
        for turn in range(sizes["turns"] + 2):
            if turn % len(USER_TURNS) == 0:
                state = rec.new_state()
            child = CHILDREN[(turn // len(USER_TURNS)) % len(CHILDREN)]
            c, t = time.process_time(), time.perf_counter()
            result = rec.run_turn(state, f"{USER_TURNS[turn % len(USER_TURNS)]} (for {child})")
            # the whole call: the turn's own latency_ms stops before the turn is written to the store
            latencies.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
            if result.status != "ok":
                raise RuntimeError(f"benchmark turn failed: {result.error}")
        steal = steal_share(ticks, cpu_ticks())
        store.close()
    lat = np.array(latencies[2:])  # the first turns load lazy things (tokenizer, BM25 caches)
    p95 = float(np.percentile(lat, 95))
    # CPU time (all of this process's threads) per turn: what a turn costs when it has the cores to
    # itself; on a machine shared with other work, wall time also counts the waits for a core.
    return {"turn_overhead_ms_p95": round(p95, 1), "turn_overhead_ms_p50": round(float(np.median(lat)), 1),
            "turn_overhead_cpu_ms_p95": round(float(np.percentile(cpu[2:], 95)), 1),
            "turn_overhead_target_ms": 50, "turn_overhead_ratio": round(p95 / 50, 2),
            "overhead_items": n, "overhead_build_s": round(build_s, 1),
            **({"turn_overhead_steal_pct": round(100 * steal, 1)} if steal is not None else {})}


def bench_search(args, sizes) -> dict[str, object]:
    """ANN top-10 latency and recall@10 against exact search, at ``search_items`` vectors."""
    from .index import exact_search, index_with_ann

    n = sizes["search_items"]
    t = time.perf_counter()
    vectors = clustered_vectors(n, seed=1)
    queries = clustered_vectors(200, seed=2)  # same space and clusters, unseen points
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    index = index_with_ann(vectors, None, Path(args.cache_dir) / f"bench-{n}.hnsw", ann_threshold=min(n - 1, 200_000))
    build_s = time.perf_counter() - t
    sims = queries @ vectors.T
    top = np.argpartition(-sims, 9, axis=1)[:, :10]  # the exact top 10 (order does not matter for recall)
    truth = top
    ann_ms, exact_ms, hits = [], [], 0
    for i, q in enumerate(queries):
        t = time.perf_counter()
        found, _ = index.search(q, 10)
        ann_ms.append((time.perf_counter() - t) * 1000)
        hits += len(set(found.tolist()) & set(truth[i].tolist()))
        if i < 30:
            t = time.perf_counter()
            exact_search(vectors, q, 10)
            exact_ms.append((time.perf_counter() - t) * 1000)
    p50 = float(np.median(ann_ms))
    return {"search_ms_p50": round(p50, 3), "search_recall": round(hits / (10 * len(queries)), 4),
            "search_exact_ms_p50": round(float(np.median(exact_ms)), 2),
            "search_speedup": round(float(np.median(exact_ms)) / p50, 1), "search_items": n,
            "search_ann": index.approximate, "search_index_s": round(build_s, 1), "search_data_s": round(gen_s, 1)}


STARTUP_CODE = """
import sys
from chatrec.services import build_services
from chatrec.settings import Settings
services = build_services(Settings.load({"home": sys.argv[1], "model": "none"}, env={}), backend=None)
services.store.close()
"""


def bench_startup(args, sizes) -> dict[str, object]:
    """Wall time of a fresh process building every service, first with an empty cache, then warm."""
    from .settings import PROJECT_ROOT

    with tempfile.TemporaryDirectory() as home:
        times = []
        for _ in range(2):
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", STARTUP_CODE, home], capture_output=True, text=True,
                                  cwd=PROJECT_ROOT)
            if done.returncode != 0:
                raise RuntimeError(f"app start-up failed:\n{done.stderr[-2000:]}")
            times.append(time.perf_counter() - t)
    return {"startup_s_cold": round(times[0], 2), "startup_s_warm": round(times[1], 2),
            "startup_ratio": round(times[1] / times[0], 2)}
