"""OpenAI-compatible chat-completions backend (vLLM, llama.cpp server, TGI, Ollama, ...).

Selected with ``--model openai:NAME --base-url URL``. Such servers cannot run our logits
processor, so ``supports_constraints`` is False: every item the reply names is grounded post hoc
and nothing ungrounded is shown as a recommendation.
"""
from __future__ import annotations

from typing import Iterator

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
            for chunk in response:
                if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except self._openai.OpenAIError as exc:
            raise GenerationError(f"the model server at {self.client.base_url} failed: {exc}") from exc
