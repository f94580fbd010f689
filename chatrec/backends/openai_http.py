r"""OpenAI-compatible chat-completions backend (vLLM, llama.cpp server, TGI, Ollama, ...).

Selected with ``--model openai:NAME --base-url URL``. Such servers cannot run our logits
processor, so ``supports_constraints`` is False: every item the reply names is grounded post hoc
and nothing ungrounded is shown as a recommendation. A stream that ends without a
``finish_reason`` (the connection dropped mid-reply) is an error, not a short answer; a server
that is down, a wrong model name or an HTTP error become a ``GenerationError`` saying what to fix.

On a GPU box (vLLM keeps each conversation's prompt prefix cached, see ``caches_prefix``)::

    vllm serve Qwen/Qwen2.5-7B-Instruct --host 0.0.0.0 --port 8000 --dtype bfloat16 \
        --max-model-len 8192 --enable-prefix-caching --api-key SECRET
    CHATREC_API_KEY=SECRET python app.py --model openai:Qwen/Qwen2.5-7B-Instruct \
        --base-url http://GPU-BOX:8000/v1

Left out: token counting with the server's tokenizer (``count_tokens`` estimates) and retries
beyond the client's one.
"""
from __future__ import annotations

from typing import Iterator

import httpx

from ..errors import GenerationError, ModelLoadError
from .base import GenerationOptions, Messages


class OpenAIBackend:
    supports_constraints = False
    # vLLM (--enable-prefix-caching), llama.cpp's server and SGLang reuse the KV cache of a repeated
    # prompt prefix: keeping system prompt + history stable in front lets them skip re-encoding it.
    caches_prefix = True

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
            raise GenerationError(self._explain(exc)) from exc
        if not finished:  # the connection closed mid-reply: a cut-off answer must not pass as complete
            raise GenerationError(f"the model server at {self.client.base_url} ended the reply without finishing it")

    def _explain(self, exc: Exception) -> str:
        """A message that says which server failed and what to do about it."""
        where = f"the model server at {self.client.base_url}"
        if isinstance(exc, self._openai.APITimeoutError):
            return f"{where} did not answer in time ({exc}); check it is not overloaded or raise the timeout"
        if isinstance(exc, (self._openai.APIConnectionError, httpx.ConnectError)):
            return (f"cannot reach {where} ({exc}): start the server (e.g. `vllm serve {self.model}`) "
                    "or pass --base-url URL / set CHATREC_BASE_URL")
        if isinstance(exc, self._openai.NotFoundError):
            return f"{where} failed: HTTP 404 ({exc}); check that it serves a model named {self.model!r}"
        if isinstance(exc, self._openai.APIStatusError):
            return f"{where} failed: HTTP {exc.status_code} ({exc})"
        return f"{where} failed: {exc}"
