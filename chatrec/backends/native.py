"""The int8 decoding kernel in ``native.c``: built with the system C compiler on first use, loaded
with ctypes, used by the local backend on x86 CPUs with AVX512-VNNI or with AVX2 + FMA
(``quantize="native"``, chosen by ``auto`` when available; ``vnni`` is its older name), and by
``index.py`` for a large catalog's float16 scores (``f16_scores``).

Why a kernel of our own: on a 2-core CPU torch's int8 paths read the weights of a decoding step at
about a third of the memory's speed (``_weight_int8pack_mm`` ~10 GB/s, FBGEMM ~14 GB/s against
~35 GB/s measured); this one streams them near it. No kept library offers that inside a
transformers model on CPU. One C source holds both instruction sets; the build takes the best one
the CPU has (``CHATREC_NATIVE_ISA=avx2`` asks for the AVX2 one on an AVX512 CPU, to compare them).
Everything degrades to torch's kernels: no compiler, neither instruction set, a failed build or
``CHATREC_NATIVE=0`` -> ``available()`` is False with the reason in ``why_not()``.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native.c")
COMMON_FLAGS = ["-O3", "-fopenmp", "-shared", "-fPIC"]
# instruction set -> (the /proc/cpuinfo flags it needs, the compiler flags that select it), best first
ISAS: dict[str, tuple[frozenset[str], list[str]]] = {
    "avx512vnni": (frozenset({"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "f16c"}),
                   ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mf16c"]),
    "avx2": (frozenset({"avx2", "fma", "f16c"}), ["-mavx2", "-mfma", "-mf16c"]),
}
BLOCK = 32  # activation values per quantisation scale


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chatrec" / "native"


def cpu_has_bf16() -> bool:
    """Whether torch multiplies bfloat16 on this CPU in hardware (AVX512-BF16 or AMX, via oneDNN);
    elsewhere bfloat16 is emulated and slower than float32."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cpu_flags() -> set[str]:
    try:
        return set(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        return set()


def pick_isa() -> tuple[str | None, str]:
    """The instruction set to build for (``CHATREC_NATIVE_ISA`` or the best the CPU has), or None and why."""
    flags = _cpu_flags()
    wanted = os.environ.get("CHATREC_NATIVE_ISA", "").strip().lower()
    if wanted:
        if wanted not in ISAS:
            return None, f"CHATREC_NATIVE_ISA={wanted!r} is not one of {', '.join(ISAS)}"
        if not ISAS[wanted][0] <= flags:
            return None, f"CHATREC_NATIVE_ISA={wanted}: this CPU lacks {', '.join(sorted(ISAS[wanted][0] - flags))}"
        return wanted, ""
    for name, (needs, _) in ISAS.items():
        if needs <= flags:
            return name, ""
    return None, "this CPU has neither AVX512-VNNI nor AVX2 + FMA + F16C"


@lru_cache(maxsize=1)
def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get("CHATREC_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None, "switched off by CHATREC_NATIVE=0"
    isa, reason = pick_isa()
    if isa is None:
        return None, reason
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler or not shutil.which(compiler):
        return None, "no C compiler found (install gcc, or set CC)"
    flags = COMMON_FLAGS + ISAS[isa][1]
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    target = cache_dir() / f"native-{isa}-{digest}.so"
    if not target.exists():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                built = Path(tmp) / target.name
                run = subprocess.run([compiler, *flags, str(SOURCE), "-o", str(built), "-lm"],
                                     capture_output=True, text=True, timeout=120)
                if run.returncode != 0:
                    return None, f"building {SOURCE.name} failed: {run.stderr.strip()[-300:]}"
                os.replace(built, target)  # atomic: a parallel build never loads half a file
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"building {SOURCE.name} failed: {exc}"
    try:
        lib = ctypes.CDLL(str(target))
    except OSError as exc:
        return None, f"loading {target} failed: {exc}"
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.q8_matmul.argtypes = [p, p, p, i, i, i, p, i, p, i, i]
    lib.q8_matmul.restype = i
    lib.layer_attn_in.argtypes = [p, p, p, p, p, p, p, p]
    lib.layer_attn_in.restype = i
    lib.layer_attn_out.argtypes = [p, p, p, p, p, p, i, i]
    lib.layer_attn_out.restype = i
    lib.q8_isa.restype = ctypes.c_char_p
    lib.f16_scores.argtypes = [p, p, p, ctypes.c_long, i]
    lib.f16_scores.restype = None
    lib.stream_read.argtypes = [p, ctypes.c_long, i]
    lib.stream_read.restype = ctypes.c_float
    return lib, ""


def available() -> bool:
    return _load()[0] is not None


def why_not() -> str:
    return _load()[1]


def isa() -> str:
    """The instruction set of the loaded kernel ("avx512vnni" or "avx2"), "" when there is none."""
    lib = _load()[0]
    return lib.q8_isa().decode() if lib is not None else ""


def library() -> ctypes.CDLL:
    lib, reason = _load()
    if lib is None:
        raise RuntimeError(f"native int8 kernel unavailable: {reason}")
    return lib


def f16_scores(matrix, query, out=None):
    """``matrix @ query`` for a C-contiguous float16 numpy matrix (n, d) and a float32 query (d,),
    accumulated in float32 on the calling thread (the GIL released): the exact scores of a large
    catalog's float16 vectors (``index.py``). ``out``: a contiguous float32 array of n to write into."""
    import numpy as np

    lib = library()
    n, d = matrix.shape
    if matrix.dtype != np.float16 or not matrix.flags.c_contiguous:
        raise ValueError("f16_scores needs a C-contiguous float16 matrix")
    q = np.ascontiguousarray(query, dtype=np.float32)
    if q.shape != (d,):
        raise ValueError(f"query of shape {q.shape} for vectors of dimension {d}")
    if out is None:
        out = np.empty(n, dtype=np.float32)
    elif out.shape != (n,) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous float32 array of {n}")
    lib.f16_scores(matrix.ctypes.data, q.ctypes.data, out.ctypes.data, n, d)
    return out


def stream_read(buffer, threads: int) -> float:
    """Sum a contiguous float32 torch tensor on ``threads`` threads, four streams each, as the decoding
    kernels read their weights: what the bench times to probe the memory's read bandwidth."""
    return library().stream_read(buffer.data_ptr(), buffer.numel(), threads)


class Q8Matrix:
    """One linear layer's int8 weights (per-row scales) packed for ``q8_matmul``."""

    def __init__(self, torch, weight_int8, scales, bias=None):
        lib, reason = _load()
        if lib is None:
            raise RuntimeError(f"native int8 kernel unavailable: {reason}")
        self.torch, self.lib = torch, lib
        n, k = weight_int8.shape
        group, sub, offset = lib.q8_group_rows(), lib.q8_sub_rows(), lib.q8_weight_offset()  # this build's layout
        self.out_features, self.in_features = n, k
        self.n_pad, self.k_pad = -(-n // group) * group, -(-k // BLOCK) * BLOCK
        w = torch.zeros(self.n_pad, self.k_pad, dtype=torch.int16)
        w[:n, :k] = weight_int8.to(torch.int16)
        # VPDPBUSD (AVX512-VNNI) multiplies unsigned weights by signed activations: stored +128;
        # the AVX2 kernel takes them signed, in [-127, 127] as quantised
        w = (w + offset).to(torch.uint8 if offset else torch.int8)
        # (group, sub-group, row, block, quad, byte) -> (group, block, quad, sub-group, row, byte): native.c's layout
        w = w.view(self.n_pad // group, group // sub, sub, self.k_pad // BLOCK, BLOCK // 4, 4)
        self.packed = w.permute(0, 3, 4, 1, 2, 5).contiguous()
        self.scales = torch.zeros(self.n_pad, dtype=torch.float32)
        self.scales[:n] = scales.float()
        self.bias = None
        if bias is not None:
            self.bias = torch.zeros(self.n_pad, dtype=torch.float32)
            self.bias[:n] = bias.detach().float()
        # the call's constant arguments, resolved once (a decoding step makes ~170 of these calls)
        self._head = (self.packed.data_ptr(), self.scales.data_ptr(),
                      None if self.bias is None else self.bias.data_ptr(), self.n_pad, self.k_pad)

    @property
    def nbytes(self) -> int:
        return self.packed.numel() + 4 * self.scales.numel() + (0 if self.bias is None else 4 * self.bias.numel())

    def __call__(self, rows):
        """``rows``: (M, in_features) float32 or bfloat16 -> (M, out_features), same dtype, bias included."""
        torch = self.torch
        dtype = rows.dtype
        if dtype is not torch.bfloat16 and dtype is not torch.float32:
            dtype = torch.float32
            rows = rows.to(dtype)
        x = rows.contiguous()
        if self.k_pad != self.in_features:
            x = torch.nn.functional.pad(x, (0, self.k_pad - self.in_features))
        y = torch.empty(x.shape[0], self.n_pad, dtype=dtype)
        bf16 = int(dtype is torch.bfloat16)
        status = self.lib.q8_matmul(*self._head, x.shape[0], x.data_ptr(), bf16, y.data_ptr(), bf16,
                                    torch.get_num_threads())
        if status != 0:
            raise MemoryError("q8_matmul could not allocate its scratch buffers")
        return y if self.n_pad == self.out_features else y[:, :self.out_features]
