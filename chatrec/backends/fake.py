"""A scripted backend for tests: replays queued replies and records every call.

Modelled on simonw/llm's ``MockModel``: ``enqueue([...])`` the replies, then read ``calls``.
A queued ``Exception`` is raised mid-stream, after the first piece, to test failure handling.
With an empty queue it echoes a fixed reply, so a demo with ``--model fake`` still works.
"""
from __future__ import annotations

import re
from typing import Iterator

from ..errors import GenerationError
from .base import GenerationOptions, Messages

DEFAULT_REPLY = "Here are a few ideas from the catalog that fit what you said."


class FakeBackend:
    name = "fake"
    supports_constraints = False
    context_window = 8192

    def __init__(self, replies: list[str | Exception] | None = None):
        self.queue: list[str | Exception] = list(replies or [])
        self.calls: list[tuple[Messages, GenerationOptions]] = []

    def enqueue(self, replies: list[str | Exception]) -> None:
        self.queue.extend(replies)

    def count_tokens(self, messages: Messages) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)

    def stream(self, messages: Messages, options: GenerationOptions) -> Iterator[str]:
        self.calls.append((messages, options))
        reply = self.queue.pop(0) if self.queue else DEFAULT_REPLY
        pieces = re.findall(r"\S+\s*|\s+", reply) if isinstance(reply, str) else ["Let me think"]
        for i, piece in enumerate(pieces):
            yield piece
            if isinstance(reply, Exception) and i == 0:
                raise GenerationError(f"the language model failed mid-reply: {reply}") from reply
