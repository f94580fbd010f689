"""Shared fixtures: a deterministic fake embedder, small catalogs, the tiny real model, built services.

Expensive things (the tiny model, services over the demo catalog with the real embedder) are built
once per test session. Every file a test writes goes under pytest's tmp paths.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real headless chromium (needs /usr/bin/chromium)")
    config.addinivalue_line("markers", "slow: takes more than ~20 s")


class HashEmbedder:
    """Bag-of-words hashing into a fixed space: deterministic, instant, and texts sharing words are similar."""

    name = "hash-embedder"

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.calls = 0

    def encode(self, texts, progress: bool = False) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


SMALL_CATALOG = [
    {"id": "t1", "title": "Hornby Express Train Set", "description": "Electric model railway train set with track.",
     "category": "Trains", "price": 79.99, "attributes": {"brand": "Hornby", "rating": 4.6, "review_count": 120}},
    {"id": "t2", "title": "Wooden Train Track Starter", "description": "Wooden railway track and engine for toddlers.",
     "category": "Trains", "price": 19.5, "attributes": {"brand": "BigJigs", "rating": 4.2, "review_count": 30}},
    {"id": "t3", "title": "Thomas Tank Engine", "description": "Push-along train engine toy.",
     "category": "Trains", "price": 9.99, "attributes": {"brand": "Fisher-Price", "rating": 4.8, "review_count": 410}},
    {"id": "l1", "title": "LEGO City Police Station", "description": "Building set with police car and minifigures.",
     "category": "Construction", "price": 89.0, "attributes": {"brand": "LEGO", "rating": 4.7, "review_count": 300}},
    {"id": "l2", "title": "Mega Bloks Farm Building Set", "description": "Large building blocks farm for toddlers.",
     "category": "Construction", "price": 24.99, "attributes": {"brand": "Mega Bloks", "rating": 4.1, "review_count": 12}},
    {"id": "d1", "title": "Barbie Dreamhouse Doll", "description": "Fashion doll with house and accessories.",
     "category": "Dolls", "price": 149.0, "attributes": {"brand": "Barbie", "rating": 4.5, "review_count": 95}},
    {"id": "d2", "title": "Rag Doll Emily", "description": "Soft cloth rag doll, handmade.",
     "category": "Dolls", "price": 14.0, "attributes": {"brand": "Jellycat", "rating": 4.9, "review_count": 60}},
    {"id": "p1", "title": "Ravensburger 1000 Piece Jigsaw Puzzle", "description": "Landscape jigsaw puzzle for adults.",
     "category": "Puzzles", "price": 12.99, "attributes": {"brand": "Ravensburger", "rating": 4.4, "review_count": 75}},
    {"id": "r1", "title": "Remote Control Racing Car", "description": "Fast RC car with remote control, rechargeable battery.",
     "category": "Remote Control", "price": 29.99, "attributes": {"brand": "Carrera", "rating": 4.0, "review_count": 40}},
    {"id": "r2", "title": "Mini Drone Quadcopter", "description": "Small drone with remote control for beginners.",
     "category": "Remote Control", "price": 34.0, "attributes": {"brand": "Hubsan", "rating": 3.9, "review_count": 22}},
]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def small_catalog_path(tmp_path) -> Path:
    return write_jsonl(tmp_path / "catalog.jsonl", SMALL_CATALOG)


@pytest.fixture
def make_services(tmp_path):
    """Factory: services over a catalog with the hash embedder, a tmp home/DB and the given backend."""
    from chatrec.services import build_services
    from chatrec.settings import Settings

    built = []

    def make(catalog_path: Path, backend=None, **overrides):
        settings = Settings.load({"catalog": catalog_path, "home": tmp_path / "home", "model": "none",
                                  "temperature": 0.0, **overrides}, env={})
        services = build_services(settings, backend=backend, embedder=HashEmbedder())
        built.append(services)
        return services

    yield make
    for services in built:
        services.store.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama chat model + trained tokenizer, saved once per session."""
    from chatrec.tinymodel import build_tiny_model

    titles = [row["title"] for row in SMALL_CATALOG]
    demo = ROOT / "catalog" / "toys.jsonl"
    titles += [json.loads(line)["title"] for line in demo.read_text(encoding="utf-8").splitlines() if line.strip()]
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), corpus=titles)


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """One home (embedding cache) for every test that uses the real embedder on the demo catalog."""
    return tmp_path_factory.mktemp("demo-home")
