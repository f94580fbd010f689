"""``python -m chatrec bench``: measure what makes chatrec feel fast, each figure against a baseline.

Parts (``--only``, comma-separated; all by default):
- decode:   decode speed of the local transformers backend on a model of a real shape (Qwen2.5-0.5B's
            config, random weights, built in code: nothing is downloaded) against the memory-bandwidth
            limit (bandwidth measured in this run / weight bytes read per token, the backend's own
            int8 bytes when it quantises), and plain ``model.generate`` on the same model in the same
            dtype; best 8-token window and sustained rate (see ``decode_rate``);
- ttft:     time to first token for a follow-up turn after ~2,000 tokens of history, from the
            conversation's cached prefix and from scratch (and for a first turn);
- overhead: everything in a turn except the LM (state, retrieval, prompt, grounding, logging) at
            100,000 synthetic items, with the real query embedder and a scripted LM;
- search:   top-10 item search at 1,000,000 synthetic clustered vectors, ANN vs exact (recall@10);
- startup:  app start (imports + services) on the demo catalog with an empty and a warm cache.
``--quick`` shrinks every size for a smoke run; ``--markdown`` prints the README table and
``--render REPORT.json`` re-prints a saved ``--json`` report. Random weights mean only speed is
meaningful here. The hnsw graphs for the synthetic catalogs are cached in ``--cache-dir``: the first
run builds them (minutes at 1M items on 2 cores), later runs load them.
What it leaves out: quality (see ``eval``), GPU-specific kernels, concurrency between sessions.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTS = ("decode", "ttft", "overhead", "search", "startup")
QWEN_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True,
                max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6)
FULL = dict(layers=24, decode_tokens=48, history_tokens=2000, items=100_000, search_items=1_000_000, turns=40)
QUICK = dict(layers=4, decode_tokens=16, history_tokens=400, items=10_000, search_items=50_000, turns=10)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--markdown", action="store_true", help="print the README's markdown table")
    parser.add_argument("--render", type=Path, metavar="REPORT.json",
                        help="measure nothing: print the table (or --markdown) of a saved --json report")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {','.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in about a minute")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--quantize", default="auto", choices=["auto", "none", "int8", "native", "vnni", "w8a8"],
                        help="the backend's weight format (auto: the backend's own choice); "
                             "the naive baseline is never quantised")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    for name in FULL:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, dest=name, help=f"default {FULL[name]:,}")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "chatrec-bench",
                        help="where the synthetic search index's vectors and graph are kept between runs")


def run(args: argparse.Namespace) -> int:
    from .errors import ConfigError

    if args.render:
        report = json.loads(args.render.read_text(encoding="utf-8"))
        print(markdown(report) if args.markdown else _table(report))
        return 0
    asked = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = sorted(asked - set(PARTS))
    if unknown:
        raise ConfigError(f"--only: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    parts = [p for p in PARTS if p in asked]  # decode first: its baseline needs the unquantised weights
    sizes = {k: getattr(args, k) or (QUICK if args.quick else FULL)[k] for k in FULL}
    report: dict[str, object] = {"device": _device_info(args), "sizes": sizes, "quick": bool(args.quick)}
    started = time.perf_counter()
    for part in parts:
        t, cpu = time.perf_counter(), cpu_ticks()
        _say(args, f"[bench] {part}...")
        report.update(PART_FUNCS[part](args, sizes))
        report[f"{part}_bench_s"] = round(time.perf_counter() - t, 1)
        steal = steal_share(cpu, cpu_ticks())
        if steal is not None:  # a VM's CPU time taken by its hypervisor: the part ran on less machine
            report[f"{part}_steal_pct"] = round(100 * steal, 1)
    report["total_s"] = round(time.perf_counter() - started, 1)
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1) if args.json else markdown(report) if args.markdown else _table(report))
    return 0


def _say(args, msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _device_info(args) -> dict[str, object]:
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    info = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": _cpu_name(), "cores": os.cpu_count()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- decode -----------------------------------------------------------------------------------------
def build_qwen_shape(dtype, layers: int = 24, device: str = "cpu", seed: int = 0):
    """Qwen2.5-0.5B-Instruct's architecture with random weights (no download, ~10 s on a CPU)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**{**QWEN_05B, "num_hidden_layers": layers}, bos_token_id=0, eos_token_id=2, pad_token_id=0)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    model = model.to_empty(device=device).to(dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=gen)
    for buf_name, buf in model.named_buffers():  # to_empty left rotary frequencies uninitialised
        if "inv_freq" in buf_name:
            module = model.get_submodule(buf_name.rsplit(".", 1)[0])
            buf.copy_(module.original_inv_freq.to(buf.device))
    model.tie_weights()
    model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=2, pad_token_id=0)
    return model.eval()


def memory_bandwidth_gbs(device: str = "cpu", mbytes: int = 512) -> float:
    """Read bandwidth: best of 6 reads of a buffer far larger than the caches, by torch's sum and, on a
    CPU with the native library, by its four-streams-a-thread read (the decoding kernels' pattern:
    on some CPUs torch's sum reads a quarter slower, and the limit would then be set too low)."""
    import torch

    x = torch.ones(mbytes * 1024 * 1024 // 4, dtype=torch.float32, device=device)
    readers = [lambda: x.sum().item()]
    if device == "cpu":
        from .backends import native

        if native.available():
            readers.append(lambda: native.stream_read(x, torch.get_num_threads()))
    best = float("inf")
    for _ in range(6):
        for read in readers:
            t = time.perf_counter()
            read()
            best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best / 1e9


DECODE_WINDOW = 8  # tokens


class _StepClock:
    """A ``generate`` streamer that only notes when each token arrives (the first put is the prompt)."""

    def __init__(self):
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def decode_rate(model, n_tokens: int, prompt_len: int = 64, repeats: int = 2, between=None) -> tuple[float, float]:
    """(best, sustained) tokens/s of greedy ``generate`` after the prompt's first token.

    best: the fastest window of ``DECODE_WINDOW`` consecutive decoding steps over ``repeats`` runs;
    sustained: all steps of the fastest run. On an idle machine the two agree (decoding steps are
    regular); on a shared one, best estimates what the model does when it has the cores, the way the
    bandwidth probe (best of several short reads) estimates the limit. Both are reported.
    ``between()`` runs before each repeat (the bench probes the bandwidth there: the host's memory
    bandwidth drifts within a run, and a fast window must be set against the bandwidth of its time)."""
    import torch

    ids = torch.randint(3, model.config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(1))
    ids = ids.to(model.device)
    # Exactly n tokens without ``min_new_tokens``: that adds a logits processor which scans the whole
    # vocabulary every step (~2 ms a step on the 0.5B shape's 151,936 tokens), which the product's
    # generate never runs. With no end-of-sequence token (``eos_token_id=[]``; None would fall back to
    # the model's) the run cannot stop early instead.

    def steps(n: int) -> list[float]:
        clock = _StepClock()
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=0, eos_token_id=[],
                           streamer=clock)
        t = clock.times[1:]  # [0] is the prompt; [1] arrives after the prefill and the first token
        return [b - a for a, b in zip(t, t[1:])]

    steps(2)  # warm-up: allocator, kernels
    best_window, sustained = float("inf"), float("inf")
    w = min(DECODE_WINDOW, n_tokens - 1)
    for _ in range(repeats):
        if between is not None:
            between()
        dt = steps(n_tokens)
        best_window = min(best_window, min(sum(dt[i:i + w]) for i in range(len(dt) - w + 1)))
        sustained = min(sustained, sum(dt) / len(dt))
    return w / best_window, 1.0 / sustained


def _device(args) -> str:
    import torch

    return "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device


def _model(args, sizes):
    """The Qwen-shaped model in the backend's dtype, built once per run (decode and ttft share it)."""
    global _MODEL
    if _MODEL is None:
        import torch

        from .backends.local import _pick_dtype

        t = time.perf_counter()
        _MODEL = build_qwen_shape(_pick_dtype(torch, args.dtype, _device(args)), sizes["layers"], _device(args))
        _say(args, f"[bench] built the {sizes['layers']}-layer Qwen2.5-0.5B shape in {time.perf_counter() - t:.0f} s")
    return _MODEL


def _backend(args, sizes):
    """The product's backend around that model (it quantises the weights in place: built after the baseline)."""
    global _BACKEND
    if _BACKEND is None:
        from .backends.local import TransformersBackend

        _BACKEND = TransformersBackend.from_objects(_model(args, sizes), _tokenizer(), quantize=args.quantize)
    return _BACKEND


_MODEL = _BACKEND = None


def bench_decode(args, sizes) -> dict[str, object]:
    from .backends.local import weight_bytes_per_token

    device, n = _device(args), sizes["decode_tokens"]
    model = _model(args, sizes)
    dtype = next(model.parameters()).dtype
    naive_bytes = weight_bytes_per_token(model)
    # The baseline needs the unquantised weights (the backend quantises them in place).
    naive, naive_sustained = decode_rate(model, n) if _BACKEND is None else (float("nan"),) * 2
    _say(args, f"[bench] naive generate {dtype}: {naive:.2f} tok/s ({naive_sustained:.2f} sustained)")
    backend = _backend(args, sizes)
    probes: list[float] = []
    rate, sustained = decode_rate(backend.model, n, repeats=3,
                                  between=lambda: probes.append(memory_bandwidth_gbs(device)))
    probes.append(memory_bandwidth_gbs(device))
    bandwidth = max(probes)  # the best read around and between the decoding runs
    weight_bytes = weight_bytes_per_token(backend.model)
    limit = bandwidth * 1e9 / weight_bytes
    layers = "native layers" if backend.fused_layers else "transformers layers"
    _say(args, f"[bench] backend ({backend.quantize}, {layers}): {rate:.2f} tok/s, limit {limit:.2f} tok/s")
    return {"decode_tok_s": round(rate, 2), "decode_limit_tok_s": round(limit, 2),
            "decode_ratio": round(rate / limit, 3), "naive_decode_tok_s": round(naive, 2),
            "decode_sustained_tok_s": round(sustained, 2), "naive_decode_sustained_tok_s": round(naive_sustained, 2),
            "naive_decode_limit_tok_s": round(bandwidth * 1e9 / naive_bytes, 2),
            "naive_decode_ratio": round(naive / (bandwidth * 1e9 / naive_bytes), 3),
            "decode_sustained_ratio": round(sustained / limit, 3),
            "decode_speedup": round(rate / naive, 2), "bandwidth_gb_s": round(bandwidth, 1),
            "bandwidth_probes_gb_s": [round(b, 1) for b in probes],
            "weight_mb_per_token": round(weight_bytes / 2**20, 1),
            "naive_weight_mb_per_token": round(naive_bytes / 2**20, 1),
            "decode_dtype": str(dtype).replace("torch.", ""), "decode_quantize": backend.quantize,
            "decode_native_layers": backend.fused_layers,
            "decode_layers": sizes["layers"]}


_TOKENIZER = None


def _tokenizer():
    """A ChatML BPE tokenizer from ``tinymodel`` trained on the demo catalog's text with a 16k
    vocabulary, so prompts take about as many tokens as with a real one (~4.5 characters a token);
    all its ids are below the real vocabulary size."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from transformers import AutoTokenizer

        from .catalog import load_catalog
        from .settings import DEFAULT_CATALOG
        from .tinymodel import build_tiny_model

        corpus = [item.search_text() for item in load_catalog(DEFAULT_CATALOG)]
        with tempfile.TemporaryDirectory() as tmp:
            path = build_tiny_model(tmp, corpus=corpus, vocab_size=16000, hidden_size=16, num_layers=1)
            _TOKENIZER = AutoTokenizer.from_pretrained(str(path), model_max_length=10**6)
    return _TOKENIZER


# -- time to first token ----------------------------------------------------------------------------
def bench_ttft(args, sizes) -> dict[str, object]:
    from .backends.base import GenerationOptions
    from .catalog import load_catalog
    from .prompts import PromptBuilder
    from .settings import DEFAULT_CATALOG
    from .state import DialogueState, Message

    backend = _backend(args, sizes)
    catalog = load_catalog(DEFAULT_CATALOG)
    prompts, candidates = PromptBuilder(catalog), catalog.items[:8]
    prompts.context_after_history = backend.caches_prefix  # as services.build_services sets it
    one = GenerationOptions(max_new_tokens=1, temperature=0.0)

    def ttft(state: DialogueState) -> float:
        messages = prompts.build(state, candidates, backend.count_tokens, budget=10**6)
        t = time.perf_counter()
        for _ in backend.stream(messages, one):
            pass
        return time.perf_counter() - t

    state = DialogueState(messages=[Message("user", "a present for a 6 year old who loves trains")])
    ttft(state)  # warm-up
    backend.cache.clear()
    first = ttft(state)
    history = _history(backend, prompts, sizes["history_tokens"])
    before = DialogueState(messages=history + [Message("user", "does it come with batteries?")])
    after = DialogueState(messages=before.messages + [Message("assistant", "Yes, [[" + candidates[0].title + "]] "
                                                                "includes batteries. Anything else?"),
                                                      Message("user", "something cheaper, under £20?")])
    followup = cold = float("inf")
    for _ in range(3):  # best of three of each: one slow sample on a shared machine must not decide the ratio
        backend.cache.clear()
        ttft(before)  # the previous turn: leaves the conversation's KV cache behind
        reused = backend.cache.reused_tokens
        followup = min(followup, ttft(after))
        reused = backend.cache.reused_tokens - reused
        backend.cache.clear()
        cold = min(cold, ttft(after))
    n_prompt = backend.count_tokens(prompts.build(after, candidates, backend.count_tokens, budget=10**6))
    return {"ttft_first_turn_s": round(first, 3), "ttft_cold_s": round(cold, 3), "ttft_followup_s": round(followup, 3),
            "ttft_ratio": round(followup / cold, 3), "ttft_prompt_tokens": n_prompt, "ttft_reused_tokens": reused}


def _history(backend, prompts, target_tokens: int):
    from .state import Message

    lines = ["I am looking for a birthday present for my nephew, he is seven and loves building things.",
             "Here are some ideas: a construction set, a marble run, or a model kit. Which sounds best?",
             "He already has a lot of Lego. Maybe something with science, or a remote control car?",
             "A beginner electronics kit or a rechargeable racing car would suit him; both are under £30."]
    history: list[Message] = []
    while backend.count_tokens([m.to_dict() for m in history] or [{"role": "user", "content": ""}]) < target_tokens:
        history.append(Message("user" if len(history) % 2 == 0 else "assistant", lines[len(history) % 4]))
    return history if history[-1].role == "assistant" else history + [Message("assistant", lines[1])]


# (figure, baseline, ratio, target): the rows of the printed table, in the README's order.
ROWS = [("decode_tok_s", "decode_limit_tok_s", "decode_ratio", ">= 0.70"),
        ("naive_decode_tok_s", "naive_decode_limit_tok_s", "naive_decode_ratio", "baseline"),
        ("ttft_followup_s", "ttft_cold_s", "ttft_ratio", "<= 0.30"),
        ("turn_overhead_ms_p95", "turn_overhead_target_ms", "turn_overhead_ratio", "<= 1 (50 ms)"),
        ("search_ms_p50", "search_exact_ms_p50", "search_recall", "<= 5 ms, recall >= 0.95"),
        ("startup_s_warm", "startup_s_cold", "startup_ratio", "")]


def _table(report: dict[str, object]) -> str:
    out = [f"device: {report['device']}"]
    for figure, baseline, ratio, target in ROWS:
        if figure in report:
            out.append(f"{figure:>22} = {report[figure]!s:<10} baseline {baseline} = {report.get(baseline)!s:<10} "
                       f"{ratio} = {report.get(ratio)!s:<8} {('target ' + target) if target else ''}")
    shown = {k for row in ROWS for k in row[:3]} | {"device"}
    out += [f"{k:>22} = {v}" for k, v in report.items() if k not in shown]
    return "\n".join(out)


def markdown(report: dict[str, object]) -> str:
    """The README table: one row per figure with its baseline, ratio and target."""
    lines = ["| figure | value | baseline | value | ratio | value | target |", "|---|---|---|---|---|---|---|"]
    for figure, baseline, ratio, target in ROWS:
        if figure in report:
            lines.append(f"| `{figure}` | {report[figure]} | `{baseline}` | {report.get(baseline, '–')} | "
                         f"`{ratio}` | {report.get(ratio, '–')} | {target} |")
    d = report.get("device", {})
    lines.append("")
    lines.append(f"Device: {d.get('device')} ({d.get('cpu')}, {d.get('cores')} cores, {d.get('threads')} torch "
                 f"threads, torch {d.get('torch')}{', ' + d['gpu'] if d.get('gpu') else ''}); "
                 f"load average at the end {report.get('load_average')}; total {report.get('total_s')} s.")
    stolen = [f"{part} {report[part + '_steal_pct']}%" for part in PARTS if f"{part}_steal_pct" in report]
    if stolen:  # a VM whose hypervisor ran something else on these cores
        lines.append(f"CPU time taken by the hypervisor (steal): {', '.join(stolen)}.")
    return "\n".join(lines)


from .bench_pipeline import bench_overhead, bench_search, bench_startup, cpu_ticks, steal_share  # noqa: E402

PART_FUNCS = {"decode": bench_decode, "ttft": bench_ttft, "overhead": bench_overhead,
              "search": bench_search, "startup": bench_startup}
