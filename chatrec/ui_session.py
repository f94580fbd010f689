"""What the chat tab does, without Gradio: per-session state and one method per user action.

A ``ChatSession`` (kept in ``gr.State``, one per browser tab) holds the ``DialogueState``, the
cards on screen and snapshots for undo. ``ChatController`` is shared by all sessions and holds
only the shared services; each method takes a session, changes it and returns a ``View`` (what
the screen should show, plus an optional toast). ``ui.py`` turns views into component updates,
and the fast UI tests drive these methods directly. Errors become toasts here; a traceback never
reaches the page: a model failing mid-reply becomes a failed (logged) turn with catalog matches, any
other unexpected error is logged with its stack and the turn is rolled back. One action runs at a
time per session (``claim``): a click during a streaming reply gets a "still answering" toast.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal

from .errors import ChatrecError, InputError
from .explain import reasons
from .recommender import Recommender, TurnResult, clean_message
from .services import Services
from .state import DialogueState
from .ui_view import card_html, chat_messages, remove_keys, understood_choices

log = logging.getLogger(__name__)
Level = Literal["info", "warning", "error"]
BUSY_TEXT = "Still answering your last message — one moment, then try again."
BUSY_STALE_S = 600.0  # a turn abandoned without cleanup (a dropped stream) stops blocking after this


@dataclass
class Card:
    item_id: str
    reason: str
    source: str


@dataclass
class ChatSession:
    state: DialogueState
    cards: list[Card] = field(default_factory=list)
    cards_turn: int | None = None  # index into state.turn_ids of the turn that produced the cards
    displays: list[str] = field(default_factory=list)  # rendered text of each assistant message
    undo_stack: list["ChatSession"] = field(default_factory=list)  # snapshots taken before each turn
    busy_since: float | None = None  # monotonic time an action on this session began; None = idle

    def snapshot(self) -> "ChatSession":
        return ChatSession(self.state.copy(), list(self.cards), self.cards_turn, list(self.displays))

    def restore(self, snap: "ChatSession") -> None:
        self.state, self.cards, self.cards_turn, self.displays = snap.state, snap.cards, snap.cards_turn, snap.displays


@dataclass
class View:
    messages: list[dict]
    cards: list[str]  # one HTML string per card slot; "" hides the slot
    choices: list[tuple[str, str]]
    status: str = ""
    toast: tuple[Level, str] | None = None
    draft: str | None = None  # text to put back in the input box (undo), None = leave it
    streaming: bool = False


class ChatController:
    def __init__(self, services: Services, recommender: Recommender | None = None):
        self.services = services
        self.recommender = recommender or Recommender(services)
        self.slots = services.settings.n_recommendations
        self._claims = threading.Lock()  # makes check-and-set of ``busy_since`` atomic

    # -- one action at a time per session ----------------------------------------------------
    # Gradio runs each event in its own worker: without this, a 👍 or Undo clicked while a reply
    # streams (or Enter then Send) would change the same session as the running turn.
    def claim(self, session: ChatSession) -> bool:
        with self._claims:
            if self.busy(session):
                return False
            session.busy_since = time.monotonic()
            return True

    def busy(self, session: ChatSession) -> bool:
        return session.busy_since is not None and time.monotonic() - session.busy_since < BUSY_STALE_S

    @staticmethod
    def release(session: ChatSession) -> None:
        session.busy_since = None

    def exclusive(self, session: ChatSession, action, *args) -> View:
        """Run a quick action (a vote, undo, removing a constraint) unless a turn is running."""
        if not self.claim(session):
            return self.view(session, toast=("info", BUSY_TEXT))
        try:
            return action(session, *args)
        finally:
            self.release(session)

    # -- sessions and views ----------------------------------------------------------------
    def new_session(self) -> ChatSession:
        return ChatSession(state=self.recommender.new_state())

    def view(self, session: ChatSession, status: str = "", toast: tuple[Level, str] | None = None,
             **extra) -> View:
        state = session.state
        verdicts = {**{i: 1 for i in state.liked}, **{i: -1 for i in state.rejected}}
        cards = [card_html(self.services.catalog.by_id[c.item_id], n + 1, c.reason, c.source,
                           verdicts.get(c.item_id, 0)) for n, c in enumerate(session.cards[:self.slots])]
        cards += [""] * (self.slots - len(cards))
        return View(chat_messages(state, session.displays), cards, self._understood(state), status, toast, **extra)

    # -- turns -----------------------------------------------------------------------------
    def send(self, session: ChatSession, text: str) -> Iterator[View]:
        """Stream one turn: a view per partial reply, then the final view with new cards."""
        yield from self._exclusive_stream(session, lambda: self._send(session, text))

    def _exclusive_stream(self, session: ChatSession, views: Callable[[], Iterator[View]]) -> Iterator[View]:
        """Stream ``views()`` holding the session, unless a turn is running. The session is released
        before the last view goes out, so a 👍 clicked the moment the answer shows is not refused (the
        stream's own end comes a little later), and only once: by then a new turn may hold it."""
        if not self.claim(session):
            yield self.view(session, toast=("info", BUSY_TEXT))
            return
        released = False
        try:
            for view in views():
                if not view.streaming and not released:
                    self.release(session)
                    released = True
                yield view
        finally:
            if not released:
                self.release(session)

    def _send(self, session: ChatSession, text: str, retried: bool = False) -> Iterator[View]:
        try:
            clean_message(text, self.services.settings.max_message_chars)
        except InputError as exc:
            yield self.view(session, toast=("warning", str(exc)))
            return
        pending = self.view(session, streaming=True, draft="")
        pending.messages += chat_messages(DialogueState(), draft=text, pending="")
        yield pending  # the user's message and a typing marker show at once
        snapshot = session.snapshot()
        try:
            for event in self.recommender.respond(session.state, text):
                if isinstance(event, TurnResult):
                    yield self._finish(session, snapshot, event, retried)
                    return
                view = self.view(session, streaming=True)
                view.messages += chat_messages(DialogueState(), pending=event)
                yield view
        except ChatrecError as exc:
            session.restore(snapshot)
            yield self.view(session, toast=("error", str(exc)))
        except Exception:  # a bug: keep the session usable, log the stack, show no internals
            log.exception("turn failed")
            session.restore(snapshot)
            yield self.view(session, toast=("error", "Something went wrong while answering. "
                                                     "Please try again; the details are in the server log."))

    def _finish(self, session: ChatSession, snapshot: ChatSession, result: TurnResult, retried: bool = False) -> View:
        session.undo_stack.append(snapshot)
        session.displays.append(result.display)
        session.cards = [Card(r.item.id, r.reason, r.source) for r in result.recommendations]
        session.cards_turn = len(session.state.turn_ids) - 1
        toast = None
        if result.status == "failed":
            toast = ("warning", "The language model failed; showing the best catalog matches instead.")
        elif result.status == "unlogged":
            toast = ("warning", f"This turn could not be saved: {result.error}")
        return self.view(session, status=_turn_status(result, retried), toast=toast)

    def undo(self, session: ChatSession) -> View:
        if not session.undo_stack:
            return self.view(session, toast=("info", "Nothing to undo yet."))
        last_text = session.state.user_texts()[-1]
        session.restore(session.undo_stack.pop())
        return self.view(session, status="Removed your last message and my answer (the log keeps them).",
                         draft=last_text)

    def retry(self, session: ChatSession) -> Iterator[View]:
        yield from self._exclusive_stream(session, lambda: self._retry(session))

    def _retry(self, session: ChatSession) -> Iterator[View]:
        if not session.undo_stack:
            yield self.view(session, toast=("info", "Nothing to retry yet."))
            return
        text = session.state.user_texts()[-1]
        session.restore(session.undo_stack.pop())
        yield from self._send(session, text, retried=True)

    # -- feedback --------------------------------------------------------------------------
    def rate_message(self, session: ChatSession, index: int, liked: bool | str) -> View:
        """Thumbs on chat message ``index`` (position in the Chatbot, which mirrors state.messages)."""
        messages = session.state.messages
        if not isinstance(liked, bool):
            return self.view(session, status="Rating cleared on screen; earlier votes stay in the log.")
        if not (isinstance(index, int) and 0 <= index < len(messages)) or messages[index].role != "assistant":
            return self.view(session, toast=("warning", "Only my answers can be rated."))
        answer = sum(1 for m in messages[:index] if m.role == "assistant")
        value = 1 if liked else -1
        try:
            vote = self.recommender.feedback(session.state, value, message_index=answer)
        except ChatrecError as exc:
            return self.view(session, toast=("warning", str(exc)))
        text = _message_vote_text(liked, len(vote.items), vote.of)
        return self.view(session, status=text, toast=("info", text))

    def rate_item(self, session: ChatSession, slot: int, value: int) -> View:
        if not 0 <= slot < len(session.cards):
            return self.view(session, toast=("warning", "That card is no longer on screen."))
        card = session.cards[slot]
        title = self.services.catalog.by_id[card.item_id].title
        try:
            self.recommender.feedback(session.state, value, item_id=card.item_id, message_index=session.cards_turn)
        except ChatrecError as exc:
            return self.view(session, toast=("warning", str(exc)))
        text = (f"👍 Saved: more like “{title}” from now on." if value > 0
                else f"👎 Saved: I won't suggest “{title}” again.")
        return self.view(session, status=text, toast=("info", text))

    # -- constraints -----------------------------------------------------------------------
    def keep_constraints(self, session: ChatSession, keep: list[str]) -> View:
        """Remove every constraint not in ``keep`` and re-rank the cards right away."""
        shown = {key: label for label, key in self._understood(session.state)}
        removed = remove_keys(session.state, [k for k in shown if k not in set(keep or [])])
        if not removed:
            return self.view(session)
        # "budget", "lego"; an item by its chip ("👍 Se7en (1995)"), not by its catalog id
        labels = ", ".join(shown[k] if k.split(":")[0] in ("liked", "rejected", "unseen") else k.split(":", 1)[-1]
                           for k in removed)
        if session.state.n_turns:
            self._rerank(session)
        return self.view(session, status=f"Removed {labels}. Recommendations updated.",
                         toast=("info", f"Removed {labels}."))

    def _understood(self, state: DialogueState) -> list[tuple[str, str]]:
        """The "What I understood" choices: the state's constraints and the wishes the ranking follows."""
        return understood_choices(state, self.services.catalog, self.services.ranker.understood(state))

    def _rerank(self, session: ChatSession) -> None:
        state = session.state
        ranked = self.services.ranker.rank(state, k=self.slots)
        why = reasons(state, [r.item for r in ranked], self.services.ranker, self.services.catalog)
        session.cards = [Card(r.item.id, reason, "rerank") for r, reason in zip(ranked, why)]
        session.cards_turn = None


def _message_vote_text(liked: bool, n_items: int, of: int) -> str:
    """The confirmation says what a message vote did: it counts for ``n_items`` of the answer's
    ``of`` items (an item's own opposite vote wins, see ``Recommender.feedback``)."""
    def items(n: int) -> str:
        return f"{n} item{'s' if n != 1 else ''}"
    if liked:
        head = "Thanks for the 👍 on that answer"
        if not of:
            return head + "."
        if n_items == of:
            return f"{head} — counted for each of its {items(of)}."
        return f"{head} — counted for {n_items} of its {items(of)}; your 👎 on the others stays."
    head = "Thanks — noted the 👎 on that answer"
    if not of:
        return head + "."
    if n_items == of:
        return f"{head}; counted against each of its {items(of)}, so I won't suggest them again."
    return f"{head}; counted against {n_items} of its {items(of)}, so I won't suggest those again " \
           "(your 👍 on the others stays)."


def _turn_status(result: TurnResult, retried: bool = False) -> str:
    """``Turn 2 · 0.4 s · 5 items``; a retry says so, since its answer may read the same as before."""
    again = " answered again" if retried else ""
    parts = [f"Turn {result.turn}{again} · {result.latency_ms / 1000:.1f} s · {len(result.recommendations)} items"]
    if result.ungrounded:
        parts.append(f"{len(result.ungrounded)} name(s) not in the catalog were left out")
    return " · ".join(parts)
