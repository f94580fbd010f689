"""Local Hugging Face transformers backend: any causal LM id or path, streamed token by token.

Input is built with the tokenizer's own chat template (``add_generation_prompt=True``); only the
new tokens are decoded; streaming uses ``TextIteratorStreamer`` with generation in a worker
thread. Device and dtype go through accelerate (``device_map``) when a GPU is asked for. When a
``SpanConstraint`` is given, ``constrained.py``'s logits processor restricts item spans to
candidate titles. Nothing here knows about catalogs or dialogue state.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Iterator

from ..errors import GenerationError, ModelLoadError
from .base import GenerationOptions, Messages

log = logging.getLogger(__name__)
STREAM_TIMEOUT_S = 120.0


def _pick_dtype(torch, dtype: str, device: str):
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class TransformersBackend:
    supports_constraints = True

    def __init__(self, model: str, *, device: str = "cpu", dtype: str = "auto", threads: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads > 0:
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu")
        self.name = model
        self.device = device
        self.torch = torch
        local = Path(model).expanduser()
        source = str(local) if local.exists() else model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForCausalLM.from_pretrained(
                source, dtype=_pick_dtype(torch, dtype, device),
                device_map=device if device.startswith("cuda") else None)
        except Exception as exc:  # transformers raises OSError, ValueError, HF errors, ...
            raise ModelLoadError(_load_hint(model, exc)) from exc
        if not device.startswith("cuda"):
            self.model.to(device)
        self.model.eval()
        if self.tokenizer.chat_template is None:
            raise ModelLoadError(f"model {model!r} has no chat template; chatrec needs an instruct/chat model")
        config = self.model.config
        self.context_window = int(getattr(config, "max_position_embeddings", 2048) or 2048)

    def encode(self, messages: Messages):
        enc = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        return {k: v.to(self.model.device) for k, v in enc.items()}

    def count_tokens(self, messages: Messages) -> int:
        return int(self.encode(messages)["input_ids"].shape[-1])

    def stream(self, messages: Messages, options: GenerationOptions) -> Iterator[str]:
        from transformers import LogitsProcessorList, TextIteratorStreamer

        inputs = self.encode(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=STREAM_TIMEOUT_S)
        processors = LogitsProcessorList()
        if options.constraint is not None:
            from ..constrained import SpanLogitsProcessor

            processors.append(SpanLogitsProcessor(self.tokenizer, options.constraint,
                                                  prompt_length=inputs["input_ids"].shape[-1]))
        sample = options.temperature > 0
        kwargs = dict(**inputs, streamer=streamer, max_new_tokens=options.max_new_tokens,
                      do_sample=sample, logits_processor=processors,
                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        if sample:
            kwargs.update(temperature=options.temperature, top_p=options.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        error: list[BaseException] = []

        def run() -> None:
            try:
                if options.seed is not None:
                    self.torch.manual_seed(options.seed)
                with self.torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # re-raised in the caller's thread below
                error.append(exc)
                streamer.on_finalized_text("", stream_end=True)

        worker = threading.Thread(target=run, name="chatrec-generate", daemon=True)
        worker.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        except Exception as exc:  # queue.Empty on timeout
            raise GenerationError(f"the model produced nothing for {STREAM_TIMEOUT_S:.0f}s") from exc
        worker.join()
        if error:
            raise GenerationError(f"the language model failed mid-reply: {error[0]}") from error[0]


def _load_hint(model: str, exc: Exception) -> str:
    if model.startswith((".", "/", "~")) or Path(model).expanduser().exists():
        where = f"no usable model at path {model!r}"
    else:
        where = f"model {model!r} is not available locally and the hub cannot be reached"
    return (f"{where} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "Pass --model PATH to a local transformers model directory, set CHATREC_MODEL, "
            "or use --model none to run without a language model.")
