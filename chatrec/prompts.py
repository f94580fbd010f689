"""Prompt building: Jinja templates in ``prompts/`` rendered strictly, fitted to the context budget.

Templates are data, not Python strings. Each template is checked on load against the variables
this module provides for it: a template that uses an unknown variable fails at start-up with a
message naming it, not mid-conversation. The chat template of the model itself is applied by the
backend; this module produces the role/content messages and trims the *oldest* turns when the
conversation no longer fits, never the system prompt (which carries state and candidates) or the
latest message. With ``context_after_history`` state and candidates go in front of the latest
message instead, so system prompt + history are a stable prefix a backend can keep cached.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

import jinja2
from jinja2 import meta

from .backends.base import Messages, SpanConstraint
from .catalog import Catalog, Item
from .errors import ConfigError, InputError
from .facets import credited
from .lexical import FILLER, content_words, has_word
from .matching import normalize
from .settings import PROJECT_ROOT
from .state import DialogueState
from .tracker import singular

PROMPTS_DIR = PROJECT_ROOT / "prompts"
CURRENCY = "£"
# Variables each top-level template may use (includes are checked with their parent).
TEMPLATE_VARS: dict[str, set[str]] = {
    "system.j2": {"candidates", "state", "open", "close", "currency", "liked_titles", "rejected_titles",
                  "context_after_history", "shared_category", "has_prices", "missing"},
    "reply_none.j2": {"items", "asked", "pick", "state", "currency", "first_turn", "has_prices", "has_categories",
                      "knows_nothing", "missing", "off_category", "no_others"},
    "turn.j2": {"candidates", "state", "open", "close", "currency", "liked_titles", "rejected_titles",
                "context_after_history", "shared_category", "missing"},
    "reply_prefix.j2": {"candidates", "state", "open", "close"},
}


class PromptBuilder:
    def __init__(self, catalog: Catalog, prompt_dir: Path = PROMPTS_DIR, constraint_markers=("[[", "]]"),
                 context_after_history: bool = False):
        self.catalog = catalog
        # True: state and candidates go in front of the latest user message instead of the system
        # prompt, so system prompt + history stay a stable prefix whose KV cache a backend can reuse.
        self.context_after_history = context_after_history
        self.open, self.close = constraint_markers
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(prompt_dir)),
                                      undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                                      autoescape=False)
        self.templates = {name: self._load(prompt_dir, name, allowed) for name, allowed in TEMPLATE_VARS.items()}
        # what is worth asking about: no budget question for a catalog without prices (films)
        self.has_prices = any(item.price is not None for item in catalog)
        self.has_categories = len(catalog.categories) > 1

    def _load(self, prompt_dir: Path, name: str, allowed: set[str]) -> jinja2.Template:
        try:
            used = self._variables(name)
            template = self.env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            raise ConfigError(f"prompt template {prompt_dir / exc.name} is missing") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"prompt template {exc.filename or name}:{exc.lineno}: {exc.message}") from exc
        unknown = used - allowed
        if unknown:
            raise ConfigError(f"prompt template {prompt_dir / name} uses undefined variable(s) "
                              f"{', '.join(sorted(unknown))}; available: {', '.join(sorted(allowed))}")
        return template

    def _variables(self, name: str, seen: set[str] | None = None) -> set[str]:
        seen = seen if seen is not None else set()
        seen.add(name)
        source = self.env.loader.get_source(self.env, name)[0]
        ast = self.env.parse(source)
        used = set(meta.find_undeclared_variables(ast))
        for ref in meta.find_referenced_templates(ast):
            if ref and ref not in seen:
                used |= self._variables(ref, seen)
        return used

    @property
    def constraint_markers(self) -> tuple[str, str]:
        return self.open, self.close

    def constraint(self, candidates: Sequence[Item]) -> SpanConstraint:
        return SpanConstraint(titles=[c.title for c in candidates], open=self.open, close=self.close)

    def system_prompt(self, state: DialogueState, candidates: Sequence[Item]) -> str:
        return self._render("system.j2", state, candidates)

    def turn_context(self, state: DialogueState, candidates: Sequence[Item]) -> str:
        """State and candidates, put in front of the latest user message (see ``build``)."""
        return self._render("turn.j2", state, candidates)

    def _render(self, name: str, state: DialogueState, candidates: Sequence[Item]) -> str:
        # a category every candidate shares is said once, in the list's heading, not on each line
        categories = {c.category for c in candidates}
        shared = categories.pop() if len(candidates) > 1 and len(categories) == 1 else None
        return self.templates[name].render(
            candidates=[_item_view(c) for c in candidates], state=state.summary(), open=self.open,
            close=self.close, currency=CURRENCY, liked_titles=self._titles(state.summary()["liked"]),
            rejected_titles=self._titles(state.rejected), context_after_history=self.context_after_history,
            shared_category=shared or None, has_prices=self.has_prices,
            missing=missing_must_haves(state, candidates)).strip()

    def reply_prefix(self, state: DialogueState, candidates: Sequence[Item]) -> str:
        """The pre-filled opening of the LM's reply (``reply_prefix.j2``), e.g. ``"1. [["``."""
        return self.templates["reply_prefix.j2"].render(
            candidates=[_item_view(c) for c in candidates], state=state.summary(), open=self.open,
            close=self.close).strip("\n")

    def none_reply(self, state: DialogueState, items: Sequence[Item], no_others: Sequence[str] = ()) -> str:
        """The reply without an LM. ``no_others``: the people the user asked for more of who have
        nothing else in the catalog (``Ranker.role_without_others``)."""
        # "what is the second one about?" without an LM: the catalog's own words on the items asked about
        asked = [item for i in state.asked if (item := self.catalog.get(i)) and item.description]
        pick = state.wants_pick and len(asked) > 1  # "which one is the best?": the best ranked of those asked about
        if pick:
            asked = [min(asked, key=lambda a: next((n for n, i in enumerate(items) if i.id == a.id), len(items)))]
        return self.templates["reply_none.j2"].render(
            items=[_item_view(i) for i in items], asked=[_item_view(i, ABOUT_CHARS) for i in asked], pick=pick,
            state=state.summary(), currency=CURRENCY,
            first_turn=state.n_turns <= 1, has_prices=self.has_prices, has_categories=self.has_categories,
            knows_nothing=knows_nothing(state), missing=missing_must_haves(state, items),
            off_category=off_category(state, items) if self.has_categories else False,
            no_others=" and ".join(no_others)).strip()

    def build(self, state: DialogueState, candidates: Sequence[Item], count_tokens: Callable[[Messages], int],
              budget: int) -> Messages:
        """System prompt + as many of the latest turns as fit in ``budget`` tokens."""
        system = {"role": "system", "content": self.system_prompt(state, candidates)}
        history = state.to_messages()
        if not history or history[-1]["role"] != "user":
            raise InputError("the conversation must end with a user message")
        if self.context_after_history:
            history[-1] = {"role": "user", "content": f"{self.turn_context(state, candidates)}\n{history[-1]['content']}"}
        # Drop the oldest turns while over budget; keep at least the current user message.
        start = 0
        while True:
            messages = [system] + history[start:]
            if count_tokens(messages) <= budget or start >= len(history) - 1:
                break
            start += 1
            while start < len(history) - 1 and history[start]["role"] != "user":
                start += 1  # a conversation window starts with a user turn
        if count_tokens(messages) > budget:
            context = self.turn_context(state, candidates) if self.context_after_history else ""
            fixed = count_tokens([system, {"role": "user", "content": context}])
            if fixed > budget:  # not the user's fault: say what does not fit
                raise InputError(f"the system prompt and candidate items alone take {fixed:,} tokens, more than "
                                 f"the model's context budget of {budget:,}; use a model with a longer context "
                                 f"window or fewer candidates")
            raise InputError("your message is too long for the model's context window; please shorten it")
        return messages

    def _titles(self, ids: Sequence[str]) -> list[str]:
        return [self.catalog.by_id[i].title for i in ids if i in self.catalog.by_id]


# Characters of an item's description the LM sees: enough for a one-line reason. Every candidate's
# line is re-encoded each turn (it sits after the cached history), so each character costs time to
# first token: 100 instead of 160 characters, with the savings below, cut the bench's follow-up
# context from 605 to ~460 tokens.
BLURB_CHARS = 100
ABOUT_CHARS = 400  # an item the user asked about is described at more length


def _item_view(item: Item, chars: int = BLURB_CHARS) -> dict[str, object]:
    desc = item.description
    if desc[:len(item.title)].casefold() == item.title.casefold():  # a description that opens with the title
        desc = desc[len(item.title):].lstrip(" .,:;-–—")
    blurb = desc[:chars].rsplit(" ", 1)[0] + "…" if len(desc) > chars else desc
    # a brand already in the title ("Hornby Santa's Express") is not repeated
    brand = None if item.brand and item.brand.casefold() in item.title.casefold() else item.brand
    return {"id": item.id, "title": item.title, "price": item.price, "brand": brand,
            "category": item.category, "rating": item.rating, "blurb": blurb, "people": _people(item)}


def _people(item: Item) -> str:
    """Who made it, for an item asked about ("who's in the second one?"): "starring A, B and C;
    directed by D", from the catalog's credits; empty without any."""
    def names(role: str) -> str:
        found = list(dict.fromkeys(credited(item, role)))[:3]
        return ", ".join(found[:-1]) + " and " + found[-1] if len(found) > 1 else "".join(found)

    parts = [f"{label} {who}" for label, who in (("starring", names("star")), ("directed by", names("director"))) if who]
    return "; ".join(parts)


def knows_nothing(state: DialogueState) -> bool:
    """Nothing said yet that the ranking could follow ("hello", "what can you do?"): no words to search
    for, no item named or rated, no budget, age, category or exclusion."""
    return (not (state.mentioned or state.liked or state.rejected) and state.prefs.is_empty()
            and not any(content_words(text) for text in state.said()))


def off_category(state: DialogueState, items: Sequence[Item]) -> bool:
    """Whether none of ``items`` is of the kind wanted, nor of one sharing a word of its name ("Model
    Trains" for "Toy Trains"): "a farm set for a toddler" found no farm toy labelled for a 2-year-old,
    and the reply must not call rattles "picks in Farm & Animals"."""
    wanted = state.prefs.category
    if not wanted or not items:
        return False
    def words(name: str) -> set[str]:  # "Farm & Animals": farm, animal ("and" and "toys" say nothing)
        return {singular(w) for w in normalize(name).split() if w not in FILLER}

    return not any(item.category == wanted or words(wanted) & words(item.category or "") for item in items)


def missing_must_haves(state: DialogueState, items: Sequence[Item]) -> list[str]:
    """The must-haves the latest message asked for ("obsessed with fire engines"), or all of them when
    it changed a filter ("under a tenner"), that none of ``items`` mentions, singular or plural: the
    reply says so rather than pass the closest items off as matches."""
    said = normalize(state.said()[-1]) if state.user_texts() else ""
    texts = [normalize(item.search_text()) for item in items]
    forms = {term: {normalize(term), singular(normalize(term))} for term in state.prefs.must_have}
    # or any of them once a filter changed: "something cheaper, under a tenner" may leave no Paw Patrol
    missing = [term for term, variants in forms.items() if (state.narrowed or any(has_word(said, f) for f in variants))
               and not any(has_word(text, f) for text in texts for f in variants)]
    return [_as_written(term, state.said()) for term in missing]


def _as_written(term: str, texts: Sequence[str]) -> str:
    """``term`` as the user last wrote it ("Paw Patrol", not the tracker's "paw patrol")."""
    pattern = re.compile(r"\b" + r"\W+".join(map(re.escape, term.split())) + r"\b", re.I)
    for text in reversed(texts):
        if m := pattern.search(text):
            return m.group()
    return term
