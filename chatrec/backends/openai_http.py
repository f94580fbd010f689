"""OpenAI-compatible chat-completions backend (vLLM, llama.cpp server, TGI, Ollama, ...).

Selected with ``--model openai:NAME --base-url URL``. Such servers cannot run our logits
processor, so ``supports_constraints`` is False: every item the reply names is grounded post hoc
and nothing ungrounded is shown as a recommendation. A stream that ends without a
``finish_reason`` (the connection dropped mid-reply) is an error, not a short answer.
"""
from __future__ import annotations

from typing import Iterator

import httpx

from ..errors import GenerationError, ModelLoadError
from .base import GenerationOptions, Messages


class OpenAIBackend:
    supports_constraints = False

    def __init__(self, model: str, base_url: str, api_key: str = "not-needed",
                 context_window: int = 8192, timeout: float = 60.0):
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - in requirements
            raise ModelLoadError("the 'openai' package is needed for --model openai:NAME") from exc
        self.name = f"openai:{model}"
        self.model = model
        self.context_window = context_window
        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=1)

    def count_tokens(self, messages: Messages) -> int:
        # The server's tokenizer is unknown here; ~4 characters a token is the usual estimate.
        return sum(len(m["content"]) // 4 + 4 for m in messages)

    def stream(self, messages: Messages, options: GenerationOptions) -> Iterator[str]:
        try:
            response = self.client.chat.completions.create(
                model=self.model, messages=messages, stream=True, max_tokens=options.max_new_tokens,
                temperature=options.temperature, top_p=options.top_p, seed=options.seed,
                stop=options.stop or None)
            finished = False
            for chunk in response:
                choice = chunk.choices[0] if chunk.choices else None
                if choice is not None and choice.delta and choice.delta.content:
                    yield choice.delta.content
                finished = finished or bool(choice is not None and choice.finish_reason)
        except (self._openai.OpenAIError, httpx.HTTPError) as exc:
            raise GenerationError(f"the model server at {self.client.base_url} failed: {exc}") from exc
        if not finished:  # the connection closed mid-reply: a cut-off answer must not pass as complete
            raise GenerationError(f"the model server at {self.client.base_url} ended the reply without finishing it")
