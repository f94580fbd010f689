"""Per-step overhead of ``SpanLogitsProcessor`` on a 150k-token vocabulary, batch 1 and 2.

No tokenizer files are downloaded: a synthetic byte-level vocabulary of the size of Qwen2's
(~151k) is built from the 256 single bytes, catalog-title pieces with and without a leading space,
and merges across the markers (``" [["``, ``"[[T"``, ``"]]."``). A random "model" (random scores)
decodes greedily for many steps with open-marker tokens boosted so about half the steps are inside
spans; the processor's time per call is measured separately inside and outside spans.

    python benchmarks/constrained.py [--vocab 151000] [--steps 400] [--titles 8]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from chatrec.backends.base import SpanConstraint  # noqa: E402
from chatrec.catalog import load_catalog  # noqa: E402
from chatrec.constrained import SpanLogitsProcessor, token_table  # noqa: E402


class SyntheticTokenizer:
    """A stand-in tokenizer: literal UTF-8 pieces (no byte-level alphabet), id 0 is end-of-sequence."""

    eos_token_id = 0
    all_special_ids = [0]

    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    def __len__(self) -> int:
        return len(self.pieces)

    def convert_ids_to_tokens(self, ids):
        return [self.pieces[i] for i in ids]


def synthetic_vocab(size: int, titles: list[str], rng: random.Random) -> list[str]:
    pieces = ["<eos>"] + [chr(b) for b in range(32, 127)] + ["[[", "]]", " [[", "]].", "]],", "]]\n", "[[T"]
    words = sorted({w for t in titles for w in t.split()})
    seen = set(pieces)
    while len(pieces) < size:
        w = rng.choice(words)
        i = rng.randrange(len(w))
        piece = (" " if rng.random() < 0.5 else "") + w[i:i + rng.randint(1, 12)]
        piece += str(rng.randint(0, 10**6)) if piece in seen else ""
        if piece not in seen:
            seen.add(piece)
            pieces.append(piece)
    return pieces


def measure(vocab: int, steps: int, n_titles: int, batch: int) -> dict[str, float]:
    rng = random.Random(0)
    titles = [i.title for i in load_catalog(ROOT / "catalog" / "toys.jsonl").items]
    tok = SyntheticTokenizer(synthetic_vocab(vocab, titles, rng))
    t0 = time.perf_counter()
    table = token_table(tok)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    proc = SpanLogitsProcessor(tok, SpanConstraint(rng.sample(titles, n_titles)), prompt_length=1)
    init_s = time.perf_counter() - t0
    opening = torch.tensor([i for i, b in enumerate(table.token_bytes) if b.endswith(b"[[")])
    ids = torch.zeros(batch, 1, dtype=torch.long)
    inside, outside, first, cpu = [], [], None, []
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        scores = torch.randn(batch, vocab, generator=gen)
        scores[:, opening] += 6.0  # open spans often
        in_span = isinstance(proc.state_of(ids[0, 1:].tolist()), bytes)
        t0, c0 = time.perf_counter(), time.thread_time()
        out = proc(ids, scores)
        cpu.append(time.thread_time() - c0)
        if first is None:  # the first call computes the blocked set for outside spans (cached after)
            first = time.perf_counter() - t0
        else:
            (inside if in_span else outside).append(time.perf_counter() - t0)
        ids = torch.cat([ids, out.argmax(-1, keepdim=True)], dim=-1)
    text = b"".join(table.token_bytes[i] for i in ids[0, 1:].tolist()).decode("utf-8", "replace")
    return {"vocab": vocab, "batch": batch, "titles": n_titles, "steps": steps, "table_build_s": round(build_s, 2),
            "processor_init_s": round(init_s, 3), "first_step_us": _us([first]), "spans_completed": text.count("]]"),
            "us_per_step_inside_p50": _us(inside, 0.5), "us_per_step_outside_p50": _us(outside, 0.5),
            "us_per_step_inside_mean": _us(inside), "us_per_step_inside_p95": _us(inside, 0.95),
            "us_per_step_outside_mean": _us(outside), "us_per_step_outside_p95": _us(outside, 0.95),
            "steps_inside": len(inside), "cpu_us_per_step_mean": _us(cpu[1:]), "cpu_us_per_step_p95": _us(cpu[1:], 0.95)}


def _us(times: list[float], q: float | None = None) -> float:
    if not times:
        return 0.0
    times = sorted(times)
    value = times[int(q * len(times))] if q else sum(times) / len(times)
    return round(value * 1e6, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=151_000)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--titles", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for batch in (1, 2):
        print(json.dumps(measure(args.vocab, args.steps, args.titles, batch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
