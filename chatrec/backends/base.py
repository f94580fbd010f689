"""The one interface every language-model backend implements.

Messages in (``[{"role": ..., "content": ...}]``, already rendered by ``prompts.py``), streamed
text out. A backend that can constrain decoding honours ``SpanConstraint`` so that every item
span it completes is exactly a candidate title; one that cannot (an HTTP server) says so with
``supports_constraints = False`` and the pipeline relies on post-hoc grounding alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol, Sequence

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class SpanConstraint:
    """Inside ``open ... close`` the model may only write one of ``titles``."""

    titles: Sequence[str]
    open: str = "[["
    close: str = "]]"


@dataclass
class GenerationOptions:
    max_new_tokens: int = 200
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int | None = None
    constraint: SpanConstraint | None = None
    # Text the reply starts with, pre-filled after the generation prompt (prompts/reply_prefix.j2);
    # the backend yields it as the first piece. Backends that cannot pre-fill ignore it.
    reply_prefix: str = ""
    stop: list[str] = field(default_factory=list)


class LMBackend(Protocol):
    name: str
    supports_constraints: bool
    context_window: int  # tokens the model accepts (prompt + reply)
    # Not part of the protocol (read with getattr, default False): ``caches_prefix = True`` says the
    # backend reuses the KV cache of a prompt prefix it has seen, so services put state and candidates
    # *after* the history (a stable prefix).

    def count_tokens(self, messages: Messages) -> int:
        """Tokens the rendered prompt for ``messages`` takes (an estimate is fine for HTTP)."""

    def stream(self, messages: Messages, options: GenerationOptions) -> Iterator[str]:
        """Yield the reply in pieces as it is produced. Raises ``GenerationError`` on failure."""
