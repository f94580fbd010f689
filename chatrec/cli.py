"""``python -m chatrec COMMAND``: the command-line entry point.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
this file only registers them and turns ``ChatrecError`` into a one-line message and exit code 2.
Shared flags (model, catalog, db, ...) are defined once in :func:`add_common` and turned into a
``Settings`` by :func:`settings_from_args`.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from .errors import ChatrecError
from .settings import COLLAB_METHODS, Settings

COMMANDS = {
    "chat": ("chatrec.chat_cli", "chat in the terminal, one turn per MESSAGE"),
    "eval": ("chatrec.evaluate", "rank catalog items for recorded dialogues and report Recall@K"),
    "learn": ("chatrec.learned", "learn ranking priors from recorded dialogues into a file (--priors)"),
    "simulate": ("chatrec.simulate", "simulated shoppers with hidden targets; report success@k"),
    "bench": ("chatrec.bench", "measure decode speed, time to first token, overheads, search"),
    "export": ("chatrec.export", "export conversations, recommendations and feedback (CSV/Parquet)"),
    "retention": ("chatrec.retention", "delete conversations older than N days, with their feedback"),
    "tiny-model": ("chatrec.tinymodel", "build a tiny random chat model for offline tests and demos"),
}


def add_common(parser: argparse.ArgumentParser) -> None:
    """Flags every command that builds the pipeline accepts. Unset flags fall back to CHATREC_* env."""
    g = parser.add_argument_group("pipeline")
    g.add_argument("--model", help="model id or path, 'openai:NAME', 'fake' or 'none' [CHATREC_MODEL]")
    g.add_argument("--base-url", dest="base_url", help="OpenAI-compatible server URL [CHATREC_BASE_URL]")
    g.add_argument("--catalog", help="catalog file, .jsonl or .csv [CHATREC_CATALOG]")
    g.add_argument("--skip-bad-rows", dest="skip_bad_rows", action="store_true", default=None,
                   help="drop malformed catalog rows instead of failing")
    g.add_argument("--interactions", help="optional interactions CSV for collaborative signals")
    g.add_argument("--collab", choices=COLLAB_METHODS,
                   help="item-item weights from the interactions: auto = EASE up to 6,000 items with "
                        "interactions, cosine past it [CHATREC_COLLAB]")
    g.add_argument("--embedder", help="sentence-transformers model id or path [CHATREC_EMBEDDER]")
    g.add_argument("--query-precision", dest="query_precision", choices=["auto", "float32", "bfloat16"],
                   help="matrix products of the per-turn query embedding: auto = bfloat16 on CPUs with "
                        "bfloat16 units, else float32 [CHATREC_QUERY_PRECISION]")
    g.add_argument("--db", help="SQLAlchemy database URL [CHATREC_DB]")
    g.add_argument("--home", help="folder for the cache and the default SQLite database [CHATREC_HOME]")
    g.add_argument("--device", choices=["cpu", "cuda", "auto"], help="where the LM runs [CHATREC_DEVICE]")
    g.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"])
    g.add_argument("--quantize", choices=["auto", "none", "int8", "native", "vnni", "w8a8"],
                   help="local model weights on a CPU: auto (int8 for 100M+ models, decoded by the native "
                        "kernel where the CPU has AVX512-VNNI or AVX2), none, int8 (torch's kernels), native (the "
                        "native kernel: 8-bit activations per block of 32; vnni is its older name), or w8a8 (FBGEMM, 8-bit activations per "
                        "token: may cost quality) [CHATREC_QUANTIZE]")
    g.add_argument("--max-new-tokens", dest="max_new_tokens", type=int)
    g.add_argument("--temperature", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--no-constrain", dest="constrain", action="store_false", default=None,
                   help="let the LM write item names freely (post-hoc grounding only)")
    g.add_argument("--prefill", action="store_true", default=None,
                   help="pre-fill the reply from prompts/reply_prefix.j2 also when constraints are off (always with them) [CHATREC_PREFILL]")
    g.add_argument("--privacy", action="store_true", default=None, help="store only hashes of conversation text")
    g.add_argument("--priors", help="learned-priors files (python -m chatrec learn), comma-separated; 'auto' "
                   "(default): the files in catalog/learned/ that cover the catalog; 'none' [CHATREC_PRIORS]")
    g.add_argument("--no-learning", dest="learn_from_logs", action="store_false", default=None,
                   help="do not learn ranking priors from liked suggestions in the log [CHATREC_LEARN_FROM_LOGS=0]")


def settings_from_args(args: argparse.Namespace) -> Settings:
    names = {f for f in Settings.__dataclass_fields__}
    return Settings.load({k: v for k, v in vars(args).items() if k in names})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chatrec", description="chatrec: a grounded conversational recommender")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            p.set_defaults(_missing=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "_missing", False):
        parser.error(f"command {args.command!r} is not available in this build")
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except ChatrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
