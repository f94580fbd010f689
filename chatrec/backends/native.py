"""The int8 decoding kernel in ``native.c``: built with the system C compiler on first use, loaded
with ctypes, used by the local backend on CPUs with AVX512-VNNI (``quantize="vnni"``, chosen by
``auto`` when available).

Why a kernel of our own: on a 2-core CPU torch's int8 paths read the weights of a decoding step at
about a third of the memory's speed (``_weight_int8pack_mm`` ~10 GB/s, FBGEMM ~14 GB/s against
~35 GB/s measured); this one streams them near it. No kept library offers that inside a
transformers model on CPU. Everything degrades to torch's kernels: no compiler, no VNNI, a failed
build or ``CHATREC_NATIVE=0`` -> ``available()`` is False with the reason in ``why_not()``.
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
FLAGS = ["-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-fopenmp", "-shared", "-fPIC"]
GROUP = 16  # rows per packed group (one 512-bit register of int32 sums)
BLOCK = 32  # activation values per quantisation scale


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chatrec" / "native"


def cpu_has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"} <= set(flags)


@lru_cache(maxsize=1)
def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get("CHATREC_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None, "switched off by CHATREC_NATIVE=0"
    if not cpu_has_vnni():
        return None, "this CPU has no AVX512-VNNI"
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler or not shutil.which(compiler):
        return None, "no C compiler found (install gcc, or set CC)"
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
    target = cache_dir() / f"native-{digest}.so"
    if not target.exists():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                built = Path(tmp) / target.name
                run = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built), "-lm"],
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
    lib.layer_attn_out.argtypes = [p, p, p, p, p, p, i]
    lib.layer_attn_out.restype = i
    return lib, ""


def available() -> bool:
    return _load()[0] is not None


def why_not() -> str:
    return _load()[1]


def library() -> ctypes.CDLL:
    lib, reason = _load()
    if lib is None:
        raise RuntimeError(f"native int8 kernel unavailable: {reason}")
    return lib


class Q8Matrix:
    """One linear layer's int8 weights (per-row scales) packed for ``q8_matmul``."""

    def __init__(self, torch, weight_int8, scales, bias=None):
        lib, reason = _load()
        if lib is None:
            raise RuntimeError(f"native int8 kernel unavailable: {reason}")
        self.torch, self.lib = torch, lib
        n, k = weight_int8.shape
        self.out_features, self.in_features = n, k
        self.n_pad, self.k_pad = -(-n // GROUP) * GROUP, -(-k // BLOCK) * BLOCK
        w = torch.zeros(self.n_pad, self.k_pad, dtype=torch.int16)
        w[:n, :k] = weight_int8.to(torch.int16)
        w = (w + 128).to(torch.uint8)  # VPDPBUSD multiplies unsigned weights by signed activations
        self.packed = w.view(self.n_pad // GROUP, GROUP, self.k_pad // 4, 4).permute(0, 2, 1, 3).contiguous()
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
