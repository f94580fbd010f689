"""Pure rendering for the web UI: chat messages, item cards, the "What I understood" choices, banners, CSS.

Everything that reaches the browser as HTML or markdown passes through here, so escaping lives
in one place: catalog fields and user text are ``html.escape``d, and markdown links are only
kept for http(s)/mailto/# targets (a ``javascript:`` link becomes plain text). No Gradio
imports: the functions return strings and lists, which keeps them testable without a server.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Iterable

from .catalog import Catalog, Item
from .state import DialogueState

_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(((?:[^()\n]|\([^()\n]*\))*)\)")  # one level of (...) in targets
_LINK_DEF = re.compile(r"^[ \t]*\[[^\]\n]+\]:[ \t]*(\S+).*$", re.M)
_OPEN = re.compile(r"\]\(\s*([^\s)]*)")
_SAFE_SCHEMES = ("http://", "https://", "mailto:", "#")
PLOT_CHARS = 160  # the start of a film's description on its card
SOURCE_LABELS = {"span": "Picked by the assistant", "text": "Named in the reply", "ranker": "Top match",
                 "rerank": "Updated after your change"}


def _safe_target(target: str) -> bool:
    # Browsers ignore whitespace and control characters inside a scheme ("java\tscript:"), so must we.
    squashed = re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(target)).lower().lstrip("<")
    return squashed.startswith(_SAFE_SCHEMES)


def safe_markdown(text: str) -> str:
    """Markdown that cannot inject HTML or script links; ordinary formatting still renders."""
    text = html.escape(text, quote=False)

    def link(m: re.Match[str]) -> str:
        bang, label, target = m.groups()
        if bang or not _safe_target(target.strip().split(" ")[0]):
            return label  # images and unsafe links keep only their text
        return m.group(0)

    text = _LINK.sub(link, text)
    text = _LINK_DEF.sub(lambda m: m.group(0) if _safe_target(m.group(1)) else "", text)
    # Anything link-like the patterns above missed (deeper parentheses): "] (" is no link syntax.
    return _OPEN.sub(lambda m: m.group(0) if _safe_target(m.group(1)) else "] (" + m.group(1), text)


def chat_messages(state: DialogueState, displays: list[str] | None = None, *, draft: str | None = None,
                  pending: str | None = None) -> list[dict]:
    """The conversation as Chatbot messages, one per state message (indexes line up for likes).

    ``displays`` are the rendered assistant replies (grounded titles in bold, invented ones struck
    through), used instead of the raw model text; ``draft``/``pending`` append a user message and a
    partial reply while a turn streams.
    """
    shown = iter(displays or [])
    out = [{"role": m.role, "content": safe_markdown(next(shown, m.content) if m.role == "assistant" else m.content)}
           for m in state.messages]
    if draft is not None:
        out.append({"role": "user", "content": safe_markdown(draft)})
    if pending is not None:
        out.append({"role": "assistant", "content": safe_markdown(pending) if pending else "…"})
    return out


def price_text(price: float | None, currency: str = "£") -> str:
    return f"{currency}{price:,.2f}" if price is not None else "Price not listed"


def stars(rating: float) -> str:
    full = int(round(max(0.0, min(5.0, rating))))
    return "★" * full + "☆" * (5 - full)


def item_facts(item: Item) -> list[str]:
    """Year, genres, director and stars of an item that has them (films, books): what a card shows
    instead of a price and a rating the catalog never had."""
    def names(*keys: str, n: int) -> list[str]:
        for key in keys:
            value = item.attributes.get(key)
            values = value if isinstance(value, list) else [value] if value not in (None, "") else []
            if values:
                return [str(v) for v in values[:n]]
        return []

    facts = [str(item.year)] if item.year else []
    if genres := names("genre", "genres", n=3):
        facts.append(", ".join(genres))
    if directors := names("director", "directors", n=2):
        facts.append("dir. " + ", ".join(directors))
    if cast := names("star", "stars", "cast", "actors", n=2):
        facts.append(", ".join(cast))
    return facts


def _is_product(item: Item) -> bool:
    """A shop item (a price, a brand or ratings, or nothing else to show) rather than a film or a book."""
    return (item.price is not None or item.brand is not None
            or any(k in item.attributes for k in ("rating", "review_count")) or not item_facts(item))


def card_html(item: Item, rank: int, reason: str, source: str, verdict: int = 0) -> str:
    """One recommendation card; every catalog field is escaped. Products show price, brand,
    category and rating; items with none of these but a year, genres or credits show those and the
    start of their description."""
    e = html.escape
    if not _is_product(item):
        plot = item.description if len(item.description) <= PLOT_CHARS else \
            item.description[:PLOT_CHARS].rsplit(" ", 1)[0] + "…"
        meta = [f'<span class="rec-facts">{e(f)}</span>' for f in item_facts(item)]
        return _card(item, rank, reason, source, verdict, meta, "<div></div>",
                     f'<div class="rec-plot">{e(plot)}</div>' if plot else "")
    meta = [f'<span class="rec-price">{e(price_text(item.price))}</span>']
    if item.brand:
        meta.append(f'<span class="rec-brand">{e(item.brand)}</span>')
    if item.category:
        meta.append(f'<span class="rec-cat">{e(item.category)}</span>')
    if item.rating is not None:
        reviews = f" ({item.review_count:,} review{'s' if item.review_count != 1 else ''})" \
            if item.review_count else ""
        rating = (f'<div class="rec-rating"><span class="rec-stars">{stars(item.rating)}</span> '
                  f'{item.rating:.1f}{e(reviews)}</div>')
    else:
        rating = '<div class="rec-rating rec-muted">No ratings yet</div>'
    return _card(item, rank, reason, source, verdict, meta, rating)


def _card(item: Item, rank: int, reason: str, source: str, verdict: int, meta: list[str], line: str,
          plot: str = "") -> str:
    e = html.escape
    badge = {1: '<span class="rec-verdict up">You liked this</span>',
             -1: '<span class="rec-verdict down">Hidden from now on</span>'}.get(verdict, "")
    return (f'<div class="rec-card{" rec-rejected" if verdict < 0 else ""}" data-item-id="{e(item.id)}">'
            f'<div class="rec-rank">{rank}</div><div class="rec-body">'
            f'<div class="rec-title">{e(item.title)}</div>'
            f'<div class="rec-meta">{" · ".join(meta)}</div>'
            f'<div class="rec-line">{line}<span class="rec-source">{e(SOURCE_LABELS.get(source, source))}</span>'
            f'</div>{plot}<div class="rec-reason">{e(reason)}</div>{badge}</div></div>')


def understood_choices(state: DialogueState, catalog: Catalog,
                       wishes: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """(label, key) for every constraint and rating the state holds, and the ``wishes`` in words the
    ranking follows (``Ranker.understood``: an era, genres, people); keys feed :func:`remove_keys`."""
    p = state.prefs
    wishes = list(wishes)
    people = {key.partition(":")[2] for _, key in wishes if key.startswith("person:")}
    out: list[tuple[str, str]] = []
    if p.category:
        out.append((f"Category: {p.category}", "category"))
    if p.budget_text():
        out.append((f"Budget: {p.budget_text()}", "budget"))
    if p.age_text():
        out.append((f"For: {p.age_text()}", "age"))
    out += wishes
    # "with Jim Carrey" is a person named, shown once (as "With: Jim Carrey"), not also as a must-have
    out += [(f"About: {t}" if t in p.topic_turns else f"Must have: {t}", f"must:{t}")  # "zombie movies": about
            for t in p.must_have if t.lower() not in people]
    out += [(f"Avoid: {t}", f"exclude:{t}") for t in p.exclude]
    liked = list(state.liked) + [i for i, v in state.mentioned.items() if v > 0 and i not in state.liked]
    out += [(f"👍 {_title(catalog, i)}", f"liked:{i}") for i in liked]
    out += [(f"👎 {_title(catalog, i)}", f"rejected:{i}") for i in state.rejected]
    out += [(f"Not seen yet: {_title(catalog, i)}", f"unseen:{i}") for i in state.unseen if i not in state.rejected]
    return out


def remove_keys(state: DialogueState, keys: Iterable[str]) -> list[str]:
    """Drop the constraints named by ``keys`` (from :func:`understood_choices`); return what was removed."""
    p = state.prefs
    removed = []
    for key in keys:
        kind, _, value = key.partition(":")
        if kind == "category":
            p.category = None
        elif kind == "budget":
            p.min_price = p.max_price = None
        elif kind == "age":
            p.age = None
        elif kind == "must" and value in p.must_have:
            p.must_have.remove(value)
            p.topic_turns.pop(value, None)
        elif kind == "exclude" and value in p.exclude:
            p.exclude.remove(value)
        elif kind in ("era", "genre", "person"):  # wishes in words: only later turns bring them back
            state.dropped[key] = state.n_turns
            if kind == "person":
                p.must_have[:] = [t for t in p.must_have if t.lower() != value]
        elif kind == "liked":
            _drop(state.liked, value)
            if state.mentioned.get(value, 0) > 0:
                state.mentioned[value] = 0  # still mentioned, no longer counted as liked
        elif kind == "rejected":
            _drop(state.rejected, value)
            if state.mentioned.get(value, 0) < 0:
                state.mentioned[value] = 0
        elif kind == "unseen":  # seen after all: had, no longer suggested
            state.unseen.pop(value, None)
        else:
            continue
        removed.append(key)
    return removed


def _drop(values: list[str], value: str) -> None:
    if value in values:
        values.remove(value)


def _title(catalog: Catalog, item_id: str) -> str:
    item = catalog.get(item_id)
    return item.title if item else item_id


@dataclass(frozen=True)
class Copy:
    """The words of the page for one kind of catalog: a shop's products or films (books, shows)."""
    logo: str
    name: str
    tagline: str
    welcome: str
    placeholder: str
    examples: tuple[str, ...]


SHOP_COPY = Copy("🧸", "gift finder", "Tell me who it's for, your budget and what to avoid.",
                 "**Looking for a gift?** Describe who it's for, a budget, and anything to avoid.",
                 "e.g. a wooden train set for a 3-year-old under £40",
                 ("A wooden train set for my 3-year-old, under £40",
                  "Something with a remote control for a 10 year old, but no Lego",
                  "A 1000 piece jigsaw puzzle for my gran", "A soft plush toy for a newborn, around £15"))
FILM_COPY = Copy("🎬", "film finder", "Tell me what you loved, what you have seen and what to avoid.",
                 "**Looking for something to watch?** Name films you loved, a genre or an era, and anything to avoid.",
                 "e.g. a funny 90s comedy like Groundhog Day",
                 ("A funny 90s comedy like Groundhog Day", "I loved Get Out, something scary but nothing too old",
                  "An animated film for my 6 year old", "A thriller with a twist, not horror"))


def copy_for(catalog: Catalog) -> Copy:
    """Film words when most items are films (a year, genres or credits, and no price or brand)."""
    sample = catalog.items[:: max(1, len(catalog) // 500)]
    films = sum(not _is_product(item) for item in sample)
    return FILM_COPY if sample and films > len(sample) / 2 else SHOP_COPY


def header_html(n_items: int, model_name: str, copy: Copy = SHOP_COPY) -> str:
    e = html.escape
    mode = "no language model" if model_name == "none" else f"model: {model_name}"
    return (f'<div class="app-header"><div class="app-logo">{copy.logo}</div><div>'
            f'<div class="app-title">chatrec <span class="app-sub">{e(copy.name)}</span></div>'
            f'<div class="app-tagline">{e(copy.tagline)} '
            'Every suggestion is a real catalog item.</div></div>'
            f'<div class="app-pill">{n_items:,} items · {e(mode)}</div></div>')


def banner_html(notices: Iterable[str], no_lm: bool) -> str:
    notices = list(notices)
    if no_lm and not any("without a language model" in n.lower() for n in notices):
        notices.insert(0, "Running without a language model: replies are written from templates over the "
                          "ranked catalog items. Start with --model ID|PATH to chat with a model.")
    if not notices:
        return ""
    rows = "".join(f"<div>{html.escape(n)}</div>" for n in notices)
    return f'<div class="app-banner"><span class="app-banner-icon">ℹ️</span><div>{rows}</div></div>'


CSS = """
.gradio-container { max-width: 1320px !important; margin: 0 auto; }
.app-header { display: flex; align-items: center; gap: 14px; padding: 6px 4px 2px; }
.app-logo { font-size: 34px; }
.app-title { font-size: 24px; font-weight: 700; letter-spacing: -0.01em; }
.app-sub { font-size: 15px; font-weight: 500; color: var(--body-text-color-subdued); margin-left: 6px; }
.app-tagline { color: var(--body-text-color-subdued); font-size: 14px; }
.app-pill { margin-left: auto; font-size: 12px; padding: 4px 10px; border-radius: 999px;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.app-banner { display: flex; gap: 10px; align-items: flex-start; padding: 10px 14px; border-radius: 10px;
  background: #fff7e6; border: 1px solid #f5c26b; color: #6b4500; font-size: 13.5px; }
.dark .app-banner { background: #3a2c10; color: #ffd58a; border-color: #8a6420; }
.panel-title { font-weight: 650; font-size: 15px; margin: 2px 0 4px; }
.panel-hint { color: var(--body-text-color-subdued); font-size: 12.5px; }
.rec-slot { border: 1px solid var(--border-color-primary) !important; border-radius: 12px !important;
  background: var(--background-fill-primary) !important; padding: 12px 14px 8px !important; gap: 2px !important;
  box-shadow: 0 1px 3px rgba(16, 24, 40, .07); }
.rec-slot .html-container { padding: 0 !important; }
.rec-card { display: flex; gap: 12px; }
.rec-card.rec-rejected { opacity: .55; }
.rec-rank { flex: none; width: 28px; height: 28px; border-radius: 50%; display: grid; place-items: center;
  font-weight: 700; font-size: 13px; background: var(--color-accent-soft); color: var(--color-accent); }
.rec-body { min-width: 0; flex: 1; }
.rec-title { font-weight: 650; font-size: 14.5px; line-height: 1.3; overflow: hidden; display: -webkit-box;
  -webkit-line-clamp: 2; -webkit-box-orient: vertical; }
.rec-meta { font-size: 12.5px; color: var(--body-text-color-subdued); margin-top: 3px; }
.rec-price { font-weight: 700; color: var(--body-text-color); font-size: 14px; }
.rec-rating { font-size: 12.5px; margin-top: 2px; }
.rec-line .rec-rating { margin-top: 2px; }
.rec-stars { color: #f59e0b; letter-spacing: 1px; }
.rec-muted { color: var(--body-text-color-subdued); }
.rec-reason { font-size: 12.5px; margin-top: 6px; padding: 6px 8px; border-radius: 8px;
  background: var(--background-fill-secondary); }
.rec-line { display: flex; justify-content: space-between; align-items: center; gap: 8px; }
.rec-plot { font-size: 12.5px; color: var(--body-text-color-subdued); margin-top: 4px; }
.rec-source { color: var(--body-text-color-subdued); text-transform: uppercase; letter-spacing: .04em;
  font-size: 10.5px; white-space: nowrap; }
.rec-verdict { display: inline-block; margin-top: 6px; padding: 1px 8px; border-radius: 999px; font-weight: 600;
  font-size: 11.5px; }
.rec-verdict.up { background: #dcfce7; color: #166534; }
.rec-verdict.down { background: #fee2e2; color: #991b1b; }
.rec-actions { gap: 6px !important; justify-content: flex-end; }
.rec-actions button { flex: none !important; min-width: 0 !important; padding: 2px 10px !important;
  font-size: 12.5px !important; }
.empty-hint { color: var(--body-text-color-subdued); font-size: 13px; padding: 10px 12px; border-radius: 10px;
  border: 1px dashed var(--border-color-primary); }
.status-line { font-size: 13px; min-height: 22px; color: var(--body-text-color-subdued); }
.kpi-row { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; }
.kpi { padding: 12px 14px; border-radius: 12px; border: 1px solid var(--border-color-primary);
  background: var(--background-fill-primary); }
.kpi-value { font-size: 22px; font-weight: 700; }
.kpi-label { font-size: 12px; color: var(--body-text-color-subdued); }
.replay-turn { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 10px 12px;
  margin-bottom: 10px; }
.replay-user { font-weight: 600; }
.replay-reply { margin: 6px 0; white-space: pre-wrap; }
.replay-meta { font-size: 12px; color: var(--body-text-color-subdued); }
.replay-items { margin: 4px 0 0 18px; font-size: 13px; }
footer { display: none !important; }
"""
