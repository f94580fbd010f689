"""The orchestrator: one user turn through every stage, and feedback back into the state.

turn = validate input -> track state -> rank candidates -> build prompt -> stream LM reply
       -> ground mentions -> pick recommendations -> log the turn (one transaction)
The web UI and ``python -m chatrec chat`` both call :meth:`Recommender.respond`, so they run
exactly the same pipeline. Per-conversation data lives in the ``DialogueState`` passed in;
this object only holds shared services.
"""
from __future__ import annotations

import logging
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from .backends import GenerationOptions
from .catalog import Item
from .explain import reasons
from .errors import ChatrecError, GenerationError, InputError
from .grounding import Grounding, render_reply
from .ranker import Ranked
from .services import Services
from .state import DialogueState, Message
from .store import MentionRecord, RecRecord, TurnRecord

log = logging.getLogger(__name__)


@dataclass
class Recommendation:
    item: Item
    score: float
    source: str  # span (constrained LM pick) | text (LM named it) | ranker
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {"id": self.item.id, "title": self.item.title, "score": round(self.score, 4), "source": self.source}


@dataclass
class TurnResult:
    turn: int
    reply: str  # raw model text (markers included)
    display: str  # markdown shown to the user
    recommendations: list[Recommendation]
    ungrounded: list[str]
    latency_ms: float
    turn_id: int | None
    status: str = "ok"
    error: str | None = None
    candidates: list[Ranked] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"turn": self.turn, "reply": self.display, "recommendations": [r.to_json() for r in self.recommendations],
                "ungrounded_mentions": self.ungrounded, "latency_ms": round(self.latency_ms, 1),
                "status": self.status, **({"error": self.error} if self.error else {})}


@dataclass
class Vote:
    row: int  # the feedback row's id
    items: list[str]  # the items the vote now counts for in this conversation
    of: int  # the items it was cast on (a message's items; 1 for an item vote)


def clean_message(text: object, max_chars: int) -> str:
    """Validate a user message: clear errors for empty or over-long input, control characters dropped."""
    if not isinstance(text, str):
        raise InputError("the message must be text")
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates from odd clients
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc").strip()
    if not text:
        raise InputError("Please type a message first.")
    if len(text) > max_chars:
        raise InputError(f"Your message is {len(text):,} characters long; the limit is {max_chars:,}. "
                         "Please shorten it.")
    return text


class Recommender:
    def __init__(self, services: Services):
        self.s = services

    def new_state(self) -> DialogueState:
        return DialogueState(conversation_id=str(uuid.uuid4()))

    def run_turn(self, state: DialogueState, text: str) -> TurnResult:
        """Non-streaming convenience wrapper around :meth:`respond`."""
        result = None
        for event in self.respond(state, text):
            if isinstance(event, TurnResult):
                result = event
        assert result is not None
        return result

    def respond(self, state: DialogueState, text: str) -> Iterator[str | TurnResult]:
        """Yield the reply's display text as it grows, then the final ``TurnResult``.

        ``InputError`` is raised before anything changes; any later failure is logged as a failed
        turn and reported in the result, and the state stays usable for the next turn.
        """
        s = self.s.settings
        text = clean_message(text, s.max_message_chars)
        started = time.perf_counter()
        if state.conversation_id is None:
            state.conversation_id = str(uuid.uuid4())
        self.s.tracker.observe(state, Message("user", text))
        scores, signals = self.s.ranker.score(state, self.s.ranker.weights)
        candidates = self.s.ranker.top(scores, signals, k=max(s.n_candidates, s.n_recommendations),
                                       cover=self.s.ranker.genre_groups(state))
        items = [c.item for c in candidates]
        prompt, raw, status, error = "", "", "ok", None
        backend = self.s.backend
        if backend is None:
            raw = self.s.prompts.none_reply(state, items[:s.n_recommendations],
                                            no_others=self.s.ranker.role_without_others(state))
            yield raw
        else:
            offered = items[:s.n_candidates]
            try:
                messages = self.s.prompts.build(state, offered, backend.count_tokens,
                                                budget=min(s.context_tokens, backend.context_window) - s.max_new_tokens)
                prompt = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
                constraint = (self.s.prompts.constraint(offered)
                              if s.constrain and backend.supports_constraints and offered else None)
                # With constrained spans the reply always opens one (reply_prefix.j2: "1. [["), so the
                # LM's first pick is a candidate title even when it would not open a span by itself.
                prefix = self.s.prompts.reply_prefix(state, offered) if s.prefill or constraint else ""
                options = GenerationOptions(max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                                            top_p=s.top_p, seed=s.seed, constraint=constraint, reply_prefix=prefix)
                for piece in backend.stream(messages, options):
                    raw += piece
                    yield _partial(raw, self.s.prompts.constraint_markers)
            except (GenerationError, InputError) as exc:
                status, error = "failed", str(exc)
                log.warning("turn failed: %s", exc)
            except Exception as exc:  # a bug in a backend or template: keep the traceback, still log the turn
                status, error = "failed", f"internal error ({type(exc).__name__}: {exc})"
                log.exception("turn failed with an unexpected error")
        grounding = self.s.grounder.ground(raw, items) if backend is not None and status == "ok" else Grounding()
        recs = self._recommendations(state, scores, candidates, grounding)
        if status == "failed":
            shown = error if not error.startswith("internal error") else "an unexpected error; details in the server log"
            display = (f"⚠️ Sorry — the language model failed while answering ({shown}). "
                       "Here are the best matches from the catalog instead.")
            raw = display
        elif backend is None:
            display = raw
        else:
            display = render_reply(raw, grounding, self.s.prompts.constraint_markers)
        state.messages.append(Message("assistant", raw))
        state.suggested([r.item.id for r in recs], own=True)
        latency = (time.perf_counter() - started) * 1000
        result = TurnResult(state.n_turns, raw, display, recs, [m.text for m in grounding.ungrounded],
                            latency, None, status, error, candidates)
        result.turn_id = self._log(state, text, prompt, result, grounding)
        state.turn_ids.append(result.turn_id)
        yield result

    def _recommendations(self, state: DialogueState, scores: np.ndarray, candidates: list[Ranked],
                         grounding: Grounding) -> list[Recommendation]:
        """LM picks that pass the filters first (grounded only), then the ranker's best to fill up."""
        n = self.s.settings.n_recommendations
        out: list[Recommendation] = []
        by_id = {m.item_id: m for m in grounding.grounded}
        for item_id in grounding.item_ids():
            pos = self.s.catalog.position[item_id]
            if scores[pos] == float("-inf") or len(out) >= n:
                continue  # the LM named an item the user excluded or rejected: mention it, never recommend it
            source = "span" if by_id[item_id].source == "span" else "text"
            out.append(Recommendation(self.s.catalog.items[pos], float(scores[pos]), source))
        chosen = {r.item.id for r in out}
        for c in candidates:
            if len(out) >= n:
                break
            if c.item.id not in chosen:
                out.append(Recommendation(c.item, c.score, "ranker"))
                chosen.add(c.item.id)
        for r, reason in zip(out, reasons(state, [r.item for r in out], self.s.ranker, self.s.catalog)):
            r.reason = reason
        return out

    def feedback(self, state: DialogueState, value: int, *, item_id: str | None = None,
                 message_index: int | None = None) -> Vote:
        """Record a thumbs up (+1) or down (-1) on an item or on an assistant message.

        A message's vote counts for each of its items, except items with their own opposite vote.
        The row is written first: a vote the store refused changes nothing on screen either."""
        if state.conversation_id is None or not state.turn_ids:
            raise InputError("there is nothing to rate yet")
        turn_id = None
        if message_index is not None:
            if not 0 <= message_index < len(state.turn_ids):
                raise InputError("that message cannot be rated")
            turn_id = state.turn_ids[message_index]
        rated: list[str] = []
        if item_id is not None:
            if item_id not in self.s.catalog:
                raise InputError(f"unknown item {item_id!r}")
            rated = applied = [item_id]
        else:
            rated = self._turn_items(turn_id) if turn_id is not None else []
            opposite = state.rejected if value > 0 else state.liked
            applied = [i for i in rated if i not in opposite]
        row = self.s.store.add_feedback(state.conversation_id, value, target="item" if item_id else "message",
                                        turn_id=turn_id, item_id=item_id)
        for i in applied:
            state.like(i) if value > 0 else state.reject(i)
        self.s.ranker.add_feedback(rated, value)  # the cross-conversation prior, kept in step with the store
        return Vote(row, applied, len(rated))

    def _turn_items(self, turn_id: int) -> list[str]:
        return self.s.store.recommended_items(turn_id)

    def _log(self, state: DialogueState, text: str, prompt: str, result: TurnResult, grounding: Grounding) -> int | None:
        record = TurnRecord(
            conversation_id=state.conversation_id or "", index=state.n_turns, user_text=text, reply=result.reply,
            model=self.s.model_name, latency_ms=result.latency_ms, prompt=prompt, status=result.status,
            error=result.error, state=state.summary(),
            recommendations=[RecRecord(r.item.id, i + 1, r.score, True, r.source)
                             for i, r in enumerate(result.recommendations)],
            mentions=[MentionRecord(m.text, m.item_id, m.method, m.confidence) for m in grounding.mentions])
        try:
            return self.s.store.log_turn(record)
        except ChatrecError as exc:
            log.error("could not log turn: %s", exc)
            result.status, result.error = "unlogged", str(exc)
            return None


def _partial(raw: str, markers: tuple[str, str]) -> str:
    return raw.replace(markers[0], "**").replace(markers[1], "**")

