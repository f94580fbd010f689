"""``python -m chatrec simulate``: rule-based shoppers with a hidden target item; report success@k.

Each shopper is given one catalog item to find and reveals it a little more every turn (``--reveal``):
a vague need (the target's top-level department), a budget ("under £X", a round bound above its
price), its category (and finest category-path level), its brand, a distinctive word from its title,
its age range, a second distinctive word; facts the item lacks are skipped, and once everything is
told it asks for other options. After every turn it looks at the cards shown; if the target (or another
listing of it, ``Catalog.listings``) is there the conversation ends, otherwise it gives a thumbs-down
to each card, through
``Recommender.feedback`` exactly as the web UI does. The ablation run does the same without
thumbs-down, to show what feedback is worth. ``--weight NAME=VALUE`` reruns with changed ranking
weights (what-if runs for tuning, without editing the ranker).

Honesty: every utterance is built only from the target's own catalog data and fixed templates. The
shopper never says the item id, never the whole title, at most two distinctive title/description
words, and drops any sentence in which the tracker would find the target's title (that would both
leak the answer and hard-filter the target as "already named").

success@k within N turns: the share of targets that appeared among the top ``k`` cards by turn N,
where the shopper stops at the first turn whose cards include the target (so @1 counts targets found
at rank 1 on that turn). Average turns to success is over targets found within N turns.

Left out: LM-written shopper utterances (the shopper must be cheap and reproducible), thumbs-up, and
any learning across targets — one set of services is built once, each target gets a fresh state, and
everything is logged to an in-memory database so the user's own database is never touched.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import cli
from .catalog import Catalog, Item
from .errors import InputError
from .matching import COMMON_WORDS, normalize

# Placeholder values that tell a shopper nothing; never said.
GENERIC_BRANDS = frozenset({"generic", "unbranded", "unknown", "no brand", "none", "n a", "others", "other"})
GENERIC_NAMES = frozenset({"others", "other", "misc", "miscellaneous", "general", "unknown", ""})
# Words that say nothing about an item (on top of matching.COMMON_WORDS); never "distinctive".
_FILLER = frozenset("""
about also each from includes included including item items made perfect product quality size
this that these those with your children child kids years year ages great ideal suitable pack
colour color colours design designed features fully high easy use used using ensure provide
""".split())
FALLBACK = "Could you show me some other options?"


# -- the shopper -----------------------------------------------------------------------------------
class Vocabulary:
    """Document frequency of every normalised word over the catalog's titles and descriptions."""

    def __init__(self, catalog: Catalog):
        self.df: Counter[str] = Counter()
        for item in catalog:
            self.df.update(set(normalize(f"{item.title} {item.description}").split()))

    def distinctive(self, text: str, avoid: set[str]) -> list[str]:
        """Content words of ``text``, most distinctive first: rarest among words shared with at least
        one other item (a word only the target has is closer to its name than to a description)."""
        seen: dict[str, int] = {}
        for pos, word in enumerate(normalize(text).split()):
            if (word.isalpha() and len(word) >= 4 and word not in COMMON_WORDS and word not in _FILLER
                    and word not in avoid and word not in seen):
                seen[word] = pos
        return sorted(seen, key=lambda w: (self.df[w] < 2, self.df[w], seen[w]))


def budget_bound(price: float) -> int:
    """A round 'under £X' a shopper would say: 25% above the price, rounded up to a step of its size."""
    step = 5 if price < 20 else 10 if price < 100 else 50 if price < 500 else 100
    return max(step, math.ceil(price * 1.25 / step) * step)


REVEAL_ORDER = ("department", "budget", "category", "brand", "word", "age", "word2")


def facts(item: Item, vocab: Vocabulary) -> dict[str, str]:
    """One sentence per fact the target's catalog data has, keyed by fact name (see REVEAL_ORDER)."""
    path = [str(p) for p in item.attributes.get("category_path") or [] if str(p).strip()]
    category = item.category or (path[-1] if path else None)
    brand = item.brand if item.brand and normalize(item.brand) not in GENERIC_BRANDS else None
    known = set(normalize(" ".join([category or "", *path, brand or ""])).split())
    # Title words first: descriptions are full of boilerplate ("shipment", "provider").
    words = vocab.distinctive(item.title, known)
    words += [w for w in vocab.distinctive(item.description, known) if w not in words]
    more = words[1:]
    out: dict[str, str] = {}
    department = path[0] if path else category
    if department and normalize(department) not in GENERIC_NAMES:
        out["department"] = f"Hi! I'm looking for something in {department.lower()}."
    leaf = path[-1] if len(path) > 2 else None
    if category and normalize(category) not in GENERIC_NAMES | {normalize(department or "")}:
        out["category"] = (f"More precisely {category.lower()}, ideally {leaf.lower()}." if leaf
                           else f"More precisely {category.lower()}.")
    if item.price is not None and item.price > 0:
        out["budget"] = f"My budget is under £{budget_bound(item.price)}."
    if brand:
        out["brand"] = f"Ideally something by {brand}."
    if words:
        out["word"] = f"Something with {words[0]}, please."
    age = item.attributes.get("recommended_age")
    if isinstance(age, str) and age.strip():
        out["age"] = f"It's for ages {age.strip().lower()}."
    if more:
        out["word2"] = f"Oh, and ideally with {more[0]}."
    return out


def plan_utterances(item: Item, vocab: Vocabulary, order: tuple[str, ...] = REVEAL_ORDER) -> list[str]:
    """What the shopper will say about ``item``, one sentence per turn, in ``order`` (vaguest first)."""
    told = facts(item, vocab)
    return [told[name] for name in order if name in told]


@dataclass
class Shopper:
    target: Item
    lines: list[str]

    def say(self, turn: int) -> str:
        """The sentence for ``turn`` (1-based); once everything is told, ask for other options."""
        return self.lines[turn - 1] if turn <= len(self.lines) else FALLBACK


def make_shopper(item: Item, vocab: Vocabulary, matcher, order: tuple[str, ...] = REVEAL_ORDER) -> Shopper:
    """A shopper for ``item`` whose sentences never name it (as the tracker's title matcher sees it)."""
    lines = [u for u in plan_utterances(item, vocab, order)
             if all(m.item_id != item.id for m in matcher.find_in_text(u, typed=True))]
    return Shopper(item, lines)


# -- one conversation ------------------------------------------------------------------------------
@dataclass
class Outcome:
    target: str
    found_turn: int | None = None  # first turn whose cards included the target
    found_rank: int | None = None  # 1-based position among that turn's cards
    said: list[str] = field(default_factory=list)
    shown: list[list[str]] = field(default_factory=list)  # card ids per turn
    rejected: list[list[str]] = field(default_factory=list)  # thumbs-down given after each turn
    named_other: int = 0  # catalog items the tracker found named in the shopper's sentences
    failed: int = 0  # turns whose status was not "ok" (LM failure: the cards are the ranker's)


def converse(recommender, shopper: Shopper, turns: int, feedback: bool) -> Outcome:
    """Run one simulated conversation through the real ``Recommender`` (fresh state)."""
    state = recommender.new_state()
    out = Outcome(shopper.target.id)
    catalog = recommender.s.catalog
    others = catalog.listings.get(catalog.position[shopper.target.id], ())
    wanted = {shopper.target.id, *(catalog.items[p].id for p in others)}
    for turn in range(1, turns + 1):
        text = shopper.say(turn)
        mentioned_before = len(state.mentioned)
        result = recommender.run_turn(state, text)
        out.said.append(text)
        out.named_other += len(state.mentioned) - mentioned_before
        out.failed += result.status != "ok"
        cards = [r.item.id for r in result.recommendations]
        out.shown.append(cards)
        found = [rank for rank, item_id in enumerate(cards, 1) if item_id in wanted]  # or its other listing
        if found:
            out.found_turn, out.found_rank = turn, found[0]
            out.rejected.append([])
            break
        wrong = cards if feedback else []
        for item_id in wrong:  # as the UI's 👎 on a card: the item, linked to the turn that showed it
            recommender.feedback(state, -1, item_id=item_id, message_index=len(state.turn_ids) - 1)
        out.rejected.append(wrong)
    return out


# -- metrics ---------------------------------------------------------------------------------------
def summarize(outcomes: list[Outcome], ks: list[int], turns: int) -> dict[str, object]:
    """success@k within ``turns``, average turns to success, and success by turn (target on any card)."""
    n = len(outcomes)
    found = [o for o in outcomes if o.found_turn is not None and o.found_turn <= turns]
    row: dict[str, object] = {"n_targets": n}
    for k in ks:
        hits = sum(1 for o in found if o.found_rank is not None and o.found_rank <= k)
        row[f"success@{k}"] = round(hits / n, 4) if n else 0.0
    row["avg_turns_to_success"] = round(sum(o.found_turn for o in found) / len(found), 3) if found else None
    row["failed_turns"] = sum(o.failed for o in outcomes)
    row["success_by_turn"] = [round(sum(1 for o in found if o.found_turn <= t) / n, 4) if n else 0.0
                              for t in range(1, turns + 1)]
    return row


def markdown_table(rows: dict[str, dict[str, object]], ks: list[int], turns: int) -> str:
    head = ["run", "targets", *[f"success@{k} (≤{turns} turns)" for k in ks], "avg turns to success"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        avg = row["avg_turns_to_success"]
        cells = [name, str(row["n_targets"]), *[f"{row[f'success@{k}']:.3f}" for k in ks],
                 "–" if avg is None else f"{avg:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- the command -----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli.add_common(parser)
    parser.set_defaults(model="none")  # the simulation measures ranking + feedback; an LM is opt-in
    parser.add_argument("--n-targets", dest="n_targets", type=int, default=300, help="targets to sample")
    parser.add_argument("--turns", type=int, default=5, help="turns per conversation (N)")
    parser.add_argument("--cards", type=int, help="item cards shown per turn (default: the app's, 5)")
    parser.add_argument("--k", default="1,3,5", help="comma-separated cut-offs, each at most --cards")
    parser.add_argument("--reveal", default=",".join(REVEAL_ORDER),
                        help="order in which the shopper tells facts, one per turn; facts the target "
                             f"lacks are skipped (default: {','.join(REVEAL_ORDER)})")
    parser.add_argument("--weight", action="append", default=[], metavar="NAME=VALUE",
                        help="override one ranking weight for this run (repeatable), e.g. rejected_similar=0")
    parser.add_argument("--no-ablation", dest="ablation", action="store_false",
                        help="skip the run without thumbs-down")
    parser.add_argument("--out", help="write the JSON report here")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def parse_ks(raw: str, cards: int) -> list[int]:
    try:
        ks = sorted({int(x) for x in raw.split(",") if x.strip()})
    except ValueError:
        raise InputError(f"--k {raw!r}: give comma-separated positive integers, e.g. 1,3,5") from None
    if not ks or ks[0] < 1 or ks[-1] > cards:
        raise InputError(f"--k {raw!r}: each cut-off must be between 1 and the cards shown ({cards}); "
                         "raise --cards or lower --k")
    return ks


def parse_reveal(raw: str) -> tuple[str, ...]:
    order = tuple(x.strip() for x in raw.split(",") if x.strip())
    unknown = [x for x in order if x not in REVEAL_ORDER]
    if not order or unknown:
        raise InputError(f"--reveal {raw!r}: use a comma-separated subset of {','.join(REVEAL_ORDER)}")
    return order


def apply_weights(weights, overrides: list[str]):
    """``RankWeights`` with ``NAME=VALUE`` overrides, for what-if runs without editing the ranker."""
    from dataclasses import fields, replace

    types = {f.name: f.type for f in fields(weights)}
    changes: dict[str, float] = {}
    for raw in overrides:
        name, _, value = raw.partition("=")
        try:
            changes[name.strip()] = (int if "int" in str(types[name.strip()]) else float)(value)
        except (KeyError, ValueError):
            raise InputError(f"--weight {raw!r}: use NAME=NUMBER with NAME one of {', '.join(types)}") from None
    return replace(weights, **changes)


def sample_targets(catalog: Catalog, n: int, seed: int) -> list[Item]:
    if n < 1:
        raise InputError("--n-targets must be at least 1")
    return random.Random(seed).sample(catalog.items, min(n, len(catalog)))


def simulate(recommender, targets: list[Item], turns: int, feedback: bool, progress: bool = False,
             order: tuple[str, ...] = REVEAL_ORDER) -> list[Outcome]:
    """One conversation per target with already-built services; a fresh dialogue state each."""
    from tqdm import tqdm

    s = recommender.s
    vocab = Vocabulary(s.catalog)
    label = "feedback" if feedback else "no feedback"
    return [converse(recommender, make_shopper(t, vocab, s.matcher, order), turns, feedback)
            for t in tqdm(targets, disable=not progress, file=sys.stderr, desc=label, unit="target")]


def run(args: argparse.Namespace) -> int:
    from .recommender import Recommender
    from .services import build_services
    from .store import Store

    if args.turns < 1 or args.n_targets < 1:
        raise InputError("--turns and --n-targets must be at least 1")
    settings = cli.settings_from_args(args)
    if args.cards is not None:
        if args.cards < 1:
            raise InputError("--cards must be at least 1")
        settings = settings.replace(n_recommendations=args.cards)
    ks = parse_ks(args.k, settings.n_recommendations)
    order = parse_reveal(args.reveal)
    from .ranker import RankWeights

    apply_weights(RankWeights(), args.weight)  # a typo fails before the slow build, not after
    if settings.threads:  # CHATREC_THREADS: on a busy machine one torch thread embeds queries fastest
        import torch

        torch.set_num_threads(settings.threads)
    seed = 0 if settings.seed is None else settings.seed
    say = (lambda msg: print(msg, file=sys.stderr)) if args.progress else None
    backend = None if settings.model == "none" else "load"
    # Simulated conversations are not the user's: log them to a throwaway in-memory database.
    services = build_services(settings, progress=say, backend=backend, store=Store("sqlite://"))
    services.ranker.weights = apply_weights(services.ranker.weights, args.weight)
    recommender = Recommender(services)
    targets = sample_targets(services.catalog, args.n_targets, seed)
    started = time.perf_counter()
    runs = {"thumbs-down feedback": True, **({"no feedback (ablation)": False} if args.ablation else {})}
    outcomes = {name: simulate(recommender, targets, args.turns, fb, args.progress, order) for name, fb in runs.items()}
    elapsed = time.perf_counter() - started
    rows = {name: summarize(o, ks, args.turns) for name, o in outcomes.items()}
    print(markdown_table(rows, ks, args.turns))
    failed = sum(int(row["failed_turns"]) for row in rows.values())
    if failed:
        print(f"warning: {failed} turn(s) failed (see the log); their cards came from the ranker alone",
              file=sys.stderr)
    if args.out:
        report = _report(services, rows, outcomes, args, ks, seed, elapsed)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    services.store.close()
    return 0


def _report(services, rows, outcomes, args, ks, seed, elapsed) -> dict[str, object]:
    first = next(iter(outcomes.values()))
    return {
        "runs": rows,
        "n_targets": len(first),
        "turns": args.turns,
        "cards": services.settings.n_recommendations,
        "ks": ks,
        "reveal": list(parse_reveal(args.reveal)),
        "seed": seed,
        "model": services.model_name,
        "catalog": str(services.settings.catalog),
        "n_items": len(services.catalog),
        "embedder": services.settings.embedder,
        "weights": asdict(services.ranker.weights),
        "items_named_by_shopper": {name: sum(o.named_other for o in outs) for name, outs in outcomes.items()},
        "elapsed_s": round(elapsed, 1),
        "build_s": {k: round(v, 2) for k, v in services.timings.items()},
        "examples": [asdict(o) for o in first[:5]],
    }
