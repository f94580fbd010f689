"""Language-model backends, chosen by ``--model``: a transformers id/path, ``openai:NAME``,
``fake`` (scripted, tests) or ``none`` (no LM: templated replies from the ranked items)."""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from ..errors import ModelLoadError
from ..settings import Settings
from .base import GenerationOptions, LMBackend, Messages, SpanConstraint

log = logging.getLogger(__name__)
__all__ = ["GenerationOptions", "LMBackend", "Messages", "SpanConstraint", "load_backend", "prepare_hub_access"]


def prepare_hub_access(model: str, timeout: float = 1.5) -> bool:
    """Set HF offline mode *before* HF libraries are imported when the hub is unreachable.

    Without this, loading an uncached model id retries the network for a minute. Returns
    whether the hub looks reachable. A local path never needs the hub.
    """
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    if model in {"none", "fake"} or model.startswith("openai:") or Path(model).expanduser().exists():
        online = False
    else:
        try:
            socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
            online = True
        except OSError:
            online = False
    if not online:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return online


def load_backend(settings: Settings) -> LMBackend | None:
    """The configured backend, ``None`` for ``--model none``. Raises ``ModelLoadError``."""
    model = settings.model.strip()
    if not model:
        raise ModelLoadError("--model is empty: pass a model id or path, or 'none'")
    if model.lower() == "none":
        return None
    if model == "fake":
        from .fake import FakeBackend
        return FakeBackend()
    if model.startswith("openai:"):
        from .openai_http import OpenAIBackend
        return OpenAIBackend(model.split(":", 1)[1], settings.base_url, settings.api_key,
                             context_window=settings.context_tokens)
    from .local import TransformersBackend
    return TransformersBackend(model, device=settings.device, dtype=settings.dtype, threads=settings.threads,
                               quantize=settings.quantize)
